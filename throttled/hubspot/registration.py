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
    """The definition with ``{public_url}`` filled in everywhere: ``actionUrl`` =
    ``{public_url}/api/hubspot/action``, the named throttles' ``optionsUrl`` =
    ``{public_url}/api/hubspot/options``, the customer page's address in a description."""
    text = resources.files("throttled.hubspot").joinpath("action_definition.json").read_text()
    base = json.dumps(public_url.rstrip("/"))[1:-1]  # as it must appear inside a JSON string
    definition: dict[str, Any] = json.loads(text.replace("{public_url}", base))
    return definition


async def register(api_base: str, app_id: int, developer_api_key: str, definition: dict[str, Any],
                   timeout_s: float = 10.0) -> tuple[dict[str, Any], bool]:
    """Create the action on the app, or update the one already there with the same
    ``actionUrl`` (so running it twice never makes a second Throttle action in HubSpot's
    editor); returns HubSpot's answer and whether it created one.

    Endpoints (protocol notes §8, HubSpot's custom workflow action API v4): ``GET
    /automation/v4/actions/{appId}`` lists (``results``, paged by ``paging.next.after``),
    ``POST`` creates, ``PATCH /automation/v4/actions/{appId}/{definitionId}`` updates.
    Raises:
        HubSpotRejected: 4xx (e.g. wrong app id or key); the message never holds the key.
        HubSpotUnavailable: 5xx, timeout or connection failure.
    """
    base = f"{api_base.rstrip('/')}/automation/v4/actions/{app_id}"
    async with httpx.AsyncClient(timeout=timeout_s, params={"hapikey": developer_api_key}) as http:
        existing = await _find(http, base, definition["actionUrl"], developer_api_key)
        if existing is None:
            return await _call(http, "POST", base, definition, developer_api_key), True
        return await _call(http, "PATCH", f"{base}/{existing}", definition, developer_api_key), False


async def _find(http: httpx.AsyncClient, base: str, action_url: str, key: str) -> str | None:
    """The id of the app's definition with ``action_url``, if any (at most 20 pages)."""
    after: str | None = None
    for _ in range(20):
        page = await _call(http, "GET", base + (f"?after={after}" if after else ""), None, key)
        for found in page.get("results", []):
            if found.get("actionUrl") == action_url:
                return str(found["id"])
        after = (page.get("paging") or {}).get("next", {}).get("after")
        if not after:
            return None
    return None


async def _call(http: httpx.AsyncClient, method: str, url: str, body: dict[str, Any] | None, key: str) -> dict[str, Any]:
    what = f"{method} {url.split('?')[0].split('/automation/', 1)[-1]}"
    try:
        response = await http.request(method, url, json=body)
    except httpx.HTTPError as exc:
        raise HubSpotUnavailable(f"{what}: {type(exc).__name__}") from None
    if response.is_success:
        answer: dict[str, Any] = response.json()
        return answer
    if response.status_code >= 500:
        raise HubSpotUnavailable(f"{what}: HTTP {response.status_code}")
    try:
        message = str(response.json().get("message", ""))[:300]
    except ValueError:
        message = ""
    raise HubSpotRejected(response.status_code, None, message.replace(key, "***"))
