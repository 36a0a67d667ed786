"""In-memory state and rules of the HubSpot sandbox: OAuth codes and tokens, the rate window,
callback completions. No trio, no HTTP: every call takes ``now`` (epoch seconds, float), so the
rules are tested with plain functions and ``app.py`` only maps HTTP onto these methods.

HubSpot facts come from ``shared/docs/hubspot-protocol.md``: callbacks §5, OAuth §6, rate limits
§7. Where HubSpot's behaviour is undocumented (completing twice, batch cap) the sandbox picks the
strict answer the daemon must cope with; each such choice says so. Errors are raised as one type,
:class:`SandboxError`, whose body never echoes a token or secret.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

CODE_LIFETIME_S = 600.0  # authorization codes live 10 minutes (sandbox choice)
MAX_BATCH_INPUTS = 100  # §5: no documented maxItems; HubSpot's CRM batch rule is 100
TOKEN_BYTES = 96  # token_urlsafe(96) -> 128 chars; HubSpot's tokens are long (§6: allow ~300)
MALFORMED_JSON: Any = object()  # what app.py passes as ``body`` when the request was not JSON

_NO_AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
    "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)

Via = Literal["single", "batch"]
TokenVersion = Literal["v1", "v3"]


@dataclass
class SandboxConfig:
    """The one app the sandbox knows, and its limits.

    ``token_lifetime_s``: access-token lifetime in seconds (§6: 1800). ``rate_limit_max`` per
    ``rate_limit_interval_s`` seconds per portal (§7: 110 per 10 s for OAuth apps).
    """

    client_id: str
    client_secret: str = field(repr=False)
    app_id: int
    default_portal_id: int = 62515
    token_lifetime_s: float = 1800.0
    rate_limit_max: int = 110
    rate_limit_interval_s: float = 10.0
    scopes: list[str] = field(default_factory=lambda: ["automation", "oauth"])


class SandboxError(Exception):
    """A HubSpot-style error answer: HTTP ``status``, JSON ``body``, extra ``headers``.

    The repr names only the status and kind, never the body's values.
    """

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        kind = body.get("status") if body.get("status") != "error" else None
        super().__init__(status, kind or body.get("category") or body.get("errorType"))

    def __repr__(self) -> str:
        return f"SandboxError(status={self.status}, kind={self.args[1]!r})"


@dataclass(frozen=True)
class TokenGrant:
    """One successful token call. ``expires_in`` in seconds."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    portal_id: int
    scopes: tuple[str, ...]

    def to_json(self, version: TokenVersion) -> dict[str, Any]:
        """The response body of ``/oauth/{version}/token`` (§6; v1 had only the first four)."""
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_in": self.expires_in,
            "token_type": "bearer",
        }
        if version == "v3":
            body |= {"token_use": "access_token", "hub_id": self.portal_id, "scopes": list(self.scopes)}
        return body


@dataclass
class _Code:
    portal_id: int
    redirect_uri: str
    expires_at: float
    used: bool = False  # kept after use so a replay is still counted against its portal


@dataclass
class _Access:
    portal_id: int
    expires_at: float  # expired once now >= expires_at


class SandboxState:
    """Everything the sandbox remembers. Mutate only through methods; read attributes freely.

    Readable: ``token_calls`` (portal -> token-endpoint calls, to assert single-flight refresh),
    ``completions`` (records in order), ``requests`` ("<route> <status>" -> count),
    ``rate_limited`` (429s given). Settable: ``rotate_refresh_tokens`` (v3 refresh issues a new
    refresh token and kills the old; §6 says rotation is undocumented), ``faults`` (reserved for
    fault injection; nothing reads it yet).
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.rotate_refresh_tokens = False
        self.faults: dict[str, Any] = {}
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _Access] = {}
        self._refresh: dict[str, int] = {}  # refresh token -> portal id
        self._windows: dict[int, deque[float]] = {}
        self._completed: set[tuple[int, str]] = set()
        self.token_calls: Counter[int] = Counter()
        self.completions: list[dict[str, Any]] = []
        self.requests: Counter[str] = Counter()
        self.rate_limited = 0

    # --- OAuth (§6) -------------------------------------------------------------------------

    def authorize(self, client_id: str, redirect_uri: str, portal_id: int | None, now: float) -> str:
        """Auto-approve an install; return a single-use code valid ``CODE_LIFETIME_S`` seconds.

        ``portal_id`` None means the config's default portal. Raises 400 for an unknown client
        or a missing ``redirect_uri``.
        """
        if client_id != self.config.client_id:
            raise _oauth_fail("BAD_CLIENT_ID", "invalid_client", "unknown client_id")
        if not redirect_uri:
            raise _oauth_fail("BAD_REDIRECT_URI", "invalid_request", "missing redirect_uri")
        code = _new_secret()
        portal = self.config.default_portal_id if portal_id is None else portal_id
        self._codes[code] = _Code(portal, redirect_uri, now + CODE_LIFETIME_S)
        return code

    def token(self, form: Mapping[str, str], now: float, version: TokenVersion) -> dict[str, Any]:
        """Handle one ``POST /oauth/{v1,v3}/token`` form; return the JSON body or raise 400."""
        grant_type = form.get("grant_type", "")
        args = (form.get("client_id", ""), form.get("client_secret", ""))
        if grant_type == "authorization_code":
            grant = self.exchange_code(*args, form.get("redirect_uri", ""), form.get("code", ""), now)
        elif grant_type == "refresh_token":
            grant = self.refresh(*args, form.get("refresh_token", ""), now, version)
        else:
            raise _oauth_fail("BAD_GRANT_TYPE", "unsupported_grant_type",
                              "grant_type must be authorization_code or refresh_token")
        return grant.to_json(version)

    def exchange_code(self, client_id: str, client_secret: str, redirect_uri: str, code: str,
                      now: float) -> TokenGrant:
        """Trade an authorization code for tokens; the code is spent on success.

        Raises 400 ``BAD_CLIENT_ID`` / ``BAD_AUTH_CODE`` (unknown, used or expired code) /
        ``BAD_REDIRECT_URI`` (differs from the one given at authorize).
        """
        found = self._codes.get(code)
        if found is not None:
            self.token_calls[found.portal_id] += 1
        self._check_client(client_id, client_secret)
        if found is None or found.used or now >= found.expires_at:
            raise _oauth_fail("BAD_AUTH_CODE", "invalid_grant", "missing or invalid authorization code")
        if redirect_uri != found.redirect_uri:
            raise _oauth_fail("BAD_REDIRECT_URI", "invalid_grant", "redirect_uri differs from authorize's")
        found.used = True
        refresh_token = _new_secret()
        self._refresh[refresh_token] = found.portal_id
        return self._grant(found.portal_id, refresh_token, now)

    def refresh(self, client_id: str, client_secret: str, refresh_token: str, now: float,
                version: TokenVersion = "v1") -> TokenGrant:
        """New access token for a refresh token; same refresh token unless rotation is on (v3).

        Raises 400 ``BAD_CLIENT_ID`` or ``BAD_REFRESH_TOKEN`` (unknown or revoked; §6 body).
        """
        portal = self._refresh.get(refresh_token)
        if portal is not None:
            self.token_calls[portal] += 1
        self._check_client(client_id, client_secret)
        if portal is None:
            raise _oauth_fail("BAD_REFRESH_TOKEN", "invalid_grant", "missing or invalid refresh token",
                              "refresh token is invalid, expired or revoked")
        if self.rotate_refresh_tokens and version == "v3":
            del self._refresh[refresh_token]
            refresh_token = _new_secret()
            self._refresh[refresh_token] = portal
        return self._grant(portal, refresh_token, now)

    def access_token_info(self, token: str, now: float) -> tuple[dict[str, Any], dict[str, str]]:
        """``GET /oauth/v1/access-tokens/{token}``: (metadata body, rate headers) (§6).

        Counts against the token's portal window (§7). Raises 404 for an unknown or expired
        token, 429 past the rate limit.
        """
        access = self._access.get(token)
        if access is None or now >= access.expires_at:
            raise SandboxError(404, _api_error("OBJECT_NOT_FOUND", "Token not found"))
        headers = self.check_rate(access.portal_id, now)
        body = {
            "token": token, "user": "demo@example.org",
            "hub_domain": f"demo-{access.portal_id}.hubspot.com", "scopes": list(self.config.scopes),
            "hub_id": access.portal_id, "app_id": self.config.app_id,
            "expires_in": int(access.expires_at - now), "user_id": 1, "token_type": "access",
        }
        return body, headers

    def expire_access_tokens(self, portal_id: int, now: float) -> int:
        """Make every access token of ``portal_id`` expired at ``now``; return how many."""
        hits = [a for a in self._access.values() if a.portal_id == portal_id]
        for access in hits:
            access.expires_at = min(access.expires_at, now)
        return len(hits)

    def revoke_refresh_tokens(self, portal_id: int) -> int:
        """Forget every refresh token of ``portal_id`` (as on uninstall); return how many."""
        gone = [t for t, p in self._refresh.items() if p == portal_id]
        for token in gone:
            del self._refresh[token]
        return len(gone)

    # --- authenticated API: bearer auth and the rate window (§5, §7) -----------------------

    def authenticate(self, token: str | None, now: float) -> int:
        """Portal id of a bearer access token; raise 401 if missing, unknown or expired."""
        access = self._access.get(token or "")
        if access is None or now >= access.expires_at:
            raise SandboxError(401, _api_error("INVALID_AUTHENTICATION", _NO_AUTH_MESSAGE))
        return access.portal_id

    def check_rate(self, portal_id: int, now: float) -> dict[str, str]:
        """Count one request in the portal's rolling window; return the rate headers (§7).

        The window holds requests made in ``(now - interval, now]``: a request at ``t`` stops
        counting at exactly ``t + interval``. Past ``rate_limit_max`` raise 429 (with headers,
        Remaining 0); a rejected request is not counted.
        """
        window = self._windows.setdefault(portal_id, deque())
        while window and window[0] <= now - self.config.rate_limit_interval_s:
            window.popleft()
        if len(window) >= self.config.rate_limit_max:
            self.rate_limited += 1
            raise SandboxError(429, {
                "status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT", "correlationId": _uuid(),
                "policyName": "TEN_SECONDLY_ROLLING", "requestId": _uuid(),
            }, self._rate_headers(0))
        window.append(now)
        return self._rate_headers(self.config.rate_limit_max - len(window))

    # --- callbacks (§5) ---------------------------------------------------------------------

    def complete(self, token: str | None, body: Any, now: float, *,
                 callback_id: str | None = None) -> dict[str, str]:
        """Complete one callback (``callback_id`` given, ``body`` a CallbackCompletionRequest)
        or a batch (``body`` = ``{"inputs": [...]}``); return the rate headers of the 204.

        Order as HubSpot: 401 auth, 429 rate, then 400 validation. Completing an already
        completed callback, or the same id twice in one batch, is a 400 and the whole batch is
        rejected with nothing recorded (§5 leaves this undocumented; the strict answer).
        """
        portal = self.authenticate(token, now)
        headers = self.check_rate(portal, now)
        via: Via = "batch" if callback_id is None else "single"
        try:
            inputs = _parse_inputs(body, callback_id)
            bad = self._already_completed(portal, [item["callbackId"] for item in inputs])
            if bad:
                raise SandboxError(400, _api_error(
                    "VALIDATION_ERROR",
                    f"Callback {bad[0]} has already been completed" if via == "single"
                    else f"{len(bad)} callback(s) already completed or repeated in this batch",
                    context={"callbackIds": bad}))
        except SandboxError as error:
            error.headers.update(headers)
            raise
        for item in inputs:
            self._completed.add((portal, item["callbackId"]))
            self.completions.append({
                "callbackId": item["callbackId"], "portalId": portal, "completedAt": now,
                "outputFields": dict(item["outputFields"]), "via": via,
            })
        return headers

    # --- test control -----------------------------------------------------------------------

    def record_request(self, route: str, status: int) -> None:
        """Count one answered request under ``"<route> <status>"`` for ``stats()``."""
        self.requests[f"{route} {status}"] += 1

    def stats(self) -> dict[str, Any]:
        """Counters since the last reset, JSON-ready (portal keys as strings)."""
        return {
            "requests": dict(self.requests),
            "token_calls": {str(p): n for p, n in self.token_calls.items()},
            "rate_limited": self.rate_limited,
            "completions": len(self.completions),
        }

    def reset(self) -> None:
        """Forget completions (so callback ids may be completed again), counters and rate
        windows; keep the app, codes and tokens."""
        self.completions.clear()
        self._completed.clear()
        self._windows.clear()
        self.token_calls.clear()
        self.requests.clear()
        self.rate_limited = 0

    # --- private ----------------------------------------------------------------------------

    def _check_client(self, client_id: str, client_secret: str) -> None:
        ok_secret = hmac.compare_digest(client_secret.encode(), self.config.client_secret.encode())
        if client_id != self.config.client_id or not ok_secret:
            raise _oauth_fail("BAD_CLIENT_ID", "invalid_client", "missing or invalid client credentials")

    def _already_completed(self, portal_id: int, ids: list[str]) -> list[str]:
        """Ids completed before, or repeated within ``ids`` (sorted, each once)."""
        seen: set[str] = set()
        bad: set[str] = set()
        for callback_id in ids:
            if (portal_id, callback_id) in self._completed or callback_id in seen:
                bad.add(callback_id)
            seen.add(callback_id)
        return sorted(bad)

    def _grant(self, portal_id: int, refresh_token: str, now: float) -> TokenGrant:
        access_token = _new_secret()
        self._access[access_token] = _Access(portal_id, now + self.config.token_lifetime_s)
        return TokenGrant(access_token, refresh_token, int(self.config.token_lifetime_s),
                          portal_id, tuple(self.config.scopes))

    def _rate_headers(self, remaining: int) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(round(self.config.rate_limit_interval_s * 1e3)),
            "X-HubSpot-RateLimit-Max": str(self.config.rate_limit_max),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
        }


def _parse_inputs(body: Any, callback_id: str | None) -> list[dict[str, Any]]:
    """Validate a single or batch completion body into ``[{"callbackId", "outputFields"}, ...]``."""
    if body is MALFORMED_JSON or not isinstance(body, dict):
        raise _invalid("Invalid input JSON: expected a JSON object")
    if callback_id is not None:
        raw, prefix = [{**body, "callbackId": callback_id}], ""
    else:
        raw, prefix = body.get("inputs"), "inputs"
        if not isinstance(raw, list) or not raw:
            raise _invalid("inputs: a non-empty list is required")
        if len(raw) > MAX_BATCH_INPUTS:
            raise _invalid(f"inputs: at most {MAX_BATCH_INPUTS} inputs per batch, got {len(raw)}")
    for n, item in enumerate(raw):
        where = f"{prefix}[{n}]." if prefix else ""
        if not isinstance(item, dict):
            raise _invalid(f"{prefix}[{n}]: expected an object")
        if not isinstance(item.get("callbackId"), str) or not item["callbackId"]:
            raise _invalid(f"{where}callbackId: a non-empty string is required")
        fields = item.get("outputFields")
        if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
            raise _invalid(f"{where}outputFields: a map of string to string is required")
        if not isinstance(item.get("typedOutputs", {}), dict):
            raise _invalid(f"{where}typedOutputs: expected an object")
    return raw


def _invalid(message: str) -> SandboxError:
    return SandboxError(400, _api_error("VALIDATION_ERROR", message))


def _api_error(category: str, message: str, **extra: Any) -> dict[str, Any]:
    """HubSpot's API error body (§5): status, message, category, correlationId."""
    return {"status": "error", "message": message, "category": category, "correlationId": _uuid(), **extra}


def _oauth_fail(status: str, error: str, message: str, description: str | None = None) -> SandboxError:
    """A 400 with HubSpot's OAuth error body: legacy status/message plus RFC 6749 fields (§6)."""
    return SandboxError(400, {"status": status, "message": message, "correlationId": _uuid(),
                              "error": error, "error_description": description or message})


def _new_secret() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def _uuid() -> str:
    return str(uuid.uuid4())
