"""The sandbox's HTTP face: a Quart-Trio app mapping HubSpot's URLs onto :class:`SandboxState`.

Routes follow ``shared/docs/hubspot-protocol.md``: OAuth authorize/token/access-token lookup
(§6), callback completion in the v4 and dated 2026-03 forms (§5), rate headers (§7), action
definitions with the developer key (§8). The ``/_sandbox/`` routes are test controls, not
HubSpot: counters, completions, the request log, token expiry/revocation and faults. Every rule
lives in ``state.py`` and its modules; this module parses requests, reads the clock once per
request, sleeps the delay the faults ask for (``trio.sleep``, so a test's trio clock rules it)
and maps :class:`SandboxError` to HTTP in one handler. Tokens and keys travel in URLs and
headers here, so nothing in this module logs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import trio
from quart import redirect, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from throttled.hubspot.signatures import SignedRequest, signed_headers

from .errors import SandboxError, invalid
from .oauth import TokenVersion
from .state import MALFORMED_JSON, SandboxState

T = TypeVar("T")

# The dated API version served next to v4 (§5); same bodies and answers.
DATED_CALLBACKS = "/automation/actions/callbacks/2026-03"


def create_app(state: SandboxState, clock: Callable[[], float] = time.time) -> QuartTrio:
    """Build the sandbox app over ``state``; ``clock()`` gives ``now`` in epoch seconds.

    Tests pass a settable clock to move the rate window or token expiry without sleeping.
    """
    app = QuartTrio(__name__)

    @app.get("/oauth/authorize")
    @app.get("/oauth/<int:portal_id>/authorize")
    async def authorize(portal_id: int | None = None) -> Any:
        """Auto-approve: 302 to ``redirect_uri?code=…[&state=…]`` (§6)."""
        args = request.args
        if portal_id is None and "portal_id" in args:
            portal_id = _int_or_400(args["portal_id"], "portal_id")
        redirect_uri = args.get("redirect_uri", "")
        code = state.authorize(args.get("client_id", ""), redirect_uri, portal_id, clock())
        extra = {"code": code} | ({"state": args["state"]} if "state" in args else {})
        return redirect(_add_query(redirect_uri, extra), 302)

    @app.post("/oauth/v1/token")
    @app.post("/oauth/v3/token")
    @app.post("/oauth/2026-03/token")
    async def token() -> Any:
        """Form-encoded code exchange or refresh; v3 (and 2026-03) answer the v3 body (§6)."""
        version: TokenVersion = "v1" if request.path == "/oauth/v1/token" else "v3"
        form = await request.form
        return await _answer_after(state.token_delay_s(), lambda: state.token(form, clock(), version))

    @app.get("/oauth/v1/access-tokens/<token>")
    async def access_token(token: str) -> Any:
        """Legacy token metadata (§6); counts against the portal's rate window (§7)."""
        body, headers = state.access_token_info(token, clock())
        return body, 200, headers

    @app.post("/automation/v4/actions/callbacks/<callback_id>/complete")
    @app.post(f"{DATED_CALLBACKS}/<callback_id>/complete")
    async def complete_single(callback_id: str) -> Any:
        """Complete one callback: 204 with rate headers (§5), after any fault delay."""
        body = await _json_body()
        headers = await _answer_after(state.callback_delay_s(),
                                      lambda: state.complete(_bearer(), body, clock(), callback_id=callback_id))
        return "", 204, headers

    @app.post("/automation/v4/actions/callbacks/complete")
    @app.post(f"{DATED_CALLBACKS}/complete")
    async def complete_batch() -> Any:
        """Complete up to 100 callbacks atomically: 204 with rate headers (§5), after any fault delay."""
        body = await _json_body()
        headers = await _answer_after(state.callback_delay_s(), lambda: state.complete(_bearer(), body, clock()))
        return "", 204, headers

    @app.post("/automation/v4/actions/<int:app_id>")
    async def actions_create(app_id: int) -> Any:
        """Create a custom action definition (§8): 201 with its ``id`` and ``revisionId``."""
        return state.actions.create(app_id, request.args.get("hapikey"), await _json_body()), 201

    @app.patch("/automation/v4/actions/<int:app_id>/<definition_id>")
    async def actions_update(app_id: int, definition_id: str) -> Any:
        """Update a custom action definition (§8): the stored definition, ``revisionId`` + 1."""
        return state.actions.update(app_id, request.args.get("hapikey"), definition_id, await _json_body())

    @app.get("/automation/v4/actions/<int:app_id>")
    async def actions_list(app_id: int) -> Any:
        """``{"results": [...]}``: the app's action definitions (§8)."""
        return state.actions.list(app_id, request.args.get("hapikey"))

    @app.get("/_sandbox/completions")
    async def sandbox_completions() -> Any:
        """``{"completions": [...]}`` in completion order, optionally ``?portal_id=``."""
        records = state.completions
        if "portal_id" in request.args:
            portal = _int_or_400(request.args["portal_id"], "portal_id")
            records = [r for r in records if r["portalId"] == portal]
        return {"completions": records}

    @app.get("/_sandbox/stats")
    async def sandbox_stats() -> Any:
        """Request, token-call, 429, completion and ``max_in_window`` counters since the last reset."""
        return state.stats()

    @app.get("/_sandbox/requests")
    async def sandbox_requests() -> Any:
        """``?portal_id=N`` (required) → ``{"times": [...]}``: epoch seconds of that portal's
        requests accepted into its rate window, in order."""
        if "portal_id" not in request.args:
            raise invalid("portal_id: required")
        return {"times": state.request_times(_int_or_400(request.args["portal_id"], "portal_id"))}

    @app.get("/_sandbox/faults")
    async def sandbox_faults_get() -> Any:
        """The faults in force, as JSON."""
        return state.faults.to_json()

    @app.post("/_sandbox/faults")
    async def sandbox_faults_set() -> Any:
        """Merge the JSON body into the faults (400 on an unknown field or bad value); answer them."""
        body = await _json_body()
        if body is MALFORMED_JSON:
            raise invalid("faults: expected a JSON object")
        return state.set_faults(body).to_json()

    @app.delete("/_sandbox/faults")
    async def sandbox_faults_clear() -> Any:
        """Turn every fault off; answer the (default) faults."""
        return state.clear_faults().to_json()

    @app.post("/_sandbox/reset")
    async def sandbox_reset() -> Any:
        """Clear completions, counters and rate windows; keep the app and tokens."""
        state.reset()
        return "", 204

    @app.post("/_sandbox/tokens/expire")
    async def sandbox_expire() -> Any:
        """Body ``{"portal_id": n}``: expire its access tokens now, to force 401 → refresh."""
        return {"expired": state.expire_access_tokens(await _portal_from_body(), clock())}

    @app.post("/_sandbox/tokens/revoke")
    async def sandbox_revoke() -> Any:
        """Body ``{"portal_id": n}``: revoke its refresh tokens (as on uninstall)."""
        return {"revoked": state.revoke_refresh_tokens(await _portal_from_body())}

    @app.post("/_sandbox/options")
    async def sandbox_options() -> Any:
        """Act as the workflow editor opening a dropdown: body ``{"url": optionsUrl,
        "portal_id": n, "input": "shared_queue", "q": ""}`` → the sandbox POSTs a signed
        option fetch (v3 and v2 headers, the app's client secret) to ``url`` and returns
        ``{"status": …, "body": …}`` of the app's answer."""
        body = await _json_body()
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            raise invalid("url: required")
        portal = _int_or_400(str(body.get("portal_id", "")), "portal_id")
        fetch = json.dumps({
            "origin": {"portalId": portal, "actionDefinitionId": 777, "actionDefinitionVersion": 1},
            "inputFieldName": body.get("input", "shared_queue"), "inputFields": {},
            "fetchOptions": {"q": body.get("q", "")},
        }).encode()
        signed = signed_headers(state.config.client_secret, SignedRequest("POST", body["url"], fetch),
                                int(clock() * 1000))
        async with httpx.AsyncClient(timeout=10.0) as http:
            answer = await http.post(body["url"], content=fetch, headers=signed)
        return {"status": answer.status_code, "body": answer.json() if answer.content else None}

    @app.errorhandler(SandboxError)
    async def sandbox_error(error: SandboxError) -> Any:
        # The one place a rule's error becomes an HTTP answer.
        return error.body, error.status, error.headers

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Any:
        # Unknown paths and wrong methods answer in HubSpot's JSON error shape, not HTML.
        body = {"status": "error", "message": error.description or error.name, "category": "HTTP_ERROR"}
        return body, error.code or 500

    @app.after_request
    async def count_request(response: Any) -> Any:
        # Stats describe HubSpot traffic only, so the test controls are not counted.
        route = request.endpoint or "unmatched"
        if not route.startswith("sandbox_"):
            rule = request.url_rule.rule if request.url_rule is not None else None
            state.record_request(route, response.status_code, f"{request.method} {rule}" if rule else None)
        return response

    return app


async def _answer_after(delay_s: float, answer: Callable[[], T]) -> T:
    """Run the rule ``answer()`` now, then wait ``delay_s`` seconds (``trio.sleep``) before its
    result or error goes out: a stalled completion is recorded even if the client gave up
    waiting, the ambiguity a timeout leaves with HubSpot (§5)."""
    try:
        return answer()
    finally:
        if delay_s > 0:
            await trio.sleep(delay_s)


def _bearer() -> str | None:
    """The token of an ``Authorization: Bearer …`` header, or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


async def _json_body() -> Any:
    """The parsed JSON body, or ``MALFORMED_JSON`` so the state answers 400 after auth."""
    try:
        return json.loads(await request.get_data())
    except (ValueError, UnicodeDecodeError):
        return MALFORMED_JSON


async def _portal_from_body() -> int:
    body = await _json_body()
    portal = body.get("portal_id") if isinstance(body, dict) else None
    if not isinstance(portal, int) or isinstance(portal, bool):
        raise invalid('body must be {"portal_id": <int>}')
    return portal


def _int_or_400(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise invalid(f"{name} must be an integer") from None


def _add_query(url: str, params: dict[str, str]) -> str:
    """``url`` with ``params`` appended to any query it already has."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))
