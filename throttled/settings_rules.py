"""Settings that are each valid but together break a guarantee — pure, one place.

``config check`` and ``run`` refuse them with one line naming every variable involved (the
settings model calls :func:`combination_error`). Each rule says which guarantee it protects;
the README's settings section lists them.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import urlsplit

#: Seconds a release's lease must have left, beyond the call itself, for its outcome to be
#: written before the lease lapses (one database round trip, with room for a slow one).
RECORD_SLACK_S = 1.0


#: Values of HUBSPOT_CLIENT_SECRET that are placeholders, not a HubSpot app's secret (a UUID).
PLACEHOLDER_SECRETS = frozenset({"change-me", "changeme", "secret", "replace-me", "xxx", "todo"})
_WILDCARD_HOSTS = ("0.0.0.0", "::", "[::]", "")  # noqa: S104  # compared, never bound


class _Deployment(Protocol):
    bind: str
    admin_bind: str
    public_url: str | None
    admin_hosts: str | None

    def secret(self, name: str) -> str: ...

    @property
    def pages_token_set(self) -> bool: ...


def deployment_warnings(s: _Deployment) -> list[str]:
    """Settings that work but are probably not what a production daemon wants, as one line
    each naming the variable (``config check`` prints them, ``run`` logs them)."""
    found = []
    secret = s.secret("hubspot_client_secret")
    if secret.lower() in PLACEHOLDER_SECRETS or secret.startswith("replace-with") or len(secret) < 16:
        found.append("HUBSPOT_CLIENT_SECRET looks like a placeholder (HubSpot's are 36-character UUIDs): "
                     "every webhook will fail its signature")
    if not s.public_url:
        found.append(f"THROTTLED_PUBLIC_URL is unset: signatures are checked against http://{s.bind}, "
                     "so every webhook HubSpot sends to an https URL will be refused")
    elif s.public_url.lower().startswith("http://") and not _loopback(s.public_url):
        found.append("THROTTLED_PUBLIC_URL is http://: HubSpot calls only https URLs (put a TLS proxy in front)")
    admin_host = s.admin_bind.rpartition(":")[0]
    if admin_host in _WILDCARD_HOSTS and not s.pages_token_set:
        found.append(f"THROTTLED_ADMIN_BIND is {s.admin_bind}: the status page and metrics are open to other hosts; "
                     "set THROTTLED_PAGES_TOKEN (and THROTTLED_ADMIN_HOSTS to the names they use)")
    return found


def _loopback(url: str) -> bool:
    return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


class _Timings(Protocol):
    release_lease_s: float
    hubspot_timeout_s: float
    bind: str
    admin_bind: str
    block_duration: str
    block_max: str
    max_body_bytes: int
    body_budget_bytes: int

    @property
    def block_seconds(self) -> tuple[int, int]: ...


def renew_margin_s(hubspot_timeout_s: float) -> float:
    """Seconds of lease a release must have left for a HubSpot call to start on it: the
    longest call (every call ends within ``THROTTLED_HUBSPOT_TIMEOUT``) plus the time to
    record its outcome."""
    return hubspot_timeout_s + RECORD_SLACK_S


def combination_error(s: _Timings) -> str | None:
    """The first rule ``s`` breaks, as one line naming the variables, or ``None``."""
    margin = renew_margin_s(s.hubspot_timeout_s)
    if s.release_lease_s < 2 * margin:
        # At-least-once without duplicates: a call on a release must end (and be recorded)
        # before its lease lapses, or the worker hands the release out again while the
        # first call is still on its way (measured: 11 of 20 callbacks sent twice with a
        # 6 s lease, a 10 s timeout and a HubSpot answering after 9 s). Twice the margin, so
        # a renewed lease always covers at least one whole call.
        return (f"THROTTLED_RELEASE_LEASE ({s.release_lease_s:g} s) must be at least 2 × "
                f"(THROTTLED_HUBSPOT_TIMEOUT + {RECORD_SLACK_S:g} s) = {2 * margin:g} s: a release must stay leased "
                "through a whole HubSpot call, or it is sent again while the call is on its way")
    if s.bind == s.admin_bind and not s.bind.endswith(":0"):
        # The public and the admin listener cannot share an address: the second fails to bind.
        return f"THROTTLED_BIND and THROTTLED_ADMIN_BIND are both {s.bind}: the admin listener needs an address of its own"
    if s.body_budget_bytes < s.max_body_bytes:
        # A body the size of the limit must fit the budget, or such a webhook is refused forever.
        return (f"THROTTLED_BODY_BUDGET ({s.body_budget_bytes}) must be at least THROTTLED_MAX_BODY "
                f"({s.max_body_bytes}): a body at the limit would never be admitted")
    shortest, longest = s.block_seconds
    if longest < shortest:
        # Every block lies between the two; a longest below the shortest leaves none.
        return (f"THROTTLED_BLOCK_MAX ({s.block_max}) must be at least THROTTLED_BLOCK_DURATION ({s.block_duration}): "
                "the longest block cannot be shorter than the shortest")
    return None
