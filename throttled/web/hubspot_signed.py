"""Requests HubSpot signs — the action webhook and the option fetches: read and verified.

One owner for "is this really HubSpot": the URI HubSpot signed is our public base plus the
raw path and query as received (behind a proxy the bind address differs from what HubSpot
called), checked with ``hubspot/signatures.py`` (v3 when present, else v2; protocol notes §4).
"""

from __future__ import annotations

import structlog
import trio
from quart import request

from throttled.clock import Clock
from throttled.hubspot.signatures import SignedRequest, verify
from throttled.logs import OncePer

log = structlog.get_logger("throttled.web")

#: What a signature refusal usually means, for the operator reading the log.
_UNAUTHORIZED_NOTE = ("signature refusals usually mean THROTTLED_PUBLIC_URL or HUBSPOT_CLIENT_SECRET differ from what "
                      "HubSpot uses")


class RefusalLog:
    """Warning lines for refused HubSpot requests (``event``: ``webhook.rejected``,
    ``options.rejected``): one per kind of refusal and reason a minute, the next one saying
    how many were not logged. Never the body (personal data, maybe a signature)."""

    def __init__(self, event: str) -> None:
        self.event = event
        self._lines = OncePer(60.0)

    def __call__(self, outcome: str, reason: str) -> None:
        """Log a refusal: ``outcome`` its kind (``unauthorized``, ``invalid``, …), ``reason``
        the check or field that refused it."""
        missed = self._lines.due((outcome, reason), trio.current_time())
        if missed is not None:
            log.warning(self.event, outcome=outcome, reason=reason, not_logged_since=missed,
                        note=_UNAUTHORIZED_NOTE if outcome == "unauthorized" else None)


def public_uri(public_url: str) -> str:
    """The URI HubSpot signed for the current request: ``public_url`` plus the raw path and
    query as received."""
    raw_path = request.scope.get("raw_path") or request.path.encode()
    query = request.scope.get("query_string", b"")
    uri = public_url.rstrip("/") + raw_path.decode("latin-1")
    return uri + ("?" + query.decode("latin-1") if query else "")


async def signed_body(client_secret: str, public_url: str, clock: Clock, accepted: tuple[str, ...]) -> bytes:
    """The current request's body, once its HubSpot signature checks out.

    Raises:
        SignatureError: missing, stale or forged signature (the web layer answers 401).
    """
    body: bytes = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    signed = SignedRequest(request.method, public_uri(public_url), body)
    verify(client_secret, signed, request.headers, now_ms=int(clock.now().timestamp() * 1000), accepted=accepted)
    return body
