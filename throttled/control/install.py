"""Installing the app for a HubSpot account (the OAuth callback's use case).

Exchange the authorization code for tokens (protocol notes §6), learn which account they
belong to (the grant's ``hub_id``, else the token-info lookup), store them encrypted — the
portal is active again and any hold is lifted — and wake the portal's queues, putting back in
line the releases that had failed for it. The web route only maps the outcome to a page.
"""

from __future__ import annotations

from dataclasses import replace

import structlog

from throttled.clock import Clock
from throttled.control.portals import portal_installed
from throttled.db.engine import Database
from throttled.hubspot.client import HubSpotClient
from throttled.hubspot.tokens import TokenStore

log = structlog.get_logger("throttled.control.install")


async def install(code: str, redirect_uri: str, *, client: HubSpotClient, tokens: TokenStore, db: Database,
                  clock: Clock) -> int:
    """Install the app with an authorization ``code``; returns the portal (hub) id.

    Raises:
        HubSpotRefused: the code exchange or the token-info lookup failed; its answer says
            how (``failed`` with kind ``bad_code`` for a spent or expired code).
        DatabaseUnavailable: the tokens could not be stored.
    """
    grant = await client.exchange_code(code, redirect_uri)
    hub_id, scopes = await client.token_info(grant.access_token)
    portal_id = grant.hub_id or hub_id
    await tokens.install(replace(grant, scopes=grant.scopes or scopes), portal_id)
    requeued = await db.transaction(portal_installed, portal_id, clock.now())
    log.info("portal.installed", portal_id=portal_id, requeued=requeued)
    return portal_id
