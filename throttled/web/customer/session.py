"""The customer page's session: a signed cookie naming the signed-in portal and carrying the
session's CSRF token — pure, no I/O.

The cookie's value is ``{"portal": id, "csrf": token}`` signed by itsdangerous with the app's
client secret under its own salt (:data:`SALT`: a session can never pass for an OAuth state,
nor a state for a session) and a timestamp from the daemon's clock; it is refused after
:data:`MAX_AGE_S`. itsdangerous signs, it does not encrypt: the portal id and the CSRF token
are readable by whoever holds the cookie — which is the browser that signed in, the one place
the token must reach anyway (every form carries it in :data:`CSRF_FIELD`). A page of another
site cannot read it, and with ``SameSite=Lax`` cannot make the browser send it with a POST.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature

from throttled.clock import Clock
from throttled.hubspot.oauth import clock_serializer

COOKIE = "throttled_app"
#: The cookie is sent to ``/app`` and below only.
COOKIE_PATH = "/app"
MAX_AGE_S = 12 * 3600
#: The hidden form field every POST of the page carries.
CSRF_FIELD = "csrf"
SALT = "throttled.customer.session"


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in customer: ``portal_id`` (the HubSpot account whose throttles the page
    shows) and ``csrf`` (the token every form of this session must send back)."""

    portal_id: int
    csrf: str

    def __repr__(self) -> str:  # never the token
        return f"Session(portal_id={self.portal_id})"


def issue(client_secret: str, clock: Clock, portal_id: int) -> tuple[str, Session]:
    """A new session for ``portal_id`` with a fresh 256-bit CSRF token.

    Returns:
        ``(cookie value, session)``.
    """
    session = Session(portal_id, secrets.token_urlsafe(32))
    value = clock_serializer(client_secret, clock, SALT).dumps({"portal": portal_id, "csrf": session.csrf})
    return value, session


def read(client_secret: str, clock: Clock, cookie: str | None) -> Session | None:
    """The session in a :data:`COOKIE` value; ``None`` when absent, forged (another key or
    salt, an altered payload) or older than :data:`MAX_AGE_S` seconds by ``clock``."""
    if not cookie:
        return None
    try:
        data = clock_serializer(client_secret, clock, SALT).loads(cookie, max_age=MAX_AGE_S)
    except BadSignature:  # SignatureExpired is one
        return None
    if not isinstance(data, dict):
        return None
    portal, csrf = data.get("portal"), data.get("csrf")
    if type(portal) is not int or not isinstance(csrf, str) or not csrf:
        return None
    return Session(portal, csrf)


def csrf_ok(session: Session | None, submitted: str | None) -> bool:
    """Whether a form's ``submitted`` token is this ``session``'s (constant-time); never
    without a session or a token."""
    if session is None or not submitted:
        return False
    return hmac.compare_digest(session.csrf.encode(), submitted.encode())
