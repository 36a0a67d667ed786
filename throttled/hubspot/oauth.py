"""OAuth install flow pieces: the authorize URL and a signed, expiring ``state`` bound to
the browser that started the install — pure, no I/O.

Authorize URL shape from ``../shared/docs/hubspot-protocol.md`` §6: ``client_id``, ``scope``
(space-separated), ``redirect_uri`` and ``state``. The installing browser gets a random
secret in a cookie (:data:`COOKIE`); the ``state`` carries only its SHA-256, signed with the
app's client secret by ``itsdangerous`` (which signs, it does not encrypt: anything in the
state is readable) and expires after 10 minutes. A callback whose cookie does not hash to
the state's value is refused — so a ``state`` seen elsewhere (a log, a shared link, the
authorize URL) cannot install a portal from another browser: the cookie cannot be read
back from it. A new-user trial found the first version putting the cookie's value itself in
the state. That each state is spent once is kept in the database
(``db/oauth_states.py``); this module only says which nonce a callback spends.

A state also says what it is for (:data:`PURPOSES`): the app's ``install``, or a customer's
sign-in to their page (``app``, ``web/customer``) — both come back to the one redirect URI
registered with HubSpot, and the callback branches on it. An install state is written as
before the purpose existed (the digest alone), so a state of either daemon version reads the
same during a rolling upgrade; a state without a purpose means ``install``.
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
INSTALL, APP = "install", "app"
#: What a state may be for: installing the app, or signing in to the customer page.
PURPOSES = (INSTALL, APP)


class InvalidState(Exception):
    """The OAuth ``state`` cannot complete an install.

    ``reason`` (for logs and the answer): ``missing``, ``forged_or_expired``, ``no_cookie``
    (the browser did not start this install, or blocks cookies), ``other_browser``, ``spent``,
    ``other_purpose`` (a sign-in state where an install's was expected).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class IssuedState:
    """A new install's ``state`` (for the authorize URL) and ``browser_secret`` (for the
    cookie; never in the state)."""

    state: str
    browser_secret: str

    def __repr__(self) -> str:
        return "IssuedState(…)"


@dataclass(frozen=True, slots=True)
class CheckedState:
    """A state that may complete its flow in this browser: ``nonce`` (the browser secret's
    SHA-256, hex; spent once) and ``purpose`` (one of :data:`PURPOSES`)."""

    nonce: str
    purpose: str

    def __repr__(self) -> str:
        return f"CheckedState(purpose={self.purpose!r})"


class _ClockSigner(TimestampSigner):
    """itsdangerous signer whose timestamps come from the daemon's clock."""

    def __init__(self, *args: Any, clock: Clock, **kwargs: Any) -> None:  # TimestampSigner's own arguments
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock.now().timestamp())


def clock_serializer(secret: str, clock: Clock, salt: str) -> URLSafeTimedSerializer:
    """An itsdangerous timed serializer keyed by ``secret`` whose timestamps (and ages, for
    ``loads(max_age=…)``) come from ``clock``; ``salt`` keeps each use's signatures apart."""
    return URLSafeTimedSerializer(secret, salt=salt, signer=_ClockSigner, signer_kwargs={"clock": clock})


def _serializer(client_secret: str, clock: Clock) -> URLSafeTimedSerializer:
    return clock_serializer(client_secret, clock, "throttled.oauth.state")


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


def make_state(client_secret: str, clock: Clock, purpose: str = INSTALL) -> IssuedState:
    """A fresh signed state: the SHA-256 of a new random 128-bit browser secret, plus the
    clock's timestamp (seconds) and, unless it is an install's, its ``purpose``.

    Raises:
        ValueError: ``purpose`` is not one of :data:`PURPOSES`.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown state purpose {purpose!r}")
    browser_secret = secrets.token_urlsafe(16)
    digest = _digest(browser_secret)
    payload: object = digest if purpose == INSTALL else {"nonce": digest, "purpose": purpose}
    return IssuedState(_serializer(client_secret, clock).dumps(payload), browser_secret)


def check_state(client_secret: str, clock: Clock, state: str | None, cookie: str | None) -> str:
    """What an install's state commits to, if it may complete an install from this browser
    (:func:`read_state` for a state of any purpose).

    Args:
        state: the callback's ``state`` query parameter.
        cookie: the value of the :data:`COOKIE` cookie the callback came with.
    Returns:
        the state's value (the browser secret's SHA-256, hex), to be spent once
        (``db/oauth_states.py``).
    Raises:
        InvalidState: missing, forged, older than :data:`STATE_MAX_AGE_S` seconds by the
            clock, not made for the browser's cookie, or made for a sign-in.
    """
    checked = read_state(client_secret, clock, state, cookie)
    if checked.purpose != INSTALL:
        raise InvalidState("other_purpose", "this is a sign-in link, not an install link: start the install again")
    return checked.nonce


def read_state(client_secret: str, clock: Clock, state: str | None, cookie: str | None) -> CheckedState:
    """The state's nonce and purpose, if it may complete its flow from this browser.

    Args:
        state: the callback's ``state`` query parameter.
        cookie: the value of the :data:`COOKIE` cookie the callback came with.
    Returns:
        the nonce to spend once (``db/oauth_states.py``) and the purpose (``install`` for a
        state written without one).
    Raises:
        InvalidState: as :func:`check_state` (never ``other_purpose``).
    """
    if not state:
        raise InvalidState("missing", "missing state")
    try:
        payload = _serializer(client_secret, clock).loads(state, max_age=STATE_MAX_AGE_S)
    except BadSignature:
        raise InvalidState("forged_or_expired", "state is forged or expired: start the install again") from None
    committed, purpose = _parts(payload)
    if not cookie:
        raise InvalidState("no_cookie", "this browser did not start the install (no install cookie): "
                           "start the install again, with cookies allowed")
    if not isinstance(committed, str) or not hmac.compare_digest(committed.encode(), _digest(cookie).encode()):
        raise InvalidState("other_browser", "the install was started in another browser: start it again here")
    return CheckedState(committed, purpose)


def nonce_digest(committed: str) -> bytes:
    """SHA-256 of a state's value: what the spent-state table keeps."""
    return hashlib.sha256(committed.encode()).digest()


def _parts(payload: object) -> tuple[object, str]:
    """``(nonce, purpose)`` of a signed payload: a bare digest is an install's (as written
    before purposes, and still for installs).

    Raises:
        InvalidState: a purpose this version does not know (``forged_or_expired``).
    """
    if not isinstance(payload, dict):
        return payload, INSTALL
    purpose = payload.get("purpose")
    if purpose not in PURPOSES:
        raise InvalidState("forged_or_expired", "state of an unknown kind: start again")
    return payload.get("nonce"), str(purpose)


def _digest(browser_secret: str) -> str:
    return hashlib.sha256(browser_secret.encode()).hexdigest()
