"""Access tokens per portal: decrypt, cache, refresh ahead of expiry or after a 401.

Refreshes are single-flight per portal: inside a daemon one lock per portal, across daemons
the portal's row lock, held for the duration of the token call. However many portal-queue
tasks on however many daemons need a fresh token, one token call is made and the others
reuse its result. HubSpot tokens live 30 minutes (protocol notes §6); we refresh 5 minutes
early, and always store the refresh token the response returns.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

import structlog
import trio

from throttled.clock import Clock
from throttled.crypto import DecryptionError, KeyRing
from throttled.db import portals as portals_sql
from throttled.db.engine import Database
from throttled.hubspot.client import HubSpotClient, TokenGrant
from throttled.hubspot.errors import BadRefreshToken

log = structlog.get_logger("throttled.hubspot.tokens")

REFRESH_MARGIN = dt.timedelta(minutes=5)


class PortalNotReady(Exception):
    """The portal has no usable tokens (never installed, or revoked); ``status`` says which."""

    def __init__(self, portal_id: int, status: str) -> None:
        super().__init__(f"portal {portal_id} is {status}")
        self.portal_id = portal_id
        self.status = status


@dataclass(slots=True)
class _Cached:
    access_token: str
    expires_at: dt.datetime

    def __repr__(self) -> str:
        return f"_Cached(expires_at={self.expires_at})"


class TokenStore:
    """Hands out valid access tokens.

    Args:
        db: the database (portals table).
        clock: the daemon's clock.
        cipher: the key ring tokens are encrypted with at rest.
        client: the HubSpot client (token endpoint).
    """

    def __init__(self, db: Database, clock: Clock, cipher: KeyRing, client: HubSpotClient) -> None:
        self.db = db
        self.clock = clock
        self.cipher = cipher
        self.client = client
        self._cache: dict[int, _Cached] = {}
        self._locks: defaultdict[int, trio.Lock] = defaultdict(trio.Lock)
        # A refresh holds a pooled connection (and the portal's row lock) while HubSpot
        # answers; at most a quarter of the pool may wait on HubSpot so ingest never starves.
        self._refresh_slots = trio.CapacityLimiter(max(1, int(db.limiter.total_tokens) // 4))
        self.refreshes = 0

    async def access_token(self, portal_id: int) -> str:
        """A token valid for at least the refresh margin.

        Raises:
            PortalNotReady: not installed or revoked.
            HubSpotError: the refresh call failed.
        """
        cached = self._cache.get(portal_id)
        if cached and cached.expires_at - REFRESH_MARGIN > self.clock.now():
            return cached.access_token
        return await self._refresh(portal_id, stale=cached.access_token if cached else None)

    async def after_unauthorized(self, portal_id: int, rejected_token: str) -> str:
        """HubSpot refused ``rejected_token`` (401): refresh unless someone already did."""
        return await self._refresh(portal_id, stale=rejected_token, force=True)

    async def install(self, grant: TokenGrant, portal_id: int) -> None:
        """Store a new installation's tokens, encrypted; the portal becomes active."""
        now = self.clock.now()
        await self.db.transaction(
            portals_sql.save_install, portal_id,
            self.cipher.encrypt(grant.access_token, portal_id),
            self.cipher.encrypt(grant.refresh_token, portal_id),
            grant.expires_at(now), grant.scopes, self.cipher.key_id, now,
        )
        self._cache[portal_id] = _Cached(grant.access_token, grant.expires_at(now))

    async def _refresh(self, portal_id: int, stale: str | None, force: bool = False) -> str:
        async with self._locks[portal_id]:
            now = self.clock.now()
            cached = self._cache.get(portal_id)
            if cached and cached.access_token != stale and cached.expires_at - REFRESH_MARGIN > now:
                return cached.access_token  # another task refreshed while we waited
            async with self._refresh_slots:
                try:
                    outcome = await self.db.transaction(self._refresh_locked, portal_id, stale, force)
                except DecryptionError as exc:
                    # Wrong THROTTLED_ENCRYPTION_KEY (or a damaged row): this portal cannot be
                    # served, the others can. Its executions wait; nothing is lost.
                    log.error("portal.tokens_undecryptable", portal_id=portal_id, error=str(exc))
                    outcome = PortalNotReady(portal_id, "unusable: its tokens do not decrypt with THROTTLED_ENCRYPTION_KEY")
            if isinstance(outcome, PortalNotReady):
                self._cache.pop(portal_id, None)
                raise outcome
            cached, refreshed = outcome
            if refreshed:
                self.refreshes += 1
                self.client.metrics.token_refreshes.inc()
                log.info("token.refreshed", portal_id=portal_id)
            self._cache[portal_id] = cached
            return cached.access_token

    def _refresh_locked(
        self, conn, portal_id: int, stale: str | None, force: bool
    ) -> tuple[_Cached, bool] | PortalNotReady:
        """In a database thread, holding the portal's row lock: reuse the stored token if it
        is good (another daemon may have just refreshed it), else call the token endpoint —
        back in trio — and store the grant before the lock is released.

        The row lock makes a refresh single-flight across daemons, not only across tasks:
        a second daemon waits for the first and then finds the new token stored, instead of
        spending another refresh (or, should HubSpot rotate refresh tokens, presenting a
        spent one and wrongly marking the portal revoked). Returns ``(token, refreshed)``,
        or the :class:`PortalNotReady` to raise once the transaction has committed.
        """
        row = portals_sql.get_portal(conn, portal_id, lock=True)
        if row is None or row.status != "active" or row.refresh_token is None:
            return PortalNotReady(portal_id, row.status if row else "not installed")
        now = trio.from_thread.run_sync(self.clock.now)
        stored = self.cipher.decrypt(row.access_token, portal_id) if row.access_token else None
        fresh = row.expires_at is not None and row.expires_at - REFRESH_MARGIN > now
        if stored and fresh and (stored != stale or not force):
            return _Cached(stored, row.expires_at), False
        try:
            grant = trio.from_thread.run(self.client.refresh, self.cipher.decrypt(row.refresh_token, portal_id))
        except BadRefreshToken:
            portals_sql.set_status(conn, portal_id, "revoked", now)
            log.error("portal.revoked", portal_id=portal_id, action="queues held until the app is installed again")
            self.client.metrics.revocations.inc()
            return PortalNotReady(portal_id, "revoked")
        now = trio.from_thread.run_sync(self.clock.now)
        portals_sql.save_refreshed(
            conn, portal_id,
            self.cipher.encrypt(grant.access_token, portal_id),
            self.cipher.encrypt(grant.refresh_token, portal_id),
            grant.expires_at(now), self.cipher.key_id, now,
        )
        return _Cached(grant.access_token, grant.expires_at(now)), True
