"""The OAuth install routes of the public listener.

- ``GET /api/oauth/install`` → HubSpot's authorize page, with a signed ``state``; the browser
  secret it commits to goes to the browser in an HttpOnly cookie (``hubspot/oauth.py``).
- ``GET /api/oauth/callback`` → checks, cheapest first: the state's signature and age and
  the browser's cookie (no I/O); then the per-daemon limit of callbacks that may reach
  HubSpot (``THROTTLED_OAUTH_CALLBACKS_PER_MINUTE``; beyond it ``429`` — junk callbacks never
  count against it, so they cannot lock real installs out); then the state is spent in the
  database (a replay is refused), and only then is the code exchanged with HubSpot
  (``control/install.py``). The install cookie is cleared only by a callback carrying this
  browser's state: a forged link cannot cancel an install in progress.

The customer page's sign-in (``GET /app/login``, ``web/customer``) goes through the same
authorize page and comes back to the same callback — the one redirect URI registered with
HubSpot — with a state whose purpose is ``app``: after the same checks, that callback signs
the customer in (``web/customer/sign_in.py``: no tokens stored, no portal changed; an account
that never installed gets ``403``) and sends them to ``/app`` with a session cookie.

Every refused callback is logged as ``oauth.install_failed`` with its reason — never the
code, the state or the cookie — up to :data:`FAILURES_LOGGED_PER_MINUTE` lines a minute per
reason; past that, the next line says how many were not logged.
"""

from __future__ import annotations

import datetime as dt

import structlog
import trio
from quart import Blueprint, Response, jsonify, redirect, request
from quart.typing import ResponseReturnValue
from werkzeug.wrappers import Response as BaseResponse

from throttled.clock import Clock
from throttled.control.install import install as install_app
from throttled.db import oauth_states
from throttled.db.engine import Database
from throttled.hubspot import oauth
from throttled.hubspot.client import HubSpotClient
from throttled.hubspot.errors import HubSpotError, HubSpotRefused
from throttled.hubspot.tokens import TokenStore
from throttled.web.customer.sign_in import NotInstalled, sign_in, start_session
from throttled.web.limits import SlidingWindowLimit
from throttled.web.pages import installed_page, page

log = structlog.get_logger("throttled.web.oauth")

#: Default of ``THROTTLED_OAUTH_CALLBACKS_PER_MINUTE``: callbacks one daemon lets through to a
#: code exchange per minute. Installs are rare (an operator or a customer clicking "connect");
#: 30 a minute is far above any real burst and far below a flood.
CALLBACKS_PER_MINUTE = 30
#: Lines a minute per refusal reason; a flood of junk callbacks is counted, not printed.
FAILURES_LOGGED_PER_MINUTE = 10


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
    failures = _FailureLog()
    secure = public_url.lower().startswith("https://")

    @blueprint.get("/api/oauth/install")
    async def install() -> ResponseReturnValue:
        if not client_id:
            return jsonify(error="not_configured", message="HUBSPOT_CLIENT_ID is not set"), 503
        return authorize_redirect(client_secret=client_secret, clock=clock, client_id=client_id, public_url=public_url,
                                  authorize_url=authorize_url, purpose=oauth.INSTALL)

    @blueprint.get("/api/oauth/callback")
    async def callback() -> ResponseReturnValue:
        if "error" in request.args:
            failures.log("denied")
            return jsonify(error="authorization_denied", message=request.args.get("error_description", "")[:200]), 400
        try:
            checked = oauth.read_state(client_secret, clock, request.args.get("state"),
                                       request.cookies.get(oauth.COOKIE))
        except oauth.InvalidState as exc:
            failures.log(exc.reason)
            return jsonify(error="invalid_state", reason=exc.reason, message=str(exc)), 400
        response, status = await _exchange(checked)
        # This browser's own state: its install attempt is over, whatever the outcome.
        response.delete_cookie(oauth.COOKIE, path=oauth.COOKIE_PATH, secure=secure, httponly=True, samesite="Lax")
        return response, status

    async def _exchange(checked: oauth.CheckedState) -> tuple[Response | BaseResponse, int]:
        now_s = trio.current_time()
        if not limit.admit(now_s):
            failures.log("rate_limited", limit_per_minute=limit.limit)
            wait = max(1, round(limit.retry_after_s(now_s)))
            response = jsonify(error="rate_limited", message="too many install callbacks, retry later")
            response.headers["Retry-After"] = str(wait)
            return response, 429
        code = request.args.get("code")
        if not code:
            failures.log("code_missing")
            return jsonify(error="invalid_input", field="code", message="is required"), 400
        expires_at = clock.now() + dt.timedelta(seconds=oauth.STATE_MAX_AGE_S)
        if not await db.transaction(oauth_states.spend, oauth.nonce_digest(checked.nonce), expires_at):
            failures.log("spent")
            return jsonify(error="invalid_state", reason="spent",
                           message="this install link was already used: start the install again"), 400
        if checked.purpose == oauth.APP:
            return await _sign_in(code)
        try:
            portal_id = await install_app(code, oauth.redirect_uri(public_url), client=client, tokens=tokens, db=db,
                                          clock=clock)
        except HubSpotRefused as exc:
            failures.log(exc.answer.kind)
            if exc.answer.kind != "bad_code":
                raise  # HubSpot unavailable, rate limited or refusing our client: a 502
            # A used or expired code (e.g. the success page reloaded): start the install again.
            return page("Install link expired", "This install link was already used or has expired. "
                        "Start the installation again from HubSpot."), 400
        except HubSpotError:
            failures.log("hubspot_unreachable")
            raise
        return installed_page(portal_id), 200

    async def _sign_in(code: str) -> tuple[Response | BaseResponse, int]:
        try:
            portal_id = await sign_in(code, oauth.redirect_uri(public_url), client=client, db=db)
        except NotInstalled:
            return page("Not installed", "This HubSpot account has not installed the app. Ask an admin of the "
                        "account to install Throttle first, then sign in again.",
                        ("/api/oauth/install", "Install Throttle")), 403
        except HubSpotRefused as exc:
            failures.log(exc.answer.kind)
            if exc.answer.kind != "bad_code":
                raise
            return page("Sign-in link expired", "This sign-in link was already used or has expired.",
                        ("/app/login", "Sign in with HubSpot")), 400
        except HubSpotError:
            failures.log("hubspot_unreachable")
            raise
        response = redirect("/app", 303)
        start_session(response, client_secret, clock, portal_id, secure=secure)
        return response, 303

    return blueprint


def authorize_redirect(*, client_secret: str, clock: Clock, client_id: str, public_url: str, authorize_url: str,
                       purpose: str) -> BaseResponse:
    """A redirect (302) to HubSpot's authorize page with a new signed state of ``purpose``
    (``install`` or ``app``), and the browser secret it commits to in the install cookie
    (HttpOnly, SameSite=Lax, path ``/api/oauth``, for the state's 10 minutes; ``Secure`` when
    ``public_url`` is https). The redirect URI is always ``{public_url}/api/oauth/callback``."""
    issued = oauth.make_state(client_secret, clock, purpose)
    response = redirect(oauth.authorize_url(authorize_url, client_id, public_url, issued.state))
    response.set_cookie(oauth.COOKIE, issued.browser_secret, max_age=oauth.STATE_MAX_AGE_S, path=oauth.COOKIE_PATH,
                        secure=public_url.lower().startswith("https://"), httponly=True, samesite="Lax")
    return response


class _FailureLog:
    """``oauth.install_failed`` lines: each failure, up to :data:`FAILURES_LOGGED_PER_MINUTE`
    a minute per reason; the next line after a silence says how many were not logged."""

    def __init__(self) -> None:
        self._windows: dict[str, SlidingWindowLimit] = {}
        self._missed: dict[str, int] = {}

    def log(self, reason: str, **fields: object) -> None:
        window = self._windows.setdefault(reason, SlidingWindowLimit(FAILURES_LOGGED_PER_MINUTE, 60.0))
        if not window.admit(trio.current_time()):
            self._missed[reason] = self._missed.get(reason, 0) + 1
            return
        log.warning("oauth.install_failed", reason=reason, not_logged_since=self._missed.pop(reason, 0), **fields)
