"""Per-portal send queues: batch callbacks, complete them at HubSpot, record the outcome.

One trio task per portal, spawned on first use and exiting when idle, so 10,000 portals
that were busy once do not keep 10,000 tasks. A task collects releases into batches of up
to 100 callbacks (protocol notes §5) and sends one when it is full, when no more releases
arrive for ``linger_s``, or ``flush_interval_s`` after the first one waited — whichever
comes first. Batches of one portal go out one at a time.

Outcomes: 204 → released at the acknowledgement time; 401 → refresh once and retry;
429 → wait out the window, no attempt spent (a DAILY 429 holds the portal until the next
day; releases taken before the hold was stored go back in line unsent); other 4xx → split
the batch in halves to isolate the bad callback(s), which end as done, expired or failed;
5xx/timeouts → a few retries with backoff, then the executions are left 'releasing' until
their lease lapses and the throttle worker puts them back in line.
Nothing here calls back into the worker.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import structlog
import trio

from throttled.clock import Clock
from throttled.db import executions as executions_sql
from throttled.db import portals as portals_sql
from throttled.db import queues as queues_sql
from throttled.db.engine import Database, DatabaseUnavailable
from throttled.db.executions import Release
from throttled.hubspot.client import HubSpotClient
from throttled.hubspot.errors import (
    HubSpotError,
    HubSpotRateLimited,
    HubSpotRejected,
    HubSpotUnauthorized,
    HubSpotUnavailable,
)
from throttled.hubspot.tokens import PortalNotReady, TokenStore

log = structlog.get_logger("throttled.hubspot.portal")

BATCH_SIZE = 100
RECORDS_IN_FLIGHT = 4  # successful batches whose database write may lag behind the next call
_UNAVAILABLE_RETRIES = (1.0, 2.0, 4.0)


class _Held(NamedTuple):
    """A release in our hands: ``granted`` is the lease it came with (it tells a stale copy
    from the current one), ``current`` the lease as last renewed."""

    granted: dt.datetime
    current: dt.datetime


@dataclass(frozen=True, slots=True)
class PortalQueueConfig:
    """Tuning; durations in seconds.

    ``hold_after`` batches given up in a row put a queue on hold for ``hold_s`` seconds,
    doubling with each further hold up to ``max_hold_s``; one success clears it.
    A call starts only for releases still leased ``renew_margin_s`` from now (long enough for
    the call to end); closer to lapsing, their lease is renewed to ``release_lease_s`` first.
    """

    flush_interval_s: float = 0.9
    linger_s: float = 0.01
    idle_timeout_s: float = 30.0
    buffer: int = 1000
    hold_after: int = 3
    hold_s: float = 1800.0
    max_hold_s: float = 86400.0
    release_lease_s: float = 120.0
    renew_margin_s: float = 30.0


class PortalQueues:
    """Routes releases to per-portal tasks. Start :meth:`run` in a nursery first."""

    def __init__(self, db: Database, clock: Clock, tokens: TokenStore, client: HubSpotClient, config: PortalQueueConfig = PortalQueueConfig()) -> None:
        self.db = db
        self.clock = clock
        self.tokens = tokens
        self.client = client
        self.config = config
        self._channels: dict[int, trio.MemorySendChannel[list[Release]]] = {}
        self._nursery: trio.Nursery | None = None
        self._closed = False
        self._closing = False
        self._recorders: dict[int, tuple[trio.Nursery, trio.Semaphore]] = {}
        # Handed to us, outcome not yet recorded: callback id -> the lease we hold on it.
        self._held: dict[str, _Held] = {}
        self._over_daily_limit: set[int] = set()  # portals whose last send met the DAILY 429
        self.sent_batches = 0
        self.released = 0

    async def drain(self, grace_s: float) -> bool:
        """Graceful shutdown: take nothing new, let the batches being sent finish (up to
        ``grace_s`` seconds); what is still buffered goes back in line when :meth:`run`
        ends. True if every portal task finished in time."""
        self._closing = True
        for channel in list(self._channels.values()):
            channel.close()  # wakes tasks waiting for work
        with trio.move_on_after(grace_s):
            while self._channels:
                await trio.sleep(0.02)
        return not self._channels

    @property
    def active_portals(self) -> int:
        """Portal tasks alive now."""
        return len(self._channels)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Host the portal tasks until cancelled. On the way out, every release handed to
        us whose outcome was not recorded goes back in line at once, so another daemon
        sends it without waiting out its lease."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._closed = True
            with trio.CancelScope(shield=True):
                await self._requeue(list(self._held))

    async def submit(self, portal_id: int, releases: Sequence[Release]) -> None:
        """Queue ``releases`` (all of ``portal_id``) for completion; waits if that portal's
        buffer is full (backpressure on the caller only)."""
        if not releases:
            return
        if self._closed or self._closing:  # shutting down: hand them straight back
            await self._requeue([r.callback_id for r in releases])
            return
        # A callback handed over again (its lease lapsed while a copy waited here) replaces
        # the old copy, which is then skipped: the same callback must not go out twice.
        self._held.update((r.callback_id, _Held(r.lease_until, r.lease_until)) for r in releases)
        channel = self._channels.get(portal_id)
        if channel is None:
            if self._nursery is None:
                raise RuntimeError("PortalQueues.run is not running")
            channel, receive = trio.open_memory_channel[list[Release]](self.config.buffer)
            self._channels[portal_id] = channel
            self._nursery.start_soon(self._portal_task, portal_id, channel, receive)
        await channel.send(list(releases))

    # -- one portal ----------------------------------------------------------------

    async def _portal_task(self, portal_id: int, channel, receive) -> None:
        # Recording a success (a database write) runs beside the next HTTP call instead of
        # before it: completions stay in order at HubSpot, the write latency is hidden. The
        # nursery waits for every record before the task ends.
        async with trio.open_nursery() as recorders:
            self._recorders[portal_id] = (recorders, trio.Semaphore(RECORDS_IN_FLIGHT))
            try:
                await self._portal_loop(portal_id, channel, receive)
            finally:
                self._recorders.pop(portal_id, None)

    async def _portal_loop(self, portal_id: int, channel, receive) -> None:
        carry: list[Release] = []
        try:
            while not self._closing:
                if not carry:
                    with trio.move_on_after(self.config.idle_timeout_s):
                        carry.extend(await receive.receive())
                    if not carry:
                        # No await between this check and the removal: submit() cannot
                        # slip a message into a channel we are abandoning.
                        if receive.statistics().current_buffer_used == 0:
                            return
                        continue
                await self._fill(receive, carry)
                batch, carry[:] = carry[:BATCH_SIZE], carry[BATCH_SIZE:]
                await self._send(portal_id, batch)
        except trio.EndOfChannel:
            return  # draining: what is still buffered goes back in line when run() ends
        finally:
            if self._channels.get(portal_id) is channel:
                del self._channels[portal_id]
                self._over_daily_limit.discard(portal_id)
            if self.client.budget is not None:
                self.client.budget.forget_idle()  # idle portals cost no memory

    async def _fill(self, receive, carry: list[Release]) -> None:
        deadline = trio.current_time() + self.config.flush_interval_s
        while len(carry) < BATCH_SIZE:
            with trio.move_on_at(min(deadline, trio.current_time() + self.config.linger_s)) as scope:
                carry.extend(await receive.receive())
            if scope.cancelled_caught:
                return

    async def _send(self, portal_id: int, batch: list[Release]) -> None:
        now = self.clock.now()
        live = await self._keep_leased(batch)
        if not live:
            return
        if await self._held_for_the_day(portal_id, now):
            # Taken before the portal's hold was stored: they would only meet the same 429.
            await self._record(executions_sql.requeue_releases, [r.callback_id for r in live])
            return
        try:
            await self._send_live(portal_id, live)
        except (trio.Cancelled, KeyboardInterrupt):
            raise
        except Exception as exc:  # a bug here must not take the daemon down with it
            log.error("callbacks.send_failed", portal_id=portal_id, error=type(exc).__name__)
            await self._give_up(portal_id, live, f"internal error: {type(exc).__name__}")

    async def _send_live(self, portal_id: int, releases: list[Release]) -> None:
        """Complete ``releases``; a batch HubSpot refuses (4xx) is split in halves until the
        bad callback(s) stand alone — about 2·log2(n) calls, not n — and those are ended."""
        try:
            releases = await self._complete(portal_id, releases)
        except HubSpotRejected as exc:
            if len(releases) == 1:
                await self._end_rejected(portal_id, releases[0], exc)
                return
            log.warning("callbacks.batch_rejected", portal_id=portal_id, size=len(releases), status=exc.status)
            half = len(releases) // 2
            await self._send_live(portal_id, releases[:half])
            await self._send_live(portal_id, releases[half:])
            return
        except HubSpotRateLimited as exc:  # only a DAILY limit gets here
            await self._daily_limited(portal_id, self._still_held(releases), exc)
            return
        except (HubSpotError, PortalNotReady) as exc:
            await self._give_up(portal_id, self._still_held(releases), str(exc))
            return
        if not releases:
            return  # every lease lapsed on the way: they are back in line
        ids = [r.callback_id for r in releases]
        acked_at = self.clock.now()
        self.sent_batches += 1
        self.released += len(ids)
        self.client.metrics.releases.inc(len(ids))
        recorders = self._recorders.get(portal_id)
        if recorders is None:
            await self._record(self._released, releases, acked_at)
            return
        nursery, slots = recorders
        await slots.acquire()  # at most RECORDS_IN_FLIGHT writes behind: backpressure

        async def record() -> None:
            try:
                await self._record(self._released, releases, acked_at)
            finally:
                slots.release()

        nursery.start_soon(record)

    async def _complete(self, portal_id: int, releases: list[Release]) -> list[Release]:
        """Complete ``releases`` with auth refresh (once per run of 401s: a 401 right after a
        refresh is a real refusal), 429 waits (no attempt spent) and 5xx retries; returns those
        completed — fewer when leases lapsed before a retry (see :meth:`_keep_leased`). Raises
        the final :class:`HubSpotError` (or PortalNotReady) when it gives up, and a DAILY
        :class:`HubSpotRateLimited` at once (waiting it out here would take a day)."""
        token = await self.tokens.access_token(portal_id)
        refreshed = False
        unavailable = iter(_UNAVAILABLE_RETRIES)
        while True:
            releases = await self._keep_leased(releases)
            if not releases:
                return []
            ids = [r.callback_id for r in releases]
            try:
                await self.client.complete(token, ids, portal_id)
                return releases
            except HubSpotUnauthorized:
                if refreshed:
                    raise
                token = await self.tokens.after_unauthorized(portal_id, token)
                refreshed = True
            except HubSpotRateLimited as exc:
                if exc.policy == "DAILY":
                    raise
                log.info("callbacks.rate_limited", portal_id=portal_id, wait_s=exc.retry_after_s, policy=exc.policy)
                releases = await self._keep_leased(releases, wait_s=exc.retry_after_s)
                await trio.sleep(exc.retry_after_s)  # the budget is blocked for as long, too
                refreshed = False  # a token may expire during the wait: that 401 earns a refresh
            except HubSpotUnavailable as exc:
                delay = next(unavailable, None)
                if delay is None:
                    raise
                await self._note_failure(ids, str(exc))
                releases = await self._keep_leased(releases, wait_s=delay)
                await trio.sleep(delay)
                refreshed = False

    def _still_held(self, releases: list[Release]) -> list[Release]:
        """Those of ``releases`` still ours: not settled, dropped or replaced by a newer copy."""
        return [r for r in releases if (h := self._held.get(r.callback_id)) is not None and h.granted == r.lease_until]

    async def _keep_leased(self, releases: list[Release], wait_s: float = 0.0) -> list[Release]:
        """The releases we may send now: those whose lease outlasts a call, and those close to
        lapsing whose lease the database renewed. The rest are dropped from our hands: their
        lease lapsed, so the throttle worker put them back in line and maybe another sender
        has them — sending them too would complete them twice (found by the reliability
        suite: a batch split many times over a slow HubSpot outlived its lease). ``wait_s``:
        seconds the caller will wait before its next call (a 429 or 5xx pause)."""
        now = self.clock.now()
        soon = now + dt.timedelta(seconds=self.config.renew_margin_s + wait_s)
        releases = self._still_held(releases)
        due = {r.callback_id: self._held[r.callback_id].current for r in releases
               if self._held[r.callback_id].current <= soon}
        if not due:
            return releases
        until = now + dt.timedelta(seconds=self.config.release_lease_s)
        try:
            renewed = await self.db.transaction(executions_sql.renew_leases, due, until)
        except DatabaseUnavailable:
            renewed = set()  # cannot renew: let them lapse and go back in line
        for callback_id in due:
            if callback_id in renewed:
                self._held[callback_id] = self._held[callback_id]._replace(current=until)
            else:
                del self._held[callback_id]
        if len(renewed) < len(due):
            log.info("callbacks.lease_lapsed", dropped=len(due) - len(renewed))
        return self._still_held(releases)

    async def _end_rejected(self, portal_id: int, release: Release, exc: HubSpotRejected) -> None:
        """HubSpot refused this one callback for good: done if it says "already completed",
        expired if it no longer knows it, failed otherwise. Never retried."""
        state = _terminal_state(exc)
        if state == "released":
            await self._record(self._released, [release], self.clock.now())
            self.client.metrics.releases.inc()
        else:
            await self._record(executions_sql.mark_finished, [release.callback_id], state, str(exc))
            self.client.metrics.ended.labels(state).inc()
        log.warning("callback.rejected", portal_id=portal_id, queue_id=release.queue_id, outcome=state, status=exc.status)

    async def _daily_limited(self, portal_id: int, releases: list[Release], exc: HubSpotRateLimited) -> None:
        """HubSpot's daily limit: hold the whole portal until the next day (UTC midnight; the
        account's own midnight is not known) and put these releases back in line."""
        now = self.clock.now()
        until = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(0, 5), tzinfo=dt.timezone.utc)
        log.error("portal.daily_limit", portal_id=portal_id, held_until=until.isoformat())
        await self._record(self._hold_portal, releases, portal_id, until)
        self._over_daily_limit.add(portal_id)

    async def _held_for_the_day(self, portal_id: int, now: dt.datetime) -> bool:
        """Whether this portal met HubSpot's daily limit and the database still holds it (a
        re-install lifts the hold, so the memory of the 429 alone is not trusted)."""
        if portal_id not in self._over_daily_limit:
            return False
        try:
            availability = await self.db.transaction(portals_sql.availability, portal_id)
        except DatabaseUnavailable:
            return True  # the leases lapse and the worker, which sees the hold, decides
        if availability is not None and availability[1] is not None and availability[1] > now:
            return True
        self._over_daily_limit.discard(portal_id)
        return False

    def _hold_portal(self, conn, releases: list[Release], portal_id: int, until: dt.datetime) -> None:
        portals_sql.set_rate_limited_until(conn, portal_id, until)
        executions_sql.requeue_releases(conn, [r.callback_id for r in releases])

    async def _note_failure(self, ids: list[str], reason: str) -> None:
        await self._record(executions_sql.note_attempt_failed, ids, reason, settles=False)

    async def _give_up(self, portal_id: int, releases: list[Release], reason: str) -> None:
        """The batch could not be sent: the executions wait for their lease to lapse, and
        each of their queues counts a failure (enough in a row put it on hold)."""
        log.warning("callbacks.deferred", portal_id=portal_id, size=len(releases), error=reason)
        await self._record(self._deferred, releases, reason, self.clock.now())

    def _released(self, conn, releases: list[Release], acked_at: dt.datetime) -> None:
        executions_sql.mark_released(conn, [r.callback_id for r in releases], acked_at)
        queues_sql.record_success(conn, sorted({r.queue_id for r in releases}), acked_at)

    def _deferred(self, conn, releases: list[Release], reason: str, now: dt.datetime) -> None:
        executions_sql.note_attempt_failed(conn, [r.callback_id for r in releases], reason)
        held = queues_sql.record_failure(
            conn, sorted({r.queue_id for r in releases}), reason, now,
            threshold=self.config.hold_after, hold_s=self.config.hold_s, max_hold_s=self.config.max_hold_s,
        )
        for queue_id in held:
            log.warning("queue.on_hold", queue_id=queue_id, reason=reason)
            self.client.metrics.holds.inc()

    async def _requeue(self, callback_ids: list[str]) -> None:
        if not callback_ids:
            return
        try:
            count = await self.db.transaction(executions_sql.requeue_releases, callback_ids)
            log.info("callbacks.requeued_on_shutdown", count=count)
        except DatabaseUnavailable:
            pass  # their leases lapse and the worker puts them back in line

    async def _record(self, fn, rows, *args, settles: bool = True) -> None:
        """Write an outcome for ``rows`` (releases or callback ids), retrying through short
        database outages; if it still fails the lease lapses and the callback is sent again
        (HubSpot then answers "already completed", which counts as done). ``settles``: the
        rows leave our hands (not a mid-retry note)."""
        for delay in (0.0, 0.5, 1.0, 2.0, 4.0):
            await trio.sleep(delay)
            try:
                await self.db.transaction(fn, rows, *args)
                if settles:
                    for row in rows:
                        self._held.pop(row if isinstance(row, str) else row.callback_id, None)
                return
            except DatabaseUnavailable:
                continue
        log.error("callbacks.outcome_not_recorded", operation=getattr(fn, "__name__", "?"))


def _terminal_state(exc: HubSpotRejected) -> str:
    """Classify a callback HubSpot refused for good (protocol notes §5: the reply for an
    already-completed or expired callback is UNCERTAIN, so match defensively)."""
    text = exc.message.lower()
    if "already" in text:
        return "released"
    if exc.status in (404, 410) or "expired" in text or "not found" in text:
        return "expired"
    return "failed"
