"""The HubSpot API client: one ``httpx.AsyncClient`` with a bounded pool and timeouts.

Endpoints and shapes from ``../shared/docs/hubspot-protocol.md``: §5 callbacks complete
(204 on success, batch of ≤ 100 ``inputs``), §6 OAuth token endpoint (form-encoded) and
token metadata, §7 rate-limit answers. Every call has connect/read/write/pool timeouts.
Tokens are passed in and never logged or put in exception messages.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import structlog
import trio

from throttled.hubspot.budget import PortalBudget
from throttled.service.metrics import Metrics
from throttled.hubspot.errors import (
    BadRefreshToken,
    HubSpotRateLimited,
    HubSpotRejected,
    HubSpotUnauthorized,
    HubSpotUnavailable,
)

#: HubSpot's rate-limit window for public apps is 10 s (protocol notes §7).
DEFAULT_RATE_WINDOW_S = 10.0
#: Callbacks base paths by API version (protocol notes §5): v4 and the dated 2026-03 form.
CALLBACKS_PATHS = {"v4": "/automation/v4/actions/callbacks", "2026-03": "/automation/actions/callbacks/2026-03"}
#: Token endpoints (protocol notes §6): v3 is current, v1 is deprecated on 2027-02-16.
TOKEN_PATHS = {"v3": "/oauth/v3/token", "v1": "/oauth/v1/token"}


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


log = structlog.get_logger("throttled.hubspot.client")


class HubSpotClient:
    """Calls the HubSpot API at ``api_base``.

    Args:
        api_base: e.g. ``https://api.hubapi.com`` (tests and the demo: the sandbox).
        client_id, client_secret: the app's OAuth credentials.
        timeout_s: connect, read, write and pool timeout, seconds.
        max_connections: pool bound across all portals; also the most calls in flight (calls
            beyond it wait on a semaphore, which is cheap to cancel — unlike thousands of
            requests queued inside httpx's pool, see the stack notes).
        budget: per-portal call budget every portal-scoped call waits on (optional).
        callbacks_api: ``"v4"`` or ``"2026-03"``.
        token_api: ``"v3"`` (falls back to v1 once if HubSpot answers 404) or ``"v1"``.
    """

    def __init__(
        self, api_base: str, client_id: str, client_secret: str, *, timeout_s: float = 10.0,
        max_connections: int = 50, budget: PortalBudget | None = None, callbacks_api: str = "v4",
        token_api: str = "v3", metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.api_base = api_base.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self.budget = budget
        self.callbacks_path = CALLBACKS_PATHS[callbacks_api]
        self.token_path = TOKEN_PATHS[token_api]
        self._in_flight = trio.Semaphore(max_connections)
        self.http = httpx.AsyncClient(
            base_url=self.api_base,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"User-Agent": "throttled/0.1"},
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def complete(self, access_token: str, callback_ids: Sequence[str], portal_id: int) -> None:
        """Complete callbacks with ``hs_execution_state = SUCCESS``: one id through the single
        endpoint, 2–100 through the batch endpoint (204 either way, protocol notes §5).

        Raises:
            HubSpotUnauthorized, HubSpotRateLimited, HubSpotRejected, HubSpotUnavailable.
        """
        output = {"outputFields": {"hs_execution_state": "SUCCESS"}, "typedOutputs": {}}
        if len(callback_ids) == 1:
            path = f"{self.callbacks_path}/{quote(callback_ids[0], safe='')}/complete"
            await self._call("POST", path, bearer=access_token, json=output, portal_id=portal_id)
            return
        inputs = [{"callbackId": cid, **output} for cid in callback_ids]
        await self._call("POST", f"{self.callbacks_path}/complete", bearer=access_token,
                         json={"inputs": inputs}, portal_id=portal_id)

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
        response = await self._call("GET", f"/oauth/v1/access-tokens/{quote(access_token, safe='')}", redact_path=True)
        data = response.json()
        hub_id = int(data["hub_id"])
        if self.budget is not None:
            self.budget.charge(hub_id)  # HubSpot counts it against that portal's window (§7)
        return hub_id, [str(s) for s in data.get("scopes") or []]

    async def _token(self, form: dict[str, str]) -> TokenGrant:
        form = {**form, "client_id": self._client_id, "client_secret": self._client_secret}
        try:
            try:
                response = await self._call("POST", self.token_path, data=form)
            except HubSpotRejected as exc:
                if exc.status != 404 or self.token_path == TOKEN_PATHS["v1"]:
                    raise
                log.warning("oauth.token_v3_missing", falling_back_to="/oauth/v1/token")
                self.token_path = TOKEN_PATHS["v1"]  # an API base without v3: use v1 from now on
                response = await self._call("POST", self.token_path, data=form)
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

    async def _call(
        self, method: str, path: str, *, bearer: str | None = None, redact_path: bool = False,
        portal_id: int | None = None, **kwargs,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        shown = path.rsplit("/", 1)[0] + "/…" if redact_path else path
        slot = self.budget.slot(portal_id) if portal_id is not None and self.budget is not None else nullcontext()
        endpoint = _endpoint_label(path)
        async with slot, self._in_flight:
            started = trio.current_time()
            try:
                response = await self.http.request(method, path, headers=headers, **kwargs)
            except httpx.TimeoutException:
                self.metrics.hubspot_calls.labels(endpoint, "timeout").inc()
                raise HubSpotUnavailable(f"{method} {shown}: timed out") from None
            except httpx.TransportError as exc:
                self.metrics.hubspot_calls.labels(endpoint, "error").inc()
                raise HubSpotUnavailable(f"{method} {shown}: {type(exc).__name__}") from None
            finally:
                self.metrics.hubspot_seconds.labels(endpoint).observe(trio.current_time() - started)
        self.metrics.hubspot_calls.labels(endpoint, f"{response.status_code // 100}xx" if response.status_code != 429 else "429").inc()
        if portal_id is not None and self.budget is not None:
            self._heed_rate_headers(portal_id, response)
        if response.is_success:
            return response
        raise _error_for(response, f"{method} {shown}")

    def _heed_rate_headers(self, portal_id: int, response: httpx.Response) -> None:
        """``X-HubSpot-RateLimit-Remaining: 0`` (or a 429) blocks the portal for the window
        HubSpot names (protocol notes §7)."""
        remaining = response.headers.get("X-HubSpot-RateLimit-Remaining")
        if response.status_code == 429 or (remaining is not None and remaining.strip() == "0"):
            self.budget.block(portal_id, _retry_after_s(response))


def _endpoint_label(path: str) -> str:
    """A bounded label for a path: which kind of call, never an id or token."""
    if "/callbacks/" in path:
        return "complete_batch" if path.endswith("/callbacks/complete") or path.endswith("2026-03/complete") else "complete_one"
    if "/token" in path:
        return "token"
    if "access-tokens" in path:
        return "token_info"
    return "other"


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
