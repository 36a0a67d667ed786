"""The HubSpot API client: ``httpx.AsyncClient`` pools (one per group of portals) under one
bound on calls in flight, and deadlines.

Endpoints and shapes from ``../shared/docs/hubspot-protocol.md``: §5 callbacks complete
(204 on success, batch of ≤ 100 ``inputs``), §6 OAuth token endpoint (form-encoded) and
token metadata, §7 rate limits. What an answer means is decided by the answer table
(``answers.py``), never here: :meth:`HubSpotClient.complete` returns the classified
:class:`~throttled.hubspot.answers.Answer`, the token calls raise
:class:`~throttled.hubspot.errors.HubSpotRefused` carrying one. Every call ends within
``timeout_s`` seconds, from the moment it holds its budget and pool slots (httpx's own
timeouts are per phase; four phases could take four times as long). Tokens are passed in
and never logged or put in exception messages.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import structlog
import trio

from throttled.hubspot import outputs
from throttled.hubspot.answers import (
    Action,
    Answer,
    Endpoint,
    RefersTo,
    classify,
    transport_failure,
)
from throttled.hubspot.budget import PortalBudget
from throttled.hubspot.errors import HubSpotRefused
from throttled.service.metrics import Metrics

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


#: Connection pools the calls are spread over, by portal. httpcore looks at every connection
#: of a pool on each request (it polls each idle one to see whether the server closed it), so
#: one pool of 50 connections took about half the event loop's time at 167 calls/s over 100
#: portals (a py-spy profile of bench/visits.py); a portal's calls keep to one pool, so its
#: connections stay warm.
POOLS = 8


class HubSpotClient:
    """Calls the HubSpot API at ``api_base``.

    Args:
        api_base: e.g. ``https://api.hubapi.com`` (tests and the demo: the sandbox).
        client_id, client_secret: the app's OAuth credentials.
        timeout_s: seconds a call may take, all of it (and each httpx phase).
        max_connections: the most calls in flight across all portals (calls beyond it wait on
            a semaphore, which is cheap to cancel — unlike thousands of requests queued inside
            httpx's pool, see the stack notes); open connections stay below about twice that
            (the pools' idle connections, ``max_connections / POOLS`` each, besides those in use).
        budget: per-portal call budget every portal-scoped call waits on (optional).
        callbacks_api: ``"v4"`` or ``"2026-03"``.
        token_api: ``"v3"`` (falls back to v1 once if HubSpot answers 404) or ``"v1"``.
    """

    def __init__(
        self, api_base: str, client_id: str, client_secret: str, *, timeout_s: float = 10.0,
        max_connections: int = 50, budget: PortalBudget | None = None, callbacks_api: str = "v4",
        token_api: str = "v3", metrics: Metrics | None = None,  # noqa: S107  an API version, not a secret
    ) -> None:
        self.metrics = metrics or Metrics()
        self.api_base = api_base.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self.budget = budget
        self.callbacks_path = CALLBACKS_PATHS[callbacks_api]
        self.token_path = TOKEN_PATHS[token_api]
        self.timeout_s = timeout_s
        self._in_flight = trio.Semaphore(max_connections)  # calls in flight, across every pool
        # Any pool may carry every call in flight; each keeps its share of idle connections,
        # so open connections stay below about twice max_connections. One TLS context for all.
        tls = httpx.create_ssl_context()
        limits = httpx.Limits(max_connections=max_connections,
                              max_keepalive_connections=-(-max_connections // POOLS))
        self._pools = [
            httpx.AsyncClient(base_url=self.api_base, timeout=httpx.Timeout(timeout_s), limits=limits, verify=tls,
                              headers={"User-Agent": "throttled/0.1"})
            for _ in range(POOLS)
        ]

    def _pool(self, portal_id: int | None) -> httpx.AsyncClient:
        """The connection pool of ``portal_id``'s calls (calls of no portal: the first)."""
        return self._pools[(portal_id or 0) % POOLS]

    async def aclose(self) -> None:
        """Close the connection pools (every one, even if closing one fails)."""
        async with AsyncExitStack() as stack:
            for pool in self._pools:
                stack.push_async_callback(pool.aclose)

    @asynccontextmanager
    async def slot(self, portal_id: int) -> AsyncIterator[None]:
        """Hold a call slot of ``portal_id`` (its budget and one of the pool's connections)
        for a :meth:`complete` made with ``in_slot=True``: what the caller checks inside
        (are the leases still ours?) stays true for the call, which ends within
        ``timeout_s`` seconds from here."""
        budget = self.budget.slot(portal_id) if self.budget is not None else nullcontext()
        async with budget, self._in_flight:
            yield

    async def complete(self, access_token: str, callback_ids: Sequence[str], portal_id: int, *,
                       in_slot: bool = False, fields: Mapping[str, Mapping[str, str]] | None = None) -> Answer:
        """Complete callbacks with ``hs_execution_state = SUCCESS``: one id through the single
        endpoint, 2–100 through the batch endpoint (204 either way, protocol notes §5).

        ``in_slot``: the caller holds :meth:`slot` for this portal. ``fields``: callback id →
        that release's outputs (``outputs.release_fields``). Returns HubSpot's answer,
        classified (``done`` on success); never raises for an HTTP or transport failure.
        """
        fields = fields or {}
        if len(callback_ids) == 1:
            path = f"{self.callbacks_path}/{quote(callback_ids[0], safe='')}/complete"
            endpoint, body = Endpoint.COMPLETE_ONE, outputs.completion(fields.get(callback_ids[0]))
        else:
            path = f"{self.callbacks_path}/complete"
            endpoint, body = Endpoint.COMPLETE_BATCH, {"inputs": [{"callbackId": cid, **outputs.completion(fields.get(cid))}
                                                                  for cid in callback_ids]}
        response = await self._call("POST", path, bearer=access_token, json=body, portal_id=portal_id, in_slot=in_slot)
        if isinstance(response, Answer):
            return response
        return classify(endpoint, response.status_code, response.content, response.headers, callback_ids=callback_ids)

    async def exchange_code(self, code: str, redirect_uri: str) -> TokenGrant:
        """Exchange an authorization code for tokens (``grant_type=authorization_code``).

        Raises:
            HubSpotRefused: any other answer (``failed`` for a spent code).
        """
        return await self._token({"grant_type": "authorization_code", "redirect_uri": redirect_uri, "code": code})

    async def refresh(self, refresh_token: str, portal_id: int | None = None) -> TokenGrant:
        """New access token from a refresh token.

        Raises:
            HubSpotRefused: any other answer (``revoked`` for a dead refresh token, ``wait``
                for a 429, ``retry`` for 5xx or no answer, ``hold_portal`` for a refused client).
        """
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token}, portal_id)

    async def token_info(self, access_token: str) -> tuple[int, list[str]]:
        """``(hub_id, scopes)`` of an access token (``GET /oauth/v1/access-tokens/…``,
        protocol notes §6) — the portal it belongs to and what it may do.

        Raises:
            HubSpotRefused: any answer but 200, or one without a numeric ``hub_id``.
        """
        response = await self._call("GET", f"/oauth/v1/access-tokens/{quote(access_token, safe='')}", redact_path=True)
        data = self._success(response, Endpoint.TOKEN_INFO)
        try:
            hub_id = int(data["hub_id"])
        except (KeyError, TypeError, ValueError):
            raise HubSpotRefused(Answer(Action.FAILED, RefersTo.REQUEST, "token info without a hub id",
                                        "info_refused", status=200)) from None
        if self.budget is not None:
            self.budget.charge(hub_id)  # HubSpot counts it against that portal's window (§7)
        return hub_id, [str(s) for s in data.get("scopes") or []]

    async def _token(self, form: dict[str, str], portal_id: int | None = None) -> TokenGrant:
        form = {**form, "client_id": self._client_id, "client_secret": self._client_secret}
        grant = form["grant_type"]
        response = await self._call("POST", self.token_path, data=form)
        if isinstance(response, httpx.Response) and not response.is_success:
            answer = classify(Endpoint.TOKEN, response.status_code, response.content, response.headers, grant=grant,
                              token_path="v1" if self.token_path == TOKEN_PATHS["v1"] else "v3")
            if answer.action is Action.USE_V1:
                log.warning("oauth.token_v3_missing", falling_back_to=TOKEN_PATHS["v1"])
                self.token_path = TOKEN_PATHS["v1"]  # an API base without v3: use v1 from now on
                response = await self._call("POST", self.token_path, data=form)
        data = self._success(response, Endpoint.TOKEN, grant=grant)
        try:
            scopes = data.get("scopes") or []
            return TokenGrant(
                access_token=data["access_token"],
                refresh_token=data["refresh_token"],
                expires_in_s=int(data["expires_in"]),
                hub_id=int(data["hub_id"]) if data.get("hub_id") is not None else None,
                scopes=list(scopes) if isinstance(scopes, list) else str(scopes).split(),
            )
        except (KeyError, TypeError, ValueError):
            raise HubSpotRefused(transport_failure("token endpoint: a 200 without usable tokens")) from None

    def _success(self, response: httpx.Response | Answer, endpoint: Endpoint, **context: Any) -> dict[str, Any]:
        """The JSON object of a successful answer; else raise :class:`HubSpotRefused`."""
        if isinstance(response, Answer):
            raise HubSpotRefused(response)
        if not response.is_success:
            raise HubSpotRefused(classify(endpoint, response.status_code, response.content, response.headers, **context))
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise HubSpotRefused(transport_failure(f"{endpoint.value}: a {response.status_code} without a JSON object"))
        return data

    async def _call(
        self, method: str, path: str, *, bearer: str | None = None, redact_path: bool = False,
        portal_id: int | None = None, in_slot: bool = False, **kwargs: Any,
    ) -> httpx.Response | Answer:
        """One request: the response (any status), or the transient :class:`Answer` of a
        call that got none within ``timeout_s`` seconds."""
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        shown = path.rsplit("/", 1)[0] + "/…" if redact_path else path
        slot: Any = nullcontext() if in_slot else self.slot(portal_id) if portal_id is not None else self._in_flight
        endpoint = _endpoint_label(path)
        async with slot:
            started = trio.current_time()
            try:
                with trio.fail_after(self.timeout_s):
                    response = await self._pool(portal_id).request(method, path, headers=headers, **kwargs)
            except (httpx.TimeoutException, trio.TooSlowError):
                self.metrics.hubspot_calls.labels(endpoint, "timeout").inc()
                return transport_failure(f"{method} {shown}: timed out")
            except httpx.TransportError as exc:
                self.metrics.hubspot_calls.labels(endpoint, "error").inc()
                return transport_failure(f"{method} {shown}: {type(exc).__name__}")
            finally:
                self.metrics.hubspot_seconds.labels(endpoint).observe(trio.current_time() - started)
        status = response.status_code
        self.metrics.hubspot_calls.labels(endpoint, f"{status // 100}xx" if status != 429 else "429").inc()
        if portal_id is not None and self.budget is not None:
            self._heed_rate_headers(portal_id, response)
        return response

    def _heed_rate_headers(self, portal_id: int, response: httpx.Response) -> None:
        """``X-HubSpot-RateLimit-Remaining: 0`` (or a 429) blocks the portal for the window
        HubSpot names (protocol notes §7)."""
        assert self.budget is not None
        remaining = response.headers.get("X-HubSpot-RateLimit-Remaining")
        if response.status_code == 429 or (remaining is not None and remaining.strip() == "0"):
            wait = classify(Endpoint.COMPLETE_BATCH, 429, None, response.headers).wait_s
            self.budget.block(portal_id, wait)


def _endpoint_label(path: str) -> str:
    """A bounded label for a path: which kind of call, never an id or token."""
    if "/callbacks/" in path:
        return "complete_batch" if path.endswith(("/callbacks/complete", "2026-03/complete")) else "complete_one"
    if "/token" in path:
        return "token"
    if "access-tokens" in path:
        return "token_info"
    return "other"
