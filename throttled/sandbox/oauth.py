"""OAuth rules of the sandbox (``shared/docs/hubspot-protocol.md`` §6): authorization codes,
access and refresh tokens, bearer authentication. No trio, no HTTP: every call takes ``now``
(epoch seconds, float).

:class:`OAuthRules` is the base of :class:`~throttled.sandbox.state.SandboxState`; it owns the
token tables and leaves the access-token lifetime to :meth:`OAuthRules.access_lifetime_s`, which
the state overrides so a fault can make tokens expire early.
"""

from __future__ import annotations

import hmac
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .config import SandboxConfig
from .errors import SandboxError, api_error, new_secret, oauth_fail

CODE_LIFETIME_S = 600.0  # authorization codes live 10 minutes (sandbox choice)

TokenVersion = Literal["v1", "v3"]

_NO_AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
    "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)


@dataclass(frozen=True)
class TokenGrant:
    """One successful token call. ``expires_in`` in seconds (the announced lifetime)."""

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
class Access:
    """A live access token's portal and expiry (epoch seconds; expired once ``now >= expires_at``)."""

    portal_id: int
    expires_at: float


@dataclass
class _Code:
    portal_id: int
    redirect_uri: str
    expires_at: float
    used: bool = False  # kept after use so a replay is still counted against its portal


class OAuthRules:
    """Codes, tokens and bearer auth. Readable: ``token_calls`` (portal -> token-endpoint calls).
    Settable: ``rotate_refresh_tokens`` (v3 refresh issues a new refresh token and kills the old;
    §6 says rotation is undocumented). :meth:`issued_tokens` lists every token handed out, for
    tests that check a client never leaks one."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.rotate_refresh_tokens = False
        self.token_calls: Counter[int] = Counter()
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, Access] = {}
        self._refresh: dict[str, int] = {}  # refresh token -> portal id
        self._issued: list[str] = []  # every access and refresh token ever granted

    def access_lifetime_s(self) -> float:
        """Real lifetime in seconds of access tokens issued now (default: the announced one)."""
        return self.config.token_lifetime_s

    def authorize(self, client_id: str, redirect_uri: str, portal_id: int | None, now: float) -> str:
        """Auto-approve an install; return a single-use code valid ``CODE_LIFETIME_S`` seconds.

        ``portal_id`` None means the config's default portal. Raises 400 for an unknown client
        or a missing ``redirect_uri``.
        """
        if client_id != self.config.client_id:
            raise oauth_fail("BAD_CLIENT_ID", "invalid_client", "unknown client_id")
        if not redirect_uri:
            raise oauth_fail("BAD_REDIRECT_URI", "invalid_request", "missing redirect_uri")
        code = new_secret()
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
            raise oauth_fail("BAD_GRANT_TYPE", "unsupported_grant_type",
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
            raise oauth_fail("BAD_AUTH_CODE", "invalid_grant", "missing or invalid authorization code")
        if redirect_uri != found.redirect_uri:
            raise oauth_fail("BAD_REDIRECT_URI", "invalid_grant", "redirect_uri differs from authorize's")
        found.used = True
        refresh_token = new_secret()
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
            raise oauth_fail("BAD_REFRESH_TOKEN", "invalid_grant", "missing or invalid refresh token",
                             "refresh token is invalid, expired or revoked")
        if self.rotate_refresh_tokens and version == "v3":
            del self._refresh[refresh_token]
            refresh_token = new_secret()
            self._refresh[refresh_token] = portal
        return self._grant(portal, refresh_token, now)

    def portal_of_form(self, form: Mapping[str, str]) -> int | None:
        """The portal a token-endpoint form is about (its code's or refresh token's), if known."""
        if form.get("grant_type") == "refresh_token":
            return self._refresh.get(form.get("refresh_token", ""))
        code = self._codes.get(form.get("code", ""))
        return code.portal_id if code is not None else None

    def authenticate(self, token: str | None, now: float) -> int:
        """Portal id of a bearer access token; raise 401 if missing, unknown or expired."""
        access = self.live_access(token, now)
        if access is None:
            raise SandboxError(401, api_error("INVALID_AUTHENTICATION", _NO_AUTH_MESSAGE))
        return access.portal_id

    def live_access(self, token: str | None, now: float) -> Access | None:
        """The unexpired :class:`Access` of ``token``, or None."""
        access = self._access.get(token or "")
        return access if access is not None and now < access.expires_at else None

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

    def issued_tokens(self) -> list[str]:
        """Every access and refresh token granted so far (expired and revoked ones included)."""
        return list(dict.fromkeys(self._issued))

    def _check_client(self, client_id: str, client_secret: str) -> None:
        ok_secret = hmac.compare_digest(client_secret.encode(), self.config.client_secret.encode())
        if client_id != self.config.client_id or not ok_secret:
            raise oauth_fail("BAD_CLIENT_ID", "invalid_client", "missing or invalid client credentials")

    def _grant(self, portal_id: int, refresh_token: str, now: float) -> TokenGrant:
        # The announced expires_in stays the configured one even when a fault shortens the real
        # lifetime: that is what "expiring early" means to the client.
        access_token = new_secret()
        self._access[access_token] = Access(portal_id, now + self.access_lifetime_s())
        self._issued += [access_token, refresh_token]
        return TokenGrant(access_token, refresh_token, int(self.config.token_lifetime_s),
                          portal_id, tuple(self.config.scopes))
