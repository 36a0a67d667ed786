"""Access tokens per portal: decrypt, cache, refresh ahead of expiry or after a 401.

Refreshes are single-flight per portal — inside a daemon one lock per portal, across daemons
a *refresh claim* on the portal's row — and no transaction or pooled connection is held
while HubSpot answers (managed PostgreSQL kills sessions idle in a transaction, and a slow
token endpoint must not hold connections the webhooks need):

1. a short transaction reads the portal row under its lock: a stored token that is still
   good (another daemon may just have refreshed it) is used as it is; else the refresh is
   claimed for this daemon for twice the HubSpot timeout, and the transaction ends;
2. HubSpot is called with no connection held;
3. a second short transaction stores the grant — only while the claim is still ours
   (compare-and-set), so a claim that lapsed and passed to another daemon cannot be
   overwritten with older tokens. A daemon that finds the claim taken waits (polling with
   short transactions) for the new token or for the claim to lapse.

HubSpot tokens live 30 minutes (protocol notes §6); we refresh 5 minutes early and always
store the refresh token the response returns. Every failure is an
:class:`~throttled.hubspot.answers.Answer` from the answer table, raised as
:class:`TokenUnavailable`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

import structlog
import trio
from sqlalchemy.engine import Connection

from throttled.clock import Clock
from throttled.crypto import DecryptionError, KeyRing
from throttled.db import portals as portals_sql
from throttled.db.engine import Database
from throttled.hubspot.answers import Action, Answer, RefersTo
from throttled.hubspot.client import HubSpotClient, TokenGrant
from throttled.hubspot.errors import HubSpotRefused
from throttled.states import PortalStatus

log = structlog.get_logger("throttled.hubspot.tokens")

REFRESH_MARGIN = dt.timedelta(minutes=5)
#: How often a daemon waiting for another's refresh looks again, seconds.
CLAIM_POLL_S = 0.1


class TokenUnavailable(Exception):
    """No usable access token for the portal now; ``answer`` says why and what to do
    (``revoked``: not installed or revoked; ``hold_portal``; ``wait``; ``retry``)."""

    def __init__(self, portal_id: int, answer: Answer) -> None:
        super().__init__(f"portal {portal_id}: {answer.reason or answer.kind}")
        self.portal_id = portal_id
        self.answer = answer


@dataclass(slots=True)
class _Cached:
    access_token: str
    expires_at: dt.datetime

    def __repr__(self) -> str:
        return f"_Cached(expires_at={self.expires_at})"


@dataclass(frozen=True, slots=True)
class _Claimed:
    refresh_token: str

    def __repr__(self) -> str:
        return "_Claimed()"


@dataclass(frozen=True, slots=True)
class _Busy:
    until: dt.datetime  # another daemon's claim lasts until then


class TokenStore:
    """Hands out valid access tokens.

    Args:
        db: the database (portals table).
        clock: the daemon's clock.
        cipher: the key ring tokens are encrypted with at rest.
        client: the HubSpot client (token endpoint).
        owner: this daemon's id (holder of refresh claims).
    """

    def __init__(self, db: Database, clock: Clock, cipher: KeyRing, client: HubSpotClient, owner: str = "") -> None:
        self.db = db
        self.clock = clock
        self.cipher = cipher
        self.client = client
        self.owner = owner or f"tokens:{id(self):x}"
        self.claim_s = 2 * client.timeout_s + 1.0
        self._cache: dict[int, _Cached] = {}
        self._locks: defaultdict[int, trio.Lock] = defaultdict(trio.Lock)
        self.refreshes = 0

    async def access_token(self, portal_id: int) -> str:
        """A token valid for at least the refresh margin.

        Raises:
            TokenUnavailable: not installed, revoked, held, or the refresh failed.
        """
        cached = self._cache.get(portal_id)
        if cached and cached.expires_at - REFRESH_MARGIN > self.clock.now():
            return cached.access_token
        return await self._refresh(portal_id, stale=cached.access_token if cached else None)

    async def after_unauthorized(self, portal_id: int, rejected_token: str) -> str:
        """HubSpot refused ``rejected_token`` (401): refresh unless someone already did.

        Raises:
            TokenUnavailable: as :meth:`access_token`.
        """
        return await self._refresh(portal_id, stale=rejected_token, force=True)

    async def install(self, grant: TokenGrant, portal_id: int) -> None:
        """Store a new installation's tokens, encrypted; the portal becomes active."""
        now = self.clock.now()
        await self.db.transaction(
            portals_sql.save_install, portal_id,
            self.cipher.encrypt(grant.access_token, portal_id, "access_token"),
            self.cipher.encrypt(grant.refresh_token, portal_id, "refresh_token"),
            grant.expires_at(now), grant.scopes, self.cipher.key_id, now,
        )
        self._cache[portal_id] = _Cached(grant.access_token, grant.expires_at(now))

    # -- refresh -------------------------------------------------------------------------

    async def _refresh(self, portal_id: int, stale: str | None, force: bool = False) -> str:
        async with self._locks[portal_id]:
            cached = self._cache.get(portal_id)
            if cached and cached.access_token != stale and cached.expires_at - REFRESH_MARGIN > self.clock.now():
                return cached.access_token  # another task refreshed while we waited
            try:
                token = await self._single_flight(portal_id, stale, force)
            except TokenUnavailable:
                self._cache.pop(portal_id, None)
                raise
            self._cache[portal_id] = token
            return token.access_token

    async def _single_flight(self, portal_id: int, stale: str | None, force: bool) -> _Cached:
        while True:
            now = self.clock.now()
            outcome = await self._read_or_claim(portal_id, stale, force, now)
            if isinstance(outcome, _Cached):
                return outcome
            if isinstance(outcome, _Busy):  # another daemon is refreshing: wait for its result
                await trio.sleep(CLAIM_POLL_S)
                continue
            return await self._call_and_store(portal_id, outcome)

    async def _read_or_claim(self, portal_id: int, stale: str | None, force: bool,
                             now: dt.datetime) -> _Cached | _Claimed | _Busy:
        try:
            return await self.db.transaction(self._claim_sync, portal_id, stale, force, now)
        except DecryptionError as exc:
            # Wrong THROTTLED_ENCRYPTION_KEYS (or a damaged row): this portal cannot be
            # served, the others can. Its executions wait; nothing is lost.
            log.error("portal.tokens_undecryptable", portal_id=portal_id, error=str(exc))
            raise TokenUnavailable(portal_id, Answer(
                Action.HOLD_PORTAL, RefersTo.APP,
                "its tokens do not decrypt: a key missing from the ring (THROTTLED_ENCRYPTION_KEYS or _KEY), "
                "or the stored tokens were altered",
                "undecryptable")) from None

    def _claim_sync(self, conn: Connection, portal_id: int, stale: str | None, force: bool,
                    now: dt.datetime) -> _Cached | _Claimed | _Busy:
        """In one short transaction under the row lock: the stored token if it is good, else
        the refresh claim (or whose it is)."""
        row = portals_sql.get_portal(conn, portal_id, lock=True)
        if row is None or row.status != PortalStatus.ACTIVE or row.refresh_token is None:
            status = row.status if row else "not installed"
            raise TokenUnavailable(portal_id, Answer(Action.REVOKED, RefersTo.PORTAL, f"portal is {status}", status))
        stored = self.cipher.decrypt(row.access_token, portal_id, "access_token") if row.access_token else None
        fresh = row.expires_at is not None and row.expires_at - REFRESH_MARGIN > now
        if stored and fresh and (stored != stale or not force):
            return _Cached(stored, row.expires_at)  # type: ignore[arg-type]
        claimed_until = row.refresh_claimed_until
        if row.refresh_claimed_by not in (None, self.owner) and claimed_until is not None and claimed_until > now:
            return _Busy(claimed_until)
        portals_sql.claim_refresh(conn, portal_id, self.owner, now + dt.timedelta(seconds=self.claim_s))
        return _Claimed(self.cipher.decrypt(row.refresh_token, portal_id, "refresh_token"))

    async def _call_and_store(self, portal_id: int, claim: _Claimed) -> _Cached:
        try:
            grant = await self.client.refresh(claim.refresh_token, portal_id)
        except HubSpotRefused as exc:
            await self._refused(portal_id, exc.answer)
            raise TokenUnavailable(portal_id, exc.answer) from None
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._end_claim(portal_id)
            raise
        now = self.clock.now()
        stored = await self.db.transaction(
            portals_sql.save_refreshed, portal_id, self.owner,
            self.cipher.encrypt(grant.access_token, portal_id, "access_token"),
            self.cipher.encrypt(grant.refresh_token, portal_id, "refresh_token"),
            grant.expires_at(now), self.cipher.key_id, now,
        )
        if not stored:  # our claim lapsed and another daemon refreshed: use what it stored
            log.warning("token.refresh_claim_lost", portal_id=portal_id)
            return await self._single_flight(portal_id, stale=None, force=False)
        self.refreshes += 1
        self.client.metrics.token_refreshes.inc()
        log.info("token.refreshed", portal_id=portal_id)
        return _Cached(grant.access_token, grant.expires_at(now))

    async def _refused(self, portal_id: int, answer: Answer) -> None:
        if answer.action is Action.REVOKED:
            if await self.db.transaction(portals_sql.revoke, portal_id, self.owner, self.clock.now()):
                log.error("portal.revoked", portal_id=portal_id, action="queues held until the app is installed again")
                self.client.metrics.revocations.inc()
            return
        log.warning("token.refresh_failed", portal_id=portal_id, outcome=answer.action.value, reason=answer.reason)
        await self._end_claim(portal_id)

    async def _end_claim(self, portal_id: int) -> None:
        with contextlib.suppress(Exception):  # the claim lapses on its own
            await self.db.transaction(portals_sql.end_refresh_claim, portal_id, self.owner)
