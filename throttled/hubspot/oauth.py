"""OAuth install flow pieces: the authorize URL and a signed, expiring ``state`` bound to
the browser that started the install — pure, no I/O.

Authorize URL shape from ``../shared/docs/hubspot-protocol.md`` §6: ``client_id``, ``scope``
(space-separated), ``redirect_uri`` and ``state``. The ``state`` carries a random nonce,
signed with the app's client secret by ``itsdangerous``, and expires after 10 minutes; the
same nonce goes to the installing browser in a cookie (:data:`COOKIE`), and a callback whose
cookie does not match is refused — so a ``state`` seen elsewhere (a log, a shared link) cannot
install a portal from another browser. That each state is spent once is kept in the database
(``db/oauth_states.py``); this module only says which nonce a callback spends.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from throttled.clock import Clock

#: Scopes the throttle needs: ``automation`` (callbacks) and ``oauth``.
SCOPES = ("automation", "oauth")
STATE_MAX_AGE_S = 600
CALLBACK_PATH = "/api/oauth/callback"
#: The cookie carrying the install's nonce to the callback (HttpOnly, SameSite=Lax: HubSpot's
#: redirect back is a top-level GET, which Lax lets through).
COOKIE = "throttled_oauth"
COOKIE_PATH = "/api/oauth"


class InvalidState(Exception):
    """The OAuth ``state`` cannot complete an install.

    ``reason`` (for logs and the answer): ``missing``, ``forged_or_expired``, ``no_cookie``
    (the browser did not start this install, or blocks cookies), ``other_browser``, ``spent``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class IssuedState:
    """A new install's ``state`` (for the authorize URL) and ``nonce`` (for the cookie)."""

    state: str
    nonce: str

    def __repr__(self) -> str:
        return "IssuedState(…)"


class _ClockSigner(TimestampSigner):
    """itsdangerous signer whose timestamps come from the daemon's clock."""

    def __init__(self, *args: Any, clock: Clock, **kwargs: Any) -> None:  # TimestampSigner's own arguments
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock.now().timestamp())


def _serializer(client_secret: str, clock: Clock) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        client_secret, salt="throttled.oauth.state", signer=_ClockSigner, signer_kwargs={"clock": clock}
    )


def redirect_uri(public_url: str) -> str:
    """Where HubSpot sends the user back: ``{public_url}/api/oauth/callback``."""
    return public_url.rstrip("/") + CALLBACK_PATH


def authorize_url(authorize_base: str, client_id: str, public_url: str, state: str) -> str:
    """The HubSpot authorize URL to redirect an installing user to."""
    query = urlencode(
        {"client_id": client_id, "scope": " ".join(SCOPES), "redirect_uri": redirect_uri(public_url), "state": state},
        quote_via=quote,  # spaces as %20, as HubSpot's docs show
    )
    return f"{authorize_base}?{query}"


def make_state(client_secret: str, clock: Clock) -> IssuedState:
    """A fresh signed state (a random 128-bit nonce plus the clock's timestamp, seconds)."""
    nonce = secrets.token_urlsafe(16)
    return IssuedState(_serializer(client_secret, clock).dumps(nonce), nonce)


def check_state(client_secret: str, clock: Clock, state: str | None, cookie: str | None) -> str:
    """The nonce ``state`` carries, if it may complete an install from this browser.

    Args:
        state: the callback's ``state`` query parameter.
        cookie: the value of the :data:`COOKIE` cookie the callback came with.
    Returns:
        the nonce, to be spent once (``db/oauth_states.py``).
    Raises:
        InvalidState: missing, forged, older than :data:`STATE_MAX_AGE_S` seconds by the
            clock, or not the state of the browser's cookie.
    """
    if not state:
        raise InvalidState("missing", "missing state")
    try:
        nonce = _serializer(client_secret, clock).loads(state, max_age=STATE_MAX_AGE_S)
    except BadSignature:
        raise InvalidState("forged_or_expired", "state is forged or expired: start the install again") from None
    if not cookie:
        raise InvalidState("no_cookie", "this browser did not start the install (no install cookie): "
                           "start the install again, with cookies allowed")
    if not isinstance(nonce, str) or not hmac.compare_digest(nonce.encode(), cookie.encode()):
        raise InvalidState("other_browser", "the install was started in another browser: start it again here")
    return nonce


def nonce_digest(nonce: str) -> bytes:
    """SHA-256 of a nonce: what the spent-state table keeps (never the nonce itself)."""
    return hashlib.sha256(nonce.encode()).digest()
