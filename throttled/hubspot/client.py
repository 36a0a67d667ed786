"""The HubSpot API client: one ``httpx.AsyncClient`` with a bounded pool and timeouts.

Endpoints and shapes from ``../shared/docs/hubspot-protocol.md``: §5 callbacks complete
(204 on success, batch of ≤ 100 ``inputs``), §6 OAuth token endpoint (form-encoded) and
token metadata, §7 rate-limit answers. Every call has connect/read/write/pool timeouts.
Tokens are passed in and never logged or put in exception messages.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from throttled.hubspot.errors import (
    BadRefreshToken,
    HubSpotRateLimited,
    HubSpotRejected,
    HubSpotUnauthorized,
    HubSpotUnavailable,
)

#: HubSpot's rate-limit window for public apps is 10 s (protocol notes §7).
DEFAULT_RATE_WINDOW_S = 10.0
CALLBACKS_PATH = "/automation/v4/actions/callbacks"
TOKEN_PATH = "/oauth/v1/token"


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """Tokens from the token endpoint. ``expires_in_s`` is seconds from the response."""

    access_token: str
    refresh_token: str
    expires_in_s: int
    hub_id: int | None
    scopes: list[str]

    def expires_at(self, now: dt.datetime) -> dt.datetime:
        """When the access token expires, given the time the response arrived."""
        return now + dt.timedelta(seconds=self.expires_in_s)

    def __repr__(self) -> str:
        return f"TokenGrant(expires_in_s={self.expires_in_s}, hub_id={self.hub_id})"


class HubSpotClient:
    """Calls the HubSpot API at ``api_base``.

    Args:
        api_base: e.g. ``https://api.hubapi.com`` (tests and the demo: the sandbox).
        client_id, client_secret: the app's OAuth credentials.
        timeout_s: connect, read, write and pool timeout, seconds.
        max_connections: pool bound across all portals.
    """

    def __init__(self, api_base: str, client_id: str, client_secret: str, *, timeout_s: float = 10.0, max_connections: int = 50) -> None:
        self.api_base = api_base.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self.http = httpx.AsyncClient(
            base_url=self.api_base,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"User-Agent": "throttled/0.1"},
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def complete_batch(self, access_token: str, callback_ids: Sequence[str]) -> None:
        """Complete ≤ 100 callbacks with ``hs_execution_state = SUCCESS`` in one request.

        Raises:
            HubSpotUnauthorized, HubSpotRateLimited, HubSpotRejected, HubSpotUnavailable.
        """
        inputs = [
            {"callbackId": cid, "outputFields": {"hs_execution_state": "SUCCESS"}, "typedOutputs": {}}
            for cid in callback_ids
        ]
        await self._call("POST", f"{CALLBACKS_PATH}/complete", bearer=access_token, json={"inputs": inputs})

    async def complete_one(self, access_token: str, callback_id: str) -> None:
        """Complete one callback (used to isolate a bad id after a batch was refused)."""
        body = {"outputFields": {"hs_execution_state": "SUCCESS"}, "typedOutputs": {}}
        path = f"{CALLBACKS_PATH}/{quote(callback_id, safe='')}/complete"
        await self._call("POST", path, bearer=access_token, json=body)

    async def exchange_code(self, code: str, redirect_uri: str) -> TokenGrant:
        """Exchange an authorization code for tokens (``grant_type=authorization_code``)."""
        return await self._token(
            {"grant_type": "authorization_code", "redirect_uri": redirect_uri, "code": code}
        )

    async def refresh(self, refresh_token: str) -> TokenGrant:
        """New access token from a refresh token.

        Raises:
            BadRefreshToken: HubSpot answered 400 BAD_REFRESH_TOKEN / invalid_grant.
        """
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def token_info(self, access_token: str) -> tuple[int, list[str]]:
        """``(hub_id, scopes)`` of an access token (``GET /oauth/v1/access-tokens/…``,
        protocol notes §6) — the portal it belongs to and what it may do."""
        response = await self._call("GET", f"/oauth/v1/access-tokens/{access_token}", redact_path=True)
        data = response.json()
        return int(data["hub_id"]), [str(s) for s in data.get("scopes") or []]

    async def _token(self, form: dict[str, str]) -> TokenGrant:
        form = {**form, "client_id": self._client_id, "client_secret": self._client_secret}
        try:
            response = await self._call("POST", TOKEN_PATH, data=form)
        except HubSpotRejected as exc:
            if exc.status == 400 and exc.category in ("BAD_REFRESH_TOKEN", "invalid_grant") and form["grant_type"] == "refresh_token":
                raise BadRefreshToken("refresh token is invalid, expired or revoked") from None
            raise
        data = response.json()
        scopes = data.get("scopes") or []
        return TokenGrant(
            access_token=data["access_token"],
            refresh_token=data["refresh_token"],
            expires_in_s=int(data["expires_in"]),
            hub_id=int(data["hub_id"]) if data.get("hub_id") is not None else None,
            scopes=list(scopes) if isinstance(scopes, list) else str(scopes).split(),
        )

    async def _call(self, method: str, path: str, *, bearer: str | None = None, redact_path: bool = False, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        shown = path.rsplit("/", 1)[0] + "/…" if redact_path else path
        try:
            response = await self.http.request(method, path, headers=headers, **kwargs)
        except httpx.TimeoutException:
            raise HubSpotUnavailable(f"{method} {shown}: timed out") from None
        except httpx.TransportError as exc:
            raise HubSpotUnavailable(f"{method} {shown}: {type(exc).__name__}") from None
        if response.is_success:
            return response
        raise _error_for(response, f"{method} {shown}")


def _error_for(response: httpx.Response, what: str) -> Exception:
    status = response.status_code
    body = _json_or_empty(response)
    if status == 401:
        return HubSpotUnauthorized(f"{what}: 401 {body.get('category', '')}".strip())
    if status == 429:
        return HubSpotRateLimited(_retry_after_s(response), body.get("policyName"))
    if status >= 500 or status in (408, 425):
        return HubSpotUnavailable(f"{what}: HTTP {status}")
    category = body.get("status") if body.get("status") not in (None, "error") else body.get("category")
    if body.get("error") == "invalid_grant":
        category = "invalid_grant"
    return HubSpotRejected(status, category, str(body.get("message", ""))[:300])


def _retry_after_s(response: httpx.Response) -> float:
    """Seconds to wait after a 429: ``Retry-After`` (seconds) if given, else HubSpot's
    rate-limit interval header, else the 10 s window (protocol notes §7: no Retry-After is
    documented for API 429s)."""
    for header, scale in (("Retry-After", 1.0), ("X-HubSpot-RateLimit-Interval-Milliseconds", 0.001)):
        value = response.headers.get(header)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                pass
    return DEFAULT_RATE_WINDOW_S


def _json_or_empty(response: httpx.Response) -> dict:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
