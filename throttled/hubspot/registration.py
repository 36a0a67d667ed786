"""The custom workflow action definition (``action_definition.json``) and its registration.

Shape from ``../shared/docs/hubspot-protocol.md`` §8: ``actionUrl``, ``objectTypes``,
``published``, ``inputFields`` (the throttle's required and optional inputs, names fixed by
the payload samples), ``outputFields`` and ``executionRules`` (what the workflow history
shows when an action ends without a release: ``hubspot/outputs.py`` writes the outputs they
match) and English ``labels``. Registration is
``POST /automation/v4/actions/{appId}?hapikey=…`` with the app's developer API key.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import httpx

from throttled.hubspot.errors import HubSpotRejected, HubSpotUnavailable


def action_definition(public_url: str) -> dict[str, Any]:
    """The definition with ``actionUrl`` = ``{public_url}/api/hubspot/action``."""
    text = resources.files("throttled.hubspot").joinpath("action_definition.json").read_text()
    definition: dict[str, Any] = json.loads(text)
    definition["actionUrl"] = definition["actionUrl"].replace("{public_url}", public_url.rstrip("/"))
    return definition


async def register(api_base: str, app_id: int, developer_api_key: str, definition: dict[str, Any],
                   timeout_s: float = 10.0) -> dict[str, Any]:
    """Create the action on the app; returns HubSpot's answer (with the new ``id``).

    Raises:
        HubSpotRejected: 4xx (e.g. wrong app id or key); the message never holds the key.
        HubSpotUnavailable: 5xx, timeout or connection failure.
    """
    url = f"{api_base.rstrip('/')}/automation/v4/actions/{app_id}"
    async with httpx.AsyncClient(timeout=timeout_s) as http:
        try:
            response = await http.post(url, params={"hapikey": developer_api_key}, json=definition)
        except httpx.HTTPError as exc:
            raise HubSpotUnavailable(f"POST /automation/v4/actions/{app_id}: {type(exc).__name__}") from None
    if response.is_success:
        created: dict[str, Any] = response.json()
        return created
    if response.status_code >= 500:
        raise HubSpotUnavailable(f"POST /automation/v4/actions/{app_id}: HTTP {response.status_code}")
    try:
        message = str(response.json().get("message", ""))[:300]
    except ValueError:
        message = ""
    raise HubSpotRejected(response.status_code, None, message.replace(developer_api_key, "***"))
