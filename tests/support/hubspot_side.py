"""HubSpot's side for tests that drive the HubSpot client directly: a server that never
answers, and tokens granted by the sandbox through its real authorize redirect."""

from __future__ import annotations

import httpx
import trio

from throttled.hubspot.client import HubSpotClient, TokenGrant

#: The redirect URI the tests' OAuth exchanges use (the sandbox only echoes it).
REDIRECT = "http://127.0.0.1/cb"


async def silent_server(accepted: list[int] | None = None, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Accept connections on a free loopback port (given to ``task_status``) and never
    answer: HubSpot stalling. Each accepted connection appends 1 to ``accepted``, if given."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])

    async def hold(stream):
        if accepted is not None:
            accepted.append(1)
        async with stream:
            await trio.sleep_forever()

    await trio.serve_listeners(hold, listeners)


async def authorization_code(sandbox_url: str, client_id: str) -> str:
    """A fresh code from the sandbox's authorize redirect, as a user installing the app."""
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{sandbox_url}/oauth/authorize", params={"client_id": client_id, "redirect_uri": REDIRECT})
    return answer.headers["Location"].split("code=")[1].split("&")[0]


async def sandbox_grant(sandbox_url: str, client_id: str, client: HubSpotClient) -> TokenGrant:
    """Tokens the sandbox grants ``client`` for a fresh authorization code."""
    return await client.exchange_code(await authorization_code(sandbox_url, client_id), REDIRECT)
