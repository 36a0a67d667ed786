"""``POST /api/hubspot/options``: the workflow editor's dropdown of named throttles.

The action definition's ``shared_queue`` input names this route as its ``optionsUrl``:
while a customer edits a throttle step, HubSpot fetches the options with a signed request
carrying the account (``origin.portalId``) — verified like the action webhook
(``hubspot_signed.py``) — and we answer the portal's *active* named throttles only.

Shapes, from HubSpot's custom-action reference ("Using external data", [CWA]; the
stored protocol notes only say option fetches exist, so this is parsed defensively and
marked uncertain in ``docs/hubspot.md``): the request body holds ``origin.portalId``,
``inputFieldName``, ``inputFields`` and ``fetchOptions`` (``q``: the text typed into the
dropdown, ``after``: a page cursor); the answer is ``{"options": [{"label", "value",
"description"}], "searchable": true}`` (no ``after``: one page holds every match).
"""

from __future__ import annotations

import json
from typing import Any

from quart import Blueprint, jsonify
from quart.typing import ResponseReturnValue

from throttled.clock import Clock
from throttled.db import named_throttles as named_sql
from throttled.db.engine import Database
from throttled.hubspot.signatures import SignatureError
from throttled.ingest.inputs import InvalidInput, parse_int
from throttled.throttle.policy import step_of
from throttled.web.hubspot_signed import RefusalLog, signed_body

OPTIONS_PATH = "/api/hubspot/options"
#: Most options one answer lists (a portal with more gets the first ones matching ``q``).
MAX_OPTIONS = 200


def options_blueprint(*, db: Database, clock: Clock, client_secret: str, public_url: str,
                      accepted: tuple[str, ...]) -> Blueprint:
    """The option-fetch route. A bad or missing signature answers 401 (``SignatureError``),
    a body without a portal 400, before anything is read from the database."""
    blueprint = Blueprint("options", __name__)
    refused = RefusalLog("options.rejected")  # "the dropdown is empty" must leave a trace

    @blueprint.post(OPTIONS_PATH)
    async def options() -> ResponseReturnValue:
        try:
            body = await signed_body(client_secret, public_url, clock, accepted)
        except SignatureError as exc:
            refused("unauthorized", exc.reason)
            raise
        try:
            portal_id, query = _parse(body)
        except InvalidInput as exc:
            refused("invalid", exc.field)
            raise
        named = await db.transaction(lambda conn: named_sql.list_named(conn, portal_id, states=("active",)))
        matches = [n for n in named if not query or query in n.display_name.lower() or query in n.slug.lower()]
        return jsonify(options=[option(n) for n in matches[:MAX_OPTIONS]], searchable=True)

    return blueprint


def option(named: named_sql.NamedThrottle) -> dict[str, str]:
    """One dropdown entry: the display name, the slug steps send, the settings in words."""
    return {"label": named.display_name, "value": named.slug, "description": step_of(named).describe()}


def _parse(body: bytes) -> tuple[int, str]:
    """``(portal_id, lower-cased search text)`` of an option fetch.

    Raises:
        InvalidInput: not a JSON object, or no valid ``origin.portalId``.
    """
    try:
        data: Any = json.loads(body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError):
        raise InvalidInput("body", "not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidInput("body", "must be a JSON object")
    origin = data.get("origin")
    portal = origin.get("portalId") if isinstance(origin, dict) else None
    portal_id = parse_int(data.get("portalId") if portal is None else portal, "origin.portalId", minimum=1)
    fetch = data.get("fetchOptions")
    query = fetch.get("q") if isinstance(fetch, dict) else None
    if query is not None and not isinstance(query, str):
        raise InvalidInput("fetchOptions.q", "must be a string")
    return portal_id, query.strip().lower()[:100] if query else ""
