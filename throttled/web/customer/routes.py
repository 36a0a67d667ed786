"""The customer page's routes (``/app`` on the public listener).

====================================================  =============================================
route                                                 answer
====================================================  =============================================
GET  /app                                             the portal's throttles; without a session, a
                                                      "Sign in with HubSpot" page
GET  /app/login                                       302 to HubSpot's authorize page (a state of
                                                      purpose ``app``; ``web/oauth_routes.py``)
POST /app/logout                                      303 to /app, session cookie cleared
GET  /app/queues/<queue_id>                           one queue; 404 for unknown or another portal's
POST /app/queues/<queue_id>/<pause|resume|drain>      303 to the queue's page; 404 as above
GET  /app/throttles/new                               the create form
POST /app/throttles                                   create: 303 to /app#named; 400 bad field, 409 taken
GET  /app/throttles/<slug>                            the edit form; 404 unless a live one of the portal
POST /app/throttles/<slug>                            update: 303; 400 bad field; 404
POST /app/throttles/<slug>/<activate|deactivate|delete>  303; 404
====================================================  =============================================

Every page but the sign-in needs the session cookie (``session.py``); a GET without one goes
to the sign-in page. Every POST checks the form's CSRF token against the session's with
``hmac.compare_digest`` first — a missing session, token or a mismatch is ``403`` before
anything is read or changed. Only the session's portal is ever read or changed: a queue id or
slug of another portal is the same ``404`` as an unknown one. Pages are ``no-store`` and may
not be framed; the policy allows no script at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING

from quart import Blueprint, Response, redirect, request
from quart.typing import ResponseReturnValue
from sqlalchemy.engine import Connection

from throttled import control
from throttled.control import NotFound
from throttled.control.named_throttles import (
    NamedThrottleNotFound,
    NamedThrottleTaken,
    create_named,
    set_named_state,
    update_named,
)
from throttled.db import named_throttles as named_sql
from throttled.hubspot import oauth
from throttled.ingest.inputs import InvalidInput, parse_named_throttle
from throttled.states import NamedThrottleState
from throttled.throttle.block_length import horizon
from throttled.web.customer import named_forms, render, session, views
from throttled.web.customer.session import CSRF_FIELD, Session
from throttled.web.customer.sign_in import end_session
from throttled.web.oauth_routes import authorize_redirect

if TYPE_CHECKING:
    from throttled.web.app import WebDeps

#: Queue actions by the URL's last segment (``control/queues.py``; never purge).
QUEUE_ACTIONS: dict[str, Callable[[Connection, str, dt.datetime], object]] = {
    "pause": control.pause_queue, "resume": control.resume_queue, "drain": control.drain_queue}
NAMED_STATES = {"activate": NamedThrottleState.ACTIVE, "deactivate": NamedThrottleState.INACTIVE,
                "delete": NamedThrottleState.DELETED}
#: Slugs the routes take for themselves (``/app/throttles/new``).
RESERVED_SLUGS = frozenset({"new"})
_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                       "frame-ancestors 'none'; base-uri 'none'"}


def customer_blueprint(deps: WebDeps) -> Blueprint:
    """The ``/app`` routes over ``deps`` (its db, clock, client secret, OAuth settings, and the
    batcher's block limits for the forecast's horizon)."""
    blueprint = Blueprint("customer", __name__)
    secure = deps.public_url.lower().startswith("https://")
    reach = horizon(deps.batcher.limits)

    def current() -> Session | None:
        return session.read(deps.client_secret, deps.clock, request.cookies.get(session.COOKIE))

    async def posted() -> tuple[Session, dict[str, str]] | None:
        """The session and form of a POST whose CSRF token matches; ``None`` otherwise."""
        form = await request.form
        found = current()
        if not session.csrf_ok(found, form.get(CSRF_FIELD)) or found is None:
            return None
        return found, {k: v for k, v in form.items() if k != CSRF_FIELD}

    def html(body: str, status: int = 200) -> Response:
        return Response(body, status=status, content_type="text/html; charset=utf-8", headers=_HEADERS)

    def forbidden() -> Response:
        return html(render.message_page("Not allowed", "This form has expired or did not come from your Throttle "
                                        "page. Reload the page and try again."), 403)

    def not_found(s: Session) -> Response:
        return html(render.message_page("Not found", "There is no such throttle in your HubSpot account.",
                                        portal_id=s.portal_id, csrf=s.csrf), 404)

    def see(location: str) -> ResponseReturnValue:
        return redirect(location, 303)

    @blueprint.get("/app")
    async def home() -> ResponseReturnValue:
        s = current()
        if s is None:
            return html(render.sign_in_page())
        page = await deps.db.transaction(views.portal_page, s.portal_id, deps.clock.now(), reach)
        return html(render.portal_page(page, s.csrf, named_forms.named_section(page, s.csrf)))

    @blueprint.get("/app/login")
    async def login() -> ResponseReturnValue:
        if not deps.client_id:
            return html(render.message_page("Not available", "The app is not configured for sign-in yet."), 503)
        return authorize_redirect(client_secret=deps.client_secret, clock=deps.clock, client_id=deps.client_id,
                                  public_url=deps.public_url, authorize_url=deps.authorize_url, purpose=oauth.APP)

    @blueprint.post("/app/logout")
    async def logout() -> ResponseReturnValue:
        if await posted() is None:
            return forbidden()
        response = redirect("/app", 303)
        end_session(response, secure=secure)
        return response

    @blueprint.get("/app/queues/<queue_id>")
    async def queue(queue_id: str) -> ResponseReturnValue:
        s = current()
        if s is None:
            return see("/app")
        try:
            view = await deps.db.transaction(views.queue_page, s.portal_id, queue_id, deps.clock.now(), reach)
        except NotFound:
            return not_found(s)
        return html(render.queue_page(view, deps.clock.now(), s.csrf))

    @blueprint.post("/app/queues/<queue_id>/<action>")
    async def queue_action(queue_id: str, action: str) -> ResponseReturnValue:
        found = await posted()
        if found is None:
            return forbidden()
        s, _ = found
        act = QUEUE_ACTIONS.get(action)
        try:
            if act is None:
                raise NotFound(action)
            await deps.db.transaction(_owned_then, s.portal_id, queue_id, act, deps.clock.now())
        except NotFound:
            return not_found(s)
        return see(render.queue_url(queue_id))

    @blueprint.get("/app/throttles/new")
    async def new_named() -> ResponseReturnValue:
        s = current()
        if s is None:
            return see("/app")
        return html(render.document("New named throttle", named_forms.named_form(s.csrf, named_forms.NEW_VALUES),
                                    portal_id=s.portal_id, csrf=s.csrf))

    @blueprint.post("/app/throttles")
    async def create() -> ResponseReturnValue:
        found = await posted()
        if found is None:
            return forbidden()
        s, form = found
        try:
            item = parse_named_throttle(form)
            if item.slug.lower() in RESERVED_SLUGS:
                raise InvalidInput("slug", f"{item.slug!r} is reserved: choose another identifier")
            await deps.db.transaction(create_named, s.portal_id, item, deps.clock.now())
        except InvalidInput as exc:
            return form_page(s, form, None, (exc.field, exc.message), 400)
        except NamedThrottleTaken:
            return form_page(s, form, None, ("slug", "you already have a named throttle with this identifier"), 409)
        return see("/app#named")

    @blueprint.get("/app/throttles/<slug>")
    async def edit_named(slug: str) -> ResponseReturnValue:
        s = current()
        if s is None:
            return see("/app")
        named = await deps.db.transaction(named_sql.get_named, s.portal_id, slug)
        if named is None or named.state == NamedThrottleState.DELETED:
            return not_found(s)
        return form_page(s, named_forms.form_values(named), slug, None, 200)

    @blueprint.post("/app/throttles/<slug>")
    async def update(slug: str) -> ResponseReturnValue:
        found = await posted()
        if found is None:
            return forbidden()
        s, form = found
        try:
            item = parse_named_throttle(form, slug=slug)
            await deps.db.transaction(update_named, s.portal_id, item, deps.clock.now())
        except InvalidInput as exc:
            return form_page(s, form, slug, (exc.field, exc.message), 400)
        except NamedThrottleNotFound:
            return not_found(s)
        return see("/app#named")

    @blueprint.post("/app/throttles/<slug>/<action>")
    async def named_state(slug: str, action: str) -> ResponseReturnValue:
        found = await posted()
        if found is None:
            return forbidden()
        s, _ = found
        state = NAMED_STATES.get(action)
        try:
            if state is None:
                raise NamedThrottleNotFound(slug)
            await deps.db.transaction(set_named_state, s.portal_id, slug, state, deps.clock.now())
        except NamedThrottleNotFound:
            return not_found(s)
        return see("/app#named")

    def form_page(s: Session, values: dict[str, str], slug: str | None, error: tuple[str, str] | None,
                  status: int) -> Response:
        title = "New named throttle" if slug is None else "Edit named throttle"
        body = named_forms.named_form(s.csrf, values, slug=slug, error=error)
        return html(render.document(title, body, portal_id=s.portal_id, csrf=s.csrf), status)

    return blueprint


def _owned_then(conn: Connection, portal_id: int, queue_id: str,
                act: Callable[[Connection, str, dt.datetime], object], now: dt.datetime) -> None:
    """In one transaction: check the queue is the portal's (else :class:`NotFound`), then act."""
    views.owned(conn, portal_id, queue_id)
    act(conn, queue_id, now)
