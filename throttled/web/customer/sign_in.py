"""Signing a customer in after HubSpot's OAuth redirect (the callback's ``app`` purpose), and
the session cookie on the way out.

Sign-in has no side effect: the code is exchanged (HubSpot then knows the user approved the
app) only to learn which account the user chose — the grant's ``hub_id``, else the token-info
lookup — and the tokens are dropped, never stored; the portal's row is read, never written.
An account that never installed the app is refused (:class:`NotInstalled`).
"""

from __future__ import annotations

import structlog
from quart import Response
from werkzeug.wrappers import Response as BaseResponse

from throttled.clock import Clock
from throttled.db import portals as portals_sql
from throttled.db.engine import Database
from throttled.hubspot.client import HubSpotClient
from throttled.web.customer import session

log = structlog.get_logger("throttled.web.customer")


class NotInstalled(Exception):
    """The HubSpot account the user signed in with has not installed the app."""

    def __init__(self, portal_id: int) -> None:
        super().__init__(f"portal {portal_id} has not installed the app")
        self.portal_id = portal_id


async def sign_in(code: str, redirect_uri: str, *, client: HubSpotClient, db: Database) -> int:
    """The portal (hub) id a customer signs in as, from the authorization ``code``.

    Raises:
        HubSpotRefused: the code exchange or the token-info lookup failed (``bad_code`` for a
            spent or expired code).
        NotInstalled: the account has no row in ``portals``.
    """
    grant = await client.exchange_code(code, redirect_uri)
    portal_id = grant.hub_id or (await client.token_info(grant.access_token))[0]
    if await db.transaction(portals_sql.availability, portal_id) is None:
        log.info("customer.sign_in_refused", reason="not_installed", portal_id=portal_id)
        raise NotInstalled(portal_id)
    log.info("customer.signed_in", portal_id=portal_id)
    return portal_id


def start_session(response: Response | BaseResponse, client_secret: str, clock: Clock, portal_id: int, *, secure: bool) -> None:
    """Put a new session of ``portal_id`` on ``response`` (HttpOnly, SameSite=Lax, path
    ``/app``, 12 hours; ``Secure`` when the public URL is https)."""
    value, _ = session.issue(client_secret, clock, portal_id)
    response.set_cookie(session.COOKIE, value, max_age=session.MAX_AGE_S, path=session.COOKIE_PATH, secure=secure,
                        httponly=True, samesite="Lax")


def end_session(response: Response | BaseResponse, *, secure: bool) -> None:
    """Clear the session cookie on ``response``."""
    response.delete_cookie(session.COOKIE, path=session.COOKIE_PATH, secure=secure, httponly=True, samesite="Lax")
