"""Settings from environment variables and an optional TOML file (``--config``).

Only the documented variables are read (``THROTTLED_*`` and ``HUBSPOT_*``, see
``ENV_NAMES``); environment variables win over the file. In the file, a setting is written
under its variable name (``THROTTLED_BIND = "0.0.0.0:8080"``) or that name in lower case
without ``THROTTLED_`` (``bind``, ``poll_interval``, ``hubspot_client_secret``); any other
key is an error, so a typo cannot silently fall back to a default. Any missing or
malformed setting becomes one :class:`SettingsError` whose message names the variable,
so ``throttled`` can stop with one clear line.

Size: over 400 lines because it is the one owner of every setting — name, default, bound,
validation and help text — which ``config check``, ``--help`` and the README table read.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import tomllib
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import sqlalchemy as sa
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from throttled.crypto import KeyRing, fingerprint, parse_key, parse_key_ring
from throttled.db.urls import sqlalchemy_url
from throttled.settings_rules import combination_error, renew_margin_s
from throttled.throttle.block_length import BlockLimits

# field name -> environment variable; the single table the README documents.
ENV_NAMES: dict[str, str] = {
    "database_url": "THROTTLED_DATABASE_URL",
    "bind": "THROTTLED_BIND",
    "public_url": "THROTTLED_PUBLIC_URL",
    "hubspot_client_id": "HUBSPOT_CLIENT_ID",
    "hubspot_client_secret": "HUBSPOT_CLIENT_SECRET",
    "hubspot_api_base": "HUBSPOT_API_BASE",
    "hubspot_authorize_url": "HUBSPOT_AUTHORIZE_URL",
    "hubspot_app_id": "HUBSPOT_APP_ID",
    "hubspot_developer_api_key": "HUBSPOT_DEVELOPER_API_KEY",
    "encryption_key": "THROTTLED_ENCRYPTION_KEY",
    "encryption_keys": "THROTTLED_ENCRYPTION_KEYS",
    "block_duration": "THROTTLED_BLOCK_DURATION",
    "block_max": "THROTTLED_BLOCK_MAX",
    "data_dir": "THROTTLED_DATA_DIR",
    "db_pool_size": "THROTTLED_DB_POOL_SIZE",
    "workers": "THROTTLED_WORKERS",
    "poll_interval_s": "THROTTLED_POLL_INTERVAL",
    "job_lease_s": "THROTTLED_JOB_LEASE",
    "release_lease_s": "THROTTLED_RELEASE_LEASE",
    "leader_ttl_s": "THROTTLED_LEADER_TTL",
    "job_retention_s": "THROTTLED_JOB_RETENTION",
    "execution_retention_s": "THROTTLED_EXECUTION_RETENTION",
    "flush_interval_s": "THROTTLED_FLUSH_INTERVAL",
    "hubspot_timeout_s": "THROTTLED_HUBSPOT_TIMEOUT",
    "log_level": "THROTTLED_LOG_LEVEL",
    "admin_token": "THROTTLED_ADMIN_TOKEN",
    "public_config_api": "THROTTLED_PUBLIC_CONFIG_API",
    "reuse_port": "THROTTLED_REUSE_PORT",
    "hold_after": "THROTTLED_HOLD_AFTER",
    "hold_s": "THROTTLED_HOLD_SECONDS",
    "config_ttl_s": "THROTTLED_CONFIG_TTL",
    "signature_versions": "THROTTLED_SIGNATURE_VERSIONS",
    "admin_bind": "THROTTLED_ADMIN_BIND",
    "shutdown_grace_s": "THROTTLED_SHUTDOWN_GRACE",
    "portal_budget": "THROTTLED_PORTAL_BUDGET",
    "portal_budget_window_s": "THROTTLED_PORTAL_BUDGET_WINDOW",
    "callbacks_api": "HUBSPOT_CALLBACKS_API",
    "token_api": "HUBSPOT_TOKEN_API",
    "max_body_bytes": "THROTTLED_MAX_BODY",
    "read_timeout_s": "THROTTLED_READ_TIMEOUT",
    "cleaner_interval_s": "THROTTLED_CLEANER_INTERVAL",
    "portal_hold_s": "THROTTLED_PORTAL_HOLD",
    "oauth_callbacks_per_minute": "THROTTLED_OAUTH_CALLBACKS_PER_MINUTE",
    "pages_token": "THROTTLED_PAGES_TOKEN",
    "max_connections": "THROTTLED_MAX_CONNECTIONS",
    "body_budget_bytes": "THROTTLED_BODY_BUDGET",
    "admin_hosts": "THROTTLED_ADMIN_HOSTS",
}

#: Host names the admin listener answers to unless THROTTLED_ADMIN_HOSTS says otherwise
#: (with THROTTLED_ADMIN_BIND's host, when it is not a wildcard).
DEFAULT_ADMIN_HOSTS = ("localhost", "127.0.0.1", "::1")

# Upper bounds. Past them a value overflows a timestamp or a bigint (a second new-user trial:
# THROTTLED_JOB_LEASE=1e308 passed `config check` and crashed `run`; a block of P3000000D made
# every webhook a 500 on a daemon that looked healthy) or switches a safeguard off in effect.
MAX_BLOCK_S = 52 * 604800
#: Below these a block setting cannot work: every block carries at least an hour of margin
#: (``throttle/block_length.py``), so a shorter shortest block changes nothing, and a longest
#: block under a day leaves almost no queue room.
MIN_BLOCK_S = {"block_duration": 3600, "block_max": 86400}
MAXIMA: dict[str, float] = {
    "db_pool_size": 1000, "workers": 10000, "oauth_callbacks_per_minute": 10000, "max_connections": 100_000,
    "body_budget_bytes": 1024 * 1024 * 1024, "hold_after": 1000, "portal_budget": 100000,
    "poll_interval_s": 3600, "job_lease_s": 3600, "release_lease_s": 86400, "leader_ttl_s": 3600,
    "job_retention_s": 366 * 86400, "flush_interval_s": 60, "hubspot_timeout_s": 300, "hold_s": 86400,
    "config_ttl_s": 86400, "portal_budget_window_s": 3600, "shutdown_grace_s": 3600,
    "max_body_bytes": 16 * 1024 * 1024, "read_timeout_s": 3600, "portal_hold_s": 3600,
}


N = TypeVar("N", int, float)


def _at_most(value: N, field: str | None) -> N:
    """``value``, unless it is above ``field``'s entry in :data:`MAXIMA`."""
    limit = MAXIMA.get(field) if field is not None else None
    if limit is not None and value > limit:
        raise ValueError(f"must be at most {limit:.0f}")
    return value


_HOST_NAME = re.compile(r"\*|\[?[A-Za-z0-9.:-]+\]?")
_DURATION = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


class SettingsError(Exception):
    """A setting is missing or malformed; ``str()`` is one line naming the variable."""


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def toml_key(variable: str) -> str:
    """The short TOML key of a variable: ``THROTTLED_POLL_INTERVAL`` → ``poll_interval``."""
    return variable.lower().removeprefix("throttled_")


def _field(default: Any, name: str, description: str) -> Any:
    return Field(default, validation_alias=ENV_NAMES[name], description=description)


class _TomlSource(PydanticBaseSettingsSource):
    """Reads ``--config``: keys are variable names or their short forms; others are errors."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"--config {path}: not a readable TOML file ({exc})") from None
        by_key = {v: v for v in ENV_NAMES.values()} | {toml_key(v): v for v in ENV_NAMES.values()}
        self.values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in by_key or isinstance(value, dict):
                raise SettingsError(f"--config {path}: unknown setting {key!r} (see README.md, Configuration)")
            self.values[by_key[key]] = value

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # required by the base class; unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)


class Settings(BaseSettings):
    """All of throttled's settings; see ``ENV_NAMES`` for the variable of each field.

    Secrets are :class:`pydantic.SecretStr`, so ``repr(settings)`` shows ``**********``.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)
    config_file: ClassVar[Path | None] = None

    database_url: str | None = _field(None, "database_url", "PostgreSQL URL; unset = embedded PostgreSQL")
    bind: str = _field("127.0.0.1:8080", "bind", "host:port the HTTP server listens on")
    admin_bind: str = _field("127.0.0.1:8081", "admin_bind", "host:port of the admin listener (/metrics, /admin, operator API)")
    shutdown_grace_s: float = _field(10.0, "shutdown_grace_s",
                                     "seconds a graceful stop waits for commits, jobs and HubSpot batches")
    public_url: str | None = _field(None, "public_url",
                                    "https base URL HubSpot calls (signatures, OAuth redirect); default http://{bind}")
    hubspot_client_id: str | None = _field(None, "hubspot_client_id", "OAuth client id of the HubSpot app")
    hubspot_client_secret: SecretStr | None = _field(None, "hubspot_client_secret",
                                                     "client secret: verifies webhook signatures, exchanges tokens")
    hubspot_api_base: str = _field("https://api.hubapi.com", "hubspot_api_base", "HubSpot API base URL")
    hubspot_authorize_url: str = _field("https://app.hubspot.com/oauth/authorize", "hubspot_authorize_url",
                                        "HubSpot OAuth authorize URL")
    hubspot_app_id: int | None = _field(None, "hubspot_app_id", "HubSpot app id")
    hubspot_developer_api_key: SecretStr | None = _field(None, "hubspot_developer_api_key",
                                                         "developer API key; only `throttled hubspot action-definition "
                                                         "--register` uses it")
    encryption_key: SecretStr | None = _field(None, "encryption_key",
                                              "base64 of 32 bytes; encrypts tokens at rest (legacy single key)")
    encryption_keys: SecretStr | None = _field(None, "encryption_keys", "key ring id:base64,id:base64 — the first is current")
    block_duration: str = _field("P7D", "block_duration",
                                 "shortest block asked of HubSpot (ISO-8601, W/D/H/M/S only); longer when the queue needs it")
    block_max: str = _field("P30D", "block_max",
                            "longest block asked of HubSpot; a record whose forecast release lies past it is refused")
    data_dir: Path | None = _field(None, "data_dir", "folder for the embedded PostgreSQL")
    db_pool_size: int = _field(10, "db_pool_size", "database connections (and DB threads) per daemon")
    workers: int = _field(32, "workers", "jobs run at once per daemon")
    poll_interval_s: float = _field(1.0, "poll_interval_s", "seconds between job polls when no NOTIFY arrives")
    job_lease_s: float = _field(30.0, "job_lease_s", "seconds a claimed job is leased (renewed by heartbeat)")
    release_lease_s: float = _field(120.0, "release_lease_s", "seconds an execution may stay 'releasing' before it is retried")
    leader_ttl_s: float = _field(10.0, "leader_ttl_s", "seconds a leadership lease (cron) lasts; renewed at half")
    job_retention_s: float = _field(86400.0, "job_retention_s", "seconds finished jobs are kept before pruning")
    execution_retention_s: float = _field(
        604800.0, "execution_retention_s",
        "seconds finished executions are kept before pruning (at least 4 days: HubSpot retries a webhook for 3)")
    flush_interval_s: float = _field(0.9, "flush_interval_s", "longest wait, seconds, before a partial callback batch is sent")
    hubspot_timeout_s: float = _field(10.0, "hubspot_timeout_s", "connect/read/write/pool timeout of HubSpot calls, seconds")
    log_level: str = _field("INFO", "log_level", "DEBUG, INFO, WARNING or ERROR")
    admin_token: SecretStr | None = _field(None, "admin_token",
                                           "bearer token of the operator and config APIs (admin listener); unset = APIs off")
    pages_token: SecretStr | None = _field(None, "pages_token",
                                           "token the status page and /metrics require (Bearer, or Basic password); "
                                           "unset = open to whoever reaches the admin listener")
    admin_hosts: str | None = _field(None, "admin_hosts",
                                     "Host names the admin listener answers, comma-separated, * = any; default "
                                     "localhost, 127.0.0.1, ::1 and THROTTLED_ADMIN_BIND's host; others get 421")
    public_config_api: bool = _field(False, "public_config_api",
                                     "also serve the config API on the public listener (with THROTTLED_ADMIN_TOKEN)")
    reuse_port: bool = _field(False, "reuse_port",
                              "bind THROTTLED_BIND with SO_REUSEPORT, so several daemons on one host share the port "
                              "and the kernel spreads connections over them (one per core: systemd/throttled@.service)")
    hold_after: int = _field(3, "hold_after", "HubSpot failures in a row that put a queue on hold")
    hold_s: float = _field(1800.0, "hold_s", "first hold, seconds; doubles per hold in a row, up to a day")
    config_ttl_s: float = _field(60.0, "config_ttl_s", "seconds a daemon trusts a cached override without a NOTIFY")
    portal_budget: int = _field(100, "portal_budget",
                                "HubSpot calls per portal per budget window, per daemon (HubSpot allows 110 per 10 s)")
    portal_budget_window_s: float = _field(10.0, "portal_budget_window_s", "the budget's rolling window, seconds")
    callbacks_api: str = _field("v4", "callbacks_api", "callbacks API paths: v4 or 2026-03")
    token_api: str = _field("v3", "token_api", "OAuth token endpoint: v3 (falls back to v1 on 404) or v1")
    signature_versions: str = _field("v3,v2", "signature_versions",
                                     "webhook signature versions accepted, comma-separated (v3, v2, v1)")
    max_body_bytes: int = _field(65536, "max_body_bytes", "largest request body accepted, bytes; larger ones get 413")
    max_connections: int = _field(0, "max_connections",
                                  "connections the public listener holds at once; 0 = derived from the open-file "
                                  "limit. At the cap the longest idle one is closed; with none idle, 503")
    body_budget_bytes: int = _field(16 * 1024 * 1024, "body_budget_bytes",
                                    "request-body bytes the public listener admits at once (announced sizes); "
                                    "beyond it 503 + Retry-After")
    read_timeout_s: float = _field(30.0, "read_timeout_s",
                                   "seconds a client may take to send a request's head, and its body; slower ones are cut")
    cleaner_interval_s: float = _field(60.0, "cleaner_interval_s", "seconds between cleaner runs (at least 1)")
    portal_hold_s: float = _field(60.0, "portal_hold_s",
                                  "first hold, seconds, of a portal HubSpot refuses as a whole; doubles per refusal in a row, "
                                  "up to an hour")
    oauth_callbacks_per_minute: int = _field(30, "oauth_callbacks_per_minute",
                                             "OAuth install callbacks one daemon lets through to a code exchange per "
                                             "minute; beyond it 429")

    @field_validator("bind", "admin_bind")
    @classmethod
    def _check_bind(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError("must be host:port, e.g. 127.0.0.1:8080")
        return value

    @field_validator("public_url", "hubspot_api_base", "hubspot_authorize_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme = value.partition("://")[0].lower()
        if scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
            raise ValueError("must be a PostgreSQL URL (postgresql://…)")
        try:
            sa.engine.make_url(sqlalchemy_url(value))
        except (sa.exc.ArgumentError, ValueError):
            raise ValueError("must be a PostgreSQL URL, e.g. postgresql://user@host:5432/db") from None
        return value

    @field_validator("encryption_key")
    @classmethod
    def _check_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_key(value.get_secret_value())
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _check_key_ring(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_key_ring(value.get_secret_value())
        return value

    @field_validator("hubspot_client_secret", "hubspot_client_id")
    @classmethod
    def _check_not_blank(cls, value: SecretStr | str | None) -> SecretStr | str | None:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text is not None and not text.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("admin_hosts")
    @classmethod
    def _check_admin_hosts(cls, value: str | None) -> str | None:
        if value is None:
            return value
        names = [h.strip() for h in value.split(",")]
        if not any(names) or not all(_HOST_NAME.fullmatch(h) for h in names if h):
            raise ValueError("must be host names or addresses, comma-separated (e.g. localhost,metrics.internal), or *")
        return value

    @field_validator("admin_token", "pages_token")
    @classmethod
    def _check_admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        token = value.get_secret_value()
        if any(c.isspace() for c in token) or not token.isprintable():
            # A header value loses its surrounding whitespace in transit: such a token could never match.
            raise ValueError("must not contain spaces, tabs, line breaks or control characters")
        if not token.isascii():
            # HTTP header values are bytes clients send as Latin-1 or UTF-8 at will: a bearer
            # token outside ASCII could never be matched reliably (a new-user trial).
            raise ValueError("must be ASCII (letters, digits and punctuation)")
        if len(token) < 16:
            raise ValueError("must be at least 16 characters (e.g. `throttled keys generate`)")
        return value

    @field_validator("signature_versions")
    @classmethod
    def _check_versions(cls, value: str) -> str:
        versions = [v.strip().lower() for v in value.split(",") if v.strip()]
        if not versions or any(v not in ("v1", "v2", "v3") for v in versions):
            raise ValueError("must be a comma-separated list of v3, v2, v1")
        return ",".join(versions)

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return value.upper()

    @field_validator("block_duration", "block_max")
    @classmethod
    def _check_duration(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip().upper()  # ISO-8601 designators; "p7d" means P7D
        seconds = duration_seconds(value)
        if seconds > MAX_BLOCK_S:
            raise ValueError("must be at most P52W (52 weeks)")  # our bound; HubSpot's is not documented
        least = MIN_BLOCK_S[str(info.field_name)]
        if seconds < least:
            raise ValueError(f"must be at least {'PT1H' if least == 3600 else 'P1D'}: every block carries an hour "
                             "of margin")
        return value

    @field_validator("callbacks_api")
    @classmethod
    def _check_callbacks_api(cls, value: str) -> str:
        if value not in ("v4", "2026-03"):
            raise ValueError("must be v4 or 2026-03")
        return value

    @field_validator("token_api")
    @classmethod
    def _check_token_api(cls, value: str) -> str:
        if value not in ("v3", "v1"):
            raise ValueError("must be v3 or v1")
        return value

    @field_validator("db_pool_size", "workers", "hold_after", "portal_budget", "max_body_bytes",
                     "oauth_callbacks_per_minute", "body_budget_bytes")
    @classmethod
    def _check_positive_int(cls, value: int, info: ValidationInfo) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return _at_most(value, info.field_name)

    @field_validator("max_connections")
    @classmethod
    def _check_max_connections(cls, value: int, info: ValidationInfo) -> int:
        if value != 0 and value < 8:
            raise ValueError("must be 0 (derived from the open-file limit) or at least 8")
        return _at_most(value, info.field_name)

    @field_validator(
        "poll_interval_s", "job_lease_s", "release_lease_s", "leader_ttl_s", "job_retention_s",
        "flush_interval_s", "hubspot_timeout_s", "hold_s", "config_ttl_s", "portal_budget_window_s", "shutdown_grace_s",
        "read_timeout_s", "portal_hold_s",
    )
    @classmethod
    def _check_positive_float(cls, value: float, info: ValidationInfo) -> float:
        if not math.isfinite(value) or value <= 0:
            raise ValueError("must be a number greater than 0")
        return _at_most(value, info.field_name)

    @field_validator("execution_retention_s")
    @classmethod
    def _check_execution_retention(cls, value: float) -> float:
        # A webhook HubSpot sends again must find its execution: HubSpot retries for up to 3
        # days (protocol notes §3), and a day more covers clocks and slow retries.
        if not math.isfinite(value) or not 4 * 86400 <= value <= 366 * 86400:
            raise ValueError("must be a number of seconds from 345600 (4 days) to 31622400 (366 days)")
        return value

    @field_validator("cleaner_interval_s")
    @classmethod
    def _check_cleaner_interval(cls, value: float) -> float:
        # cron slot keys have one-second resolution: a shorter interval would run once a second
        if not math.isfinite(value) or not 1 <= value <= 86400:
            raise ValueError("must be a number of seconds from 1 to 86400 (a day)")
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        problem = combination_error(self)
        if problem:
            raise SettingsError(problem)
        return self

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls.config_file is not None:
            sources.append(_TomlSource(settings_cls, cls.config_file))
        return tuple(sources)

    # -- derived values -------------------------------------------------------------

    @property
    def effective_public_url(self) -> str:
        """``public_url``, or ``http://{bind}`` when unset (local runs)."""
        return self.public_url or f"http://{self.bind}"

    @property
    def pages_token_set(self) -> bool:
        """Whether ``THROTTLED_PAGES_TOKEN`` is set."""
        return self.pages_token is not None

    @property
    def admin_hosts_allowed(self) -> tuple[str, ...] | None:
        """Host names the admin listener answers to; ``None`` = any (``THROTTLED_ADMIN_HOSTS=*``)."""
        if self.admin_hosts is not None:
            names = tuple(h.strip() for h in self.admin_hosts.split(",") if h.strip())
            return None if "*" in names else names
        host = self.admin_bind.rpartition(":")[0].strip("[]")
        wildcard_or_known = host in ("", "0.0.0.0", "::", *DEFAULT_ADMIN_HOSTS)  # noqa: S104  # the wildcards, compared
        return DEFAULT_ADMIN_HOSTS + (() if wildcard_or_known else (host,))

    @property
    def renew_margin_s(self) -> float:
        """Seconds of lease a release must have left for a HubSpot call to start on it."""
        return renew_margin_s(self.hubspot_timeout_s)

    @property
    def accepted_signatures(self) -> tuple[str, ...]:
        """``signature_versions`` as a tuple, e.g. ``("v3", "v2")``."""
        return tuple(self.signature_versions.split(","))

    @property
    def block_seconds(self) -> tuple[int, int]:
        """``(block_duration, block_max)`` in seconds."""
        return duration_seconds(self.block_duration), duration_seconds(self.block_max)

    @property
    def block_limits(self) -> BlockLimits:
        """The shortest (``block_duration``) and longest (``block_max``) block."""
        shortest, longest = self.block_seconds
        return BlockLimits(dt.timedelta(seconds=shortest), dt.timedelta(seconds=longest))

    def require(self, *fields: str) -> None:
        """Raise :class:`SettingsError` naming the first of ``fields`` that is unset."""
        for name in fields:
            if getattr(self, name) is None:
                raise SettingsError(f"{ENV_NAMES[name]} is not set")

    def key_ring(self) -> KeyRing:
        """The token key ring: ``THROTTLED_ENCRYPTION_KEYS`` (first current) plus the legacy
        ``THROTTLED_ENCRYPTION_KEY`` under its fingerprint id (current if it is alone).

        Raises:
            SettingsError: neither is set.
        """
        keys: dict[str, bytes] = {}
        current = None
        if self.encryption_keys is not None:
            keys, current = parse_key_ring(self.encryption_keys.get_secret_value())
        if self.encryption_key is not None:
            legacy = parse_key(self.encryption_key.get_secret_value())
            if legacy not in keys.values():
                keys[fingerprint(legacy)] = legacy
            current = current or fingerprint(legacy)
        if current is None:
            raise SettingsError("THROTTLED_ENCRYPTION_KEYS (or THROTTLED_ENCRYPTION_KEY) is not set")
        return KeyRing(keys, current)

    def secret(self, name: str) -> str:
        """The plain value of a secret field; raises :class:`SettingsError` if unset."""
        self.require(name)
        value: SecretStr = getattr(self, name)
        return value.get_secret_value()


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read settings from the environment (and ``config_file``, TOML, when given).

    ``overrides`` are field values that win over both (used by ``demo`` and tests).
    Raises:
        SettingsError: one line naming the offending variable.
    """
    if config_file is not None and not config_file.is_file():
        raise SettingsError(f"--config: no such file: {config_file}")
    cls = type("Settings", (Settings,), {"config_file": config_file})
    try:
        settings: Settings = cls(**{ENV_NAMES[name]: value for name, value in overrides.items()})
        return settings
    except ValidationError as exc:
        raise SettingsError(_one_line(exc)) from None


def duration_seconds(value: str) -> int:
    """Seconds in an ISO-8601 duration made of fixed-length units only (W, D, H, M, S).

    HubSpot takes ``hs_expiration_duration`` as ISO-8601 (protocol notes §2); months and
    years are refused because their length is not fixed.
    Raises:
        ValueError: not such a duration, or zero.
    """
    match = _DURATION.match(value)
    if not match or value in ("P", "PT"):
        raise ValueError("must be an ISO-8601 duration in W/D/H/M/S, e.g. P7D or PT12H")
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    total = weeks * 604800 + days * 86400 + hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ValueError("must be longer than zero")
    return total


def _one_line(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else "?"
    name = ENV_NAMES.get(field, field)
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{name}: {message}"
