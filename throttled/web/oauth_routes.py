"""The OAuth install routes of the public listener.

- ``GET /api/oauth/install`` → HubSpot's authorize page, with a signed ``state`` whose nonce
  also goes to the browser in an HttpOnly cookie (``hubspot/oauth.py``).
- ``GET /api/oauth/callback`` → checks, cheapest first: the per-daemon callback limit
  (``THROTTLED_OAUTH_CALLBACKS_PER_MINUTE``; beyond it ``429``), the state's signature and age,
  the browser's cookie, then spends the state in the database (a replay is refused) — and only
  then exchanges the code with HubSpot (``control/install.py``).

Every refused callback is logged once as ``oauth.install_failed`` with its reason — never
the code, the state or the cookie; callbacks beyond the limit are counted into one line a
minute.
"""

from __future__ import annotations

import datetime as dt

import structlog
import trio
from quart import Blueprint, Response, jsonify, redirect, request
from quart.typing import ResponseReturnValue

from throttled.clock import Clock
from throttled.control.install import install as install_app
from throttled.db import oauth_states
from throttled.db.engine import Database
from throttled.hubspot import oauth
from throttled.hubspot.client import HubSpotClient
from throttled.hubspot.errors import HubSpotError, HubSpotRefused
from throttled.hubspot.tokens import TokenStore
from throttled.logs import OncePer
from throttled.web.limits import SlidingWindowLimit
from throttled.web.pages import installed_page, page

log = structlog.get_logger("throttled.web.oauth")

#: Default of ``THROTTLED_OAUTH_CALLBACKS_PER_MINUTE``: callbacks one daemon lets through to a
#: code exchange per minute. Installs are rare (an operator or a customer clicking "connect");
#: 30 a minute is far above any real burst and far below a flood.
CALLBACKS_PER_MINUTE = 30


def oauth_blueprint(*, db: Database, clock: Clock, tokens: TokenStore, client: HubSpotClient, public_url: str,
                    client_id: str | None, client_secret: str, authorize_url: str,
                    callbacks_per_minute: int = CALLBACKS_PER_MINUTE) -> Blueprint:
    """The two install routes.

    Args:
        public_url: the base HubSpot redirects to (``THROTTLED_PUBLIC_URL``); an ``https``
            one makes the install cookie ``Secure``.
        client_id: ``None`` answers the install route ``503`` (the app is not configured).
        callbacks_per_minute: callbacks admitted per rolling minute by this daemon.
    """
    blueprint = Blueprint("oauth", __name__)
    limit = SlidingWindowLimit(callbacks_per_minute, 60.0)
    limited_log = OncePer(60.0)
    secure = public_url.lower().startswith("https://")

    def failed(reason: str) -> None:
        log.warning("oauth.install_failed", reason=reason)

    @blueprint.get("/api/oauth/install")
    async def install() -> ResponseReturnValue:
        if not client_id:
            return jsonify(error="not_configured", message="HUBSPOT_CLIENT_ID is not set"), 503
        issued = oauth.make_state(client_secret, clock)
        response = redirect(oauth.authorize_url(authorize_url, client_id, public_url, issued.state))
        response.set_cookie(oauth.COOKIE, issued.nonce, max_age=oauth.STATE_MAX_AGE_S, path=oauth.COOKIE_PATH,
                            secure=secure, httponly=True, samesite="Lax")
        return response

    @blueprint.get("/api/oauth/callback")
    async def callback() -> ResponseReturnValue:
        now_s = trio.current_time()
        if not limit.admit(now_s):
            missed = limited_log.due("rate_limited", now_s)
            if missed is not None:
                log.warning("oauth.install_failed", reason="rate_limited", not_logged_since=missed,
                            limit_per_minute=limit.limit)
            wait = max(1, round(limit.retry_after_s(now_s)))
            return jsonify(error="rate_limited", message="too many install callbacks, retry later"), 429, \
                {"Retry-After": str(wait)}
        response = await _callback()
        if isinstance(response, tuple):
            response[0].delete_cookie(oauth.COOKIE, path=oauth.COOKIE_PATH, secure=secure, httponly=True,
                                      samesite="Lax")
        return response

    async def _callback() -> tuple[Response, int]:
        if "error" in request.args:
            failed("denied")
            return jsonify(error="authorization_denied", message=request.args.get("error_description", "")[:200]), 400
        try:
            nonce = oauth.check_state(client_secret, clock, request.args.get("state"), request.cookies.get(oauth.COOKIE))
        except oauth.InvalidState as exc:
            failed(exc.reason)
            return jsonify(error="invalid_state", reason=exc.reason, message=str(exc)), 400
        code = request.args.get("code")
        if not code:
            failed("code_missing")
            return jsonify(error="invalid_input", field="code", message="is required"), 400
        expires_at = clock.now() + dt.timedelta(seconds=oauth.STATE_MAX_AGE_S)
        if not await db.transaction(oauth_states.spend, oauth.nonce_digest(nonce), expires_at):
            failed("spent")
            return jsonify(error="invalid_state", reason="spent",
                           message="this install link was already used: start the install again"), 400
        try:
            portal_id = await install_app(code, oauth.redirect_uri(public_url), client=client, tokens=tokens, db=db,
                                          clock=clock)
        except HubSpotRefused as exc:
            failed(exc.answer.kind)
            if exc.answer.kind != "bad_code":
                raise  # HubSpot unavailable, rate limited or refusing our client: a 502
            # A used or expired code (e.g. the success page reloaded): start the install again.
            return page("Install link expired", "This install link was already used or has expired. "
                        "Start the installation again from HubSpot."), 400
        except HubSpotError:
            failed("hubspot_unreachable")
            raise
        return installed_page(portal_id), 200

    return blueprint
