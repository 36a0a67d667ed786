"""OAuth install flow pieces: the authorize URL and a signed, expiring ``state``.

Authorize URL shape from ``../shared/docs/hubspot-protocol.md`` §6: ``client_id``, ``scope``
(space-separated), ``redirect_uri`` and ``state``. The ``state`` is signed with the app's
client secret by ``itsdangerous`` and expires after 10 minutes, so a callback can only
complete an install this daemon started.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote, urlencode

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from throttled.clock import Clock

#: Scopes the throttle needs: ``automation`` (callbacks) and ``oauth``.
SCOPES = ("automation", "oauth")
STATE_MAX_AGE_S = 600
CALLBACK_PATH = "/api/oauth/callback"


class InvalidState(Exception):
    """The OAuth ``state`` is missing, forged or older than 10 minutes."""


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


def make_state(client_secret: str, clock: Clock) -> str:
    """A fresh signed state (random nonce plus timestamp)."""
    return _serializer(client_secret, clock).dumps(secrets.token_urlsafe(16))


def check_state(client_secret: str, clock: Clock, state: str | None) -> None:
    """Raises :class:`InvalidState` unless ``state`` was made by :func:`make_state` ≤ 10 min ago."""
    if not state:
        raise InvalidState("missing state")
    try:
        _serializer(client_secret, clock).loads(state, max_age=STATE_MAX_AGE_S)
    except BadSignature:
        raise InvalidState("state is forged or expired") from None
