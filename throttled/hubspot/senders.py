"""Per-portal send queues: lifecycle, batching and I/O; the decisions are the send policy's.

One trio task per portal, spawned on first use and exiting when idle, so 10,000 portals
that were busy once do not keep 10,000 tasks. A task collects releases into batches of up
to 100 callbacks (protocol notes §5) and sends one when it is full, when no more releases
arrive for ``linger_s``, or ``flush_interval_s`` after the first one waited — whichever
comes first. Batches of one portal go out one at a time.

Each batch is handed to the send policy (``send_policy.py``), which decides what to do with
every HubSpot answer; this module carries its commands out: calls (only on releases still
leased for a whole call, renewing leases close to lapsing), token refreshes, pauses, and
the outcome writes (``recorder.py``). A success is recorded beside the next call rather than
before it. The stamp before a call and the record of a success are group commits: those of
every portal due meanwhile share one transaction (``db/group_commit.py``), since many
portals sending a few callbacks each made one transaction per batch the release path's
cost. Nothing here calls back into the worker.

Size: about 450 lines because the batch's driver (``_Batch``) and the outcome dispatch share
the sender's leases, recorder and metrics; every decision already lives in ``send_policy.py``
and every write in ``recorder.py``, so what stays is one task's lifecycle and its I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import structlog
import trio

from throttled.clock import Clock
from throttled.db import executions as executions_sql
from throttled.db import portals as portals_sql
from throttled.db.engine import Database, DatabaseUnavailable, through_outage
from throttled.db.executions import Lease
from throttled.db.group_commit import GroupCommit
from throttled.hubspot import outputs, recorder, send_policy
from throttled.hubspot.answers import Action, Answer, RefersTo
from throttled.hubspot.client import HubSpotClient
from throttled.hubspot.recorder import HoldConfig, Recorder
from throttled.hubspot.send_policy import (
    Call,
    Ended,
    Failing,
    GiveUp,
    HoldPortal,
    Pause,
    Refresh,
    Released,
    Reply,
    Token,
    send_flow,
)
from throttled.hubspot.tokens import TokenStore, TokenUnavailable
from throttled.states import ExecutionState

log = structlog.get_logger("throttled.hubspot.portal")

BATCH_SIZE = 100
RECORDS_IN_FLIGHT = 4  # successful batches whose database write may lag behind the next call


#: What a call's stamp gives back: ``({callback id: lease} still ours, the stamp)``.
_Stamped = tuple[dict[str, dt.datetime], dt.datetime]
_NEVER = dt.datetime.min.replace(tzinfo=dt.UTC)  # the stamp of a write cancelled midway (nothing kept)


class _Held(NamedTuple):
    """A release in our hands: ``granted`` is the lease it came with (it tells a stale copy
    from the current one), ``current`` the lease as last renewed, ``since`` when it was
    handed to us (trio's clock, seconds)."""

    granted: dt.datetime
    current: dt.datetime
    since: float = 0.0


#: Weight of the newest batch in :attr:`PortalSenders.ack_latency_s` (an exponential average).
ACK_LATENCY_WEIGHT = 0.1


@dataclass(frozen=True, slots=True)
class SenderConfig:
    """Tuning; durations in seconds.

    A call starts only for releases still leased ``renew_margin_s`` from now (long enough for
    the call to end and its outcome to be written); closer to lapsing, their lease is renewed
    to ``release_lease_s`` first. ``holds``: queue and portal holds.
    """

    flush_interval_s: float = 0.9
    linger_s: float = 0.01
    idle_timeout_s: float = 30.0
    buffer: int = 1000
    release_lease_s: float = 120.0
    renew_margin_s: float = 30.0
    retry_delays: tuple[float, ...] | None = None  # default: send_policy.RETRY_DELAYS
    holds: HoldConfig = field(default_factory=HoldConfig)


class PortalSenders:
    """Routes releases to per-portal tasks. Start :meth:`run` in a nursery first."""

    def __init__(self, db: Database, clock: Clock, tokens: TokenStore, client: HubSpotClient,
                 config: SenderConfig = SenderConfig()) -> None:
        self.db = db
        self.clock = clock
        self.tokens = tokens
        self.client = client
        self.config = config
        self.recorder = Recorder(db, acks_give_up_s=config.release_lease_s / 2)
        self._stamps: GroupCommit[dict[str, dt.datetime], _Stamped] = GroupCommit(self._stamp, ({}, _NEVER))
        self._channels: dict[int, trio.MemorySendChannel[list[Lease]]] = {}
        self._nursery: trio.Nursery | None = None
        self._closed = False
        self._closing = False
        self._recorders: dict[int, tuple[trio.Nursery, trio.Semaphore]] = {}
        # Handed to us, outcome not yet recorded: callback id -> the lease we hold on it.
        self._held: dict[str, _Held] = {}
        self._portal_holds: dict[int, dt.datetime] = {}  # portals HubSpot refused, until when
        self.sent_batches = 0
        self.released = 0
        self._ack_latency_s: float | None = None

    @property
    def ack_latency_s(self) -> float:
        """Seconds from a release's hand-over to its acknowledgement being written, averaged
        over recent batches (0 before the first): how long after a throttle run its releases
        start counting in the window. The worker schedules a queue's next run by it."""
        return self._ack_latency_s or 0.0

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

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
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

    async def submit(self, portal_id: int, releases: Sequence[Lease]) -> None:
        """Queue ``releases`` (all of ``portal_id``) for completion; waits if that portal's
        buffer is full (backpressure on the caller only)."""
        if not releases:
            return
        if self._closed or self._closing:  # shutting down: hand them straight back
            await self._requeue([r.callback_id for r in releases])
            return
        # A callback handed over again (its lease lapsed while a copy waited here) replaces
        # the old copy, which is then skipped: the same callback must not go out twice.
        since = trio.current_time()
        self._held.update((r.callback_id, _Held(r.lease_until, r.lease_until, since)) for r in releases)
        channel = self._channels.get(portal_id)
        if channel is None:
            if self._nursery is None:
                raise RuntimeError("PortalSenders.run is not running")
            channel, receive = trio.open_memory_channel[list[Lease]](self.config.buffer)
            self._channels[portal_id] = channel
            self._nursery.start_soon(self._portal_task, portal_id, channel, receive)
        await channel.send(list(releases))

    # -- one portal: lifecycle and batching ------------------------------------------------

    async def _portal_task(self, portal_id: int, channel: trio.MemorySendChannel[list[Lease]],
                           receive: trio.MemoryReceiveChannel[list[Lease]]) -> None:
        # Recording a success (a database write) runs beside the next HTTP call instead of
        # before it: completions stay in order at HubSpot, the write latency is hidden. The
        # nursery waits for every record before the task ends.
        async with trio.open_nursery() as recorders:
            self._recorders[portal_id] = (recorders, trio.Semaphore(RECORDS_IN_FLIGHT))
            try:
                await self._portal_loop(portal_id, channel, receive)
            finally:
                self._recorders.pop(portal_id, None)

    async def _portal_loop(self, portal_id: int, channel: trio.MemorySendChannel[list[Lease]],
                           receive: trio.MemoryReceiveChannel[list[Lease]]) -> None:
        carry: list[Lease] = []
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
                self._portal_holds.pop(portal_id, None)
            if self.client.budget is not None:
                self.client.budget.forget_idle()  # idle portals cost no memory

    async def _fill(self, receive: trio.MemoryReceiveChannel[list[Lease]], carry: list[Lease]) -> None:
        deadline = trio.current_time() + self.config.flush_interval_s
        while len(carry) < BATCH_SIZE:
            with trio.move_on_at(min(deadline, trio.current_time() + self.config.linger_s)) as scope:
                carry.extend(await receive.receive())
            if scope.cancelled_caught:
                return

    # -- one batch: carry out the send policy's commands -----------------------------------

    async def _send(self, portal_id: int, batch: list[Lease]) -> None:
        live = self._still_held(batch)
        if not live:
            return
        if await self._portal_held(portal_id):
            # Taken before the portal's hold was stored: they would only meet the same refusal.
            await self._write(recorder.requeued, [r.callback_id for r in live])
            return
        try:
            await _Batch(self, portal_id, live).run()
        except (trio.Cancelled, KeyboardInterrupt):
            raise
        except Exception as exc:  # a bug here must not take the daemon down with it
            log.error("callbacks.send_failed", portal_id=portal_id, error=type(exc).__name__)
            await self._give_up(portal_id, self._still_held(live),
                                Answer(Action.RETRY, RefersTo.TRANSIENT, f"internal error: {type(exc).__name__}", "bug"))

    def _still_held(self, releases: Sequence[Lease]) -> list[Lease]:
        """Those of ``releases`` still ours: not settled, dropped or replaced by a newer copy."""
        return [r for r in releases if (h := self._held.get(r.callback_id)) is not None and h.granted == r.lease_until]

    async def _keep_leased(self, releases: Sequence[Lease], wait_s: float = 0.0) -> list[Lease]:
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

    async def _start_sending(self, releases: Sequence[Lease]) -> tuple[list[Lease], dt.datetime]:
        """Stamp the releases a call is about to start on (``sent_at``: from here on a crash
        counts them as maybe completed) and renew the leases too close to lapsing; returns
        those still ours and the stamp (the ``released_at`` their outputs give). Ones whose
        lease lapsed (or that another daemon took back) are dropped from our hands unsent.
        Calls of every portal starting meanwhile are stamped in the same transaction."""
        releases = self._still_held(releases)
        if not releases:
            return [], self.clock.now()
        leases = {r.callback_id: self._held[r.callback_id].current for r in releases}
        kept, now = await self._stamps.submit(leases)
        for callback_id in leases:
            if callback_id in kept:
                self._held[callback_id] = self._held[callback_id]._replace(current=kept[callback_id])
            else:
                self._held.pop(callback_id, None)
        if len(kept) < len(leases):
            log.info("callbacks.lease_lapsed", dropped=len(leases) - len(kept))
        return self._still_held(releases), now

    async def _stamp(self, groups: list[dict[str, dt.datetime]]) -> list[_Stamped]:
        """One ``start_sending`` for the calls of every portal about to start; the stamp is
        taken here, before the write, so it never postdates a call's start."""
        leases = {callback_id: lease for group in groups for callback_id, lease in group.items()}
        kept: dict[str, dt.datetime] = {}
        now = self.clock.now()
        try:
            # Tried again through a short outage: dropped, these would wait for their leases
            # to lapse (minutes) after a database blip of seconds. Each try takes its own stamp.
            async for attempt in through_outage(self.config.release_lease_s / 2):
                with attempt:
                    now = self.clock.now()
                    soon = now + dt.timedelta(seconds=self.config.renew_margin_s)
                    until = now + dt.timedelta(seconds=self.config.release_lease_s)
                    kept = await self.db.transaction(executions_sql.start_sending, leases, now, soon, until)
        except DatabaseUnavailable:
            kept = {}  # cannot stamp them: do not send; their leases lapse and they go back in line
        return [({i: kept[i] for i in group if i in kept}, now) for group in groups]

    async def _portal_held(self, portal_id: int) -> bool:
        """Whether HubSpot refused this portal as a whole and the database still holds it (a
        re-install lifts the hold, so the memory of the refusal alone is not trusted)."""
        until = self._portal_holds.get(portal_id)
        if until is None:
            return False
        now = self.clock.now()
        try:
            availability = await self.db.transaction(portals_sql.availability, portal_id)
        except DatabaseUnavailable:
            return until > now  # the leases lapse and the worker, which sees the hold, decides
        if availability is not None and availability[1] is not None and availability[1] > now:
            return True
        self._portal_holds.pop(portal_id, None)
        return False

    # -- outcomes ----------------------------------------------------------------------------

    async def _write(self, fn: Callable[..., Any], rows: Sequence[Lease] | Sequence[str], *args: Any,
                     settles: bool = True) -> tuple[bool, Any]:
        """Write an outcome about ``rows`` (releases or callback ids); once written they leave
        our hands unless ``settles`` is false (a note made mid-retry)."""
        done, result = await self.recorder.write(fn, rows, *args)
        if done and settles:
            for row in rows:
                self._held.pop(row if isinstance(row, str) else row.callback_id, None)
        return done, result

    def _observe_wait(self, releases: Sequence[Lease]) -> None:
        """Metrics: each release's wait from its hand-over to the call about to start (a retry's
        call counts again, from the same hand-over)."""
        started = trio.current_time()
        for r in releases:
            held = self._held.get(r.callback_id)
            if held is not None:
                self.client.metrics.release_wait.observe(started - held.since)

    async def _released_soon(self, portal_id: int, releases: list[Lease]) -> None:
        """Record a success beside the next call (at most RECORDS_IN_FLIGHT behind)."""
        acked_at = self.clock.now()
        answered = trio.current_time()
        self.sent_batches += 1
        self.released += len(releases)
        self.client.metrics.releases.inc(len(releases))
        recorders = self._recorders.get(portal_id)
        if recorders is None:
            await self._record_released(releases, acked_at, answered)
            return
        nursery, slots = recorders
        await slots.acquire()  # backpressure

        async def record() -> None:
            try:
                await self._record_released(releases, acked_at, answered)
            finally:
                slots.release()

        nursery.start_soon(record)

    async def _record_released(self, releases: list[Lease], acked_at: dt.datetime, answered: float) -> None:
        """Record an acknowledged batch together with other portals' (one transaction);
        ``answered``: trio's time when HubSpot's answer came."""
        if await self.recorder.released_together(releases, acked_at):
            self.client.metrics.ack_write.observe(trio.current_time() - answered)
            held = [h for r in releases if (h := self._held.pop(r.callback_id, None)) is not None]
            if held:
                latency = trio.current_time() - min(h.since for h in held)
                previous = self._ack_latency_s
                self._ack_latency_s = latency if previous is None else \
                    previous + ACK_LATENCY_WEIGHT * (latency - previous)

    async def _ended(self, portal_id: int, releases: list[Lease], answer: Answer) -> None:
        answered = trio.current_time()
        done, state = await self._write(recorder.ended, releases, answer, self.clock.now())
        if state == ExecutionState.RELEASED:  # "already completed": acknowledged all the same
            self.client.metrics.releases.inc(len(releases))
            if done:
                self.client.metrics.ack_write.observe(trio.current_time() - answered)
        elif done:
            self.client.metrics.ended.labels(state).inc(len(releases))
        for release in releases:
            log.warning("callback.rejected", portal_id=portal_id, queue_id=release.queue_id, outcome=state,
                        status=answer.status, reason=answer.kind)

    async def _give_up(self, portal_id: int, releases: list[Lease], answer: Answer) -> None:
        """The batch could not be sent: the executions wait for their lease to lapse, and
        each of their queues counts a failure (enough in a row put it on hold)."""
        if not releases:
            return
        log.warning("callbacks.deferred", portal_id=portal_id, size=len(releases), error=answer.reason)
        _, held = await self._write(recorder.deferred, releases, answer, self.clock.now(), self.config.holds)
        for queue_id in held or []:
            log.warning("queue.on_hold", queue_id=queue_id, reason=answer.reason)
            self.client.metrics.holds.inc()

    async def _hold_portal(self, portal_id: int, releases: list[Lease], answer: Answer) -> None:
        """HubSpot refused the portal as a whole: hold it and put the releases back in line."""
        now = self.clock.now()
        done, until = await self._write(recorder.portal_held, releases, portal_id, answer, now, self.config.holds)
        if not done:
            return
        if until is not None:
            self._portal_holds[portal_id] = until
            log.error("portal.on_hold", portal_id=portal_id, held_until=until.isoformat(),
                      reason=answer.reason, refers_to=answer.refers_to.value, requeued=len(releases))
        self.client.metrics.portal_holds.labels(answer.kind or answer.action.value).inc()

    async def _requeue(self, callback_ids: list[str]) -> None:
        if not callback_ids:
            return
        try:
            count = await self.db.transaction(recorder.handed_back, callback_ids, self.client.timeout_s)
            log.info("callbacks.requeued_on_shutdown", count=count)
        except DatabaseUnavailable:
            pass  # their leases lapse and the worker puts them back in line


class _Batch:
    """One batch driven through the send policy: the commands carried out, one at a time."""

    def __init__(self, queues: PortalSenders, portal_id: int, releases: list[Lease]) -> None:
        self.q = queues
        self.portal_id = portal_id
        self.by_id = {r.callback_id: r for r in releases}
        self.token: str | None = None

    def releases(self, ids: Sequence[str]) -> list[Lease]:
        return [self.by_id[i] for i in ids]

    async def run(self) -> None:
        flow = send_flow(list(self.by_id), self.q.config.retry_delays or send_policy.RETRY_DELAYS)
        reply: object = None
        while True:
            try:
                command = flow.send(reply)
            except StopIteration:
                return
            reply = await self.carry_out(command)

    async def carry_out(self, command: object) -> object:
        q, portal_id = self.q, self.portal_id
        if isinstance(command, Call):
            return await self.call(command.ids)
        if isinstance(command, (Token, Refresh)):
            return await self.get_token(refresh=isinstance(command, Refresh))
        if isinstance(command, Pause):
            live = await q._keep_leased(self.releases(command.ids), wait_s=command.seconds)
            await trio.sleep(command.seconds)  # the budget is blocked for as long, too
            return tuple(r.callback_id for r in q._still_held(live))
        if isinstance(command, Released):
            await q._released_soon(portal_id, self.releases(command.ids))
        elif isinstance(command, Ended):
            await q._ended(portal_id, self.releases(command.ids), command.answer)
        elif isinstance(command, Failing):
            await q._write(recorder.failing, self.releases(command.ids), command.answer, settles=False)
        elif isinstance(command, GiveUp):
            await q._give_up(portal_id, q._still_held(self.releases(command.ids)), command.answer)
        elif isinstance(command, HoldPortal):
            await q._hold_portal(portal_id, q._still_held(self.releases(command.ids)), command.answer)
        else:
            raise TypeError(f"not a send command: {command!r}")
        return None

    async def call(self, ids: Sequence[str]) -> Reply:
        """One completion call on the ids still leased for the whole call."""
        assert self.token is not None
        async with self.q.client.slot(self.portal_id):
            live, sent_at = await self.q._start_sending(self.releases(ids))
            if not live:
                return Reply((), None)
            self.q._observe_wait(live)
            sent = tuple(r.callback_id for r in live)
            fields = {r.callback_id: outputs.release_fields(r.received_at, sent_at, r.arrival_position) for r in live}
            answer = await self.q.client.complete(self.token, sent, self.portal_id, in_slot=True, fields=fields)
        if answer.action is Action.RETRY:
            log.info("callbacks.transient_failure", portal_id=self.portal_id, size=len(sent), error=answer.reason)
        elif answer.action is Action.WAIT:
            log.info("callbacks.rate_limited", portal_id=self.portal_id, wait_s=answer.wait_s, reason=answer.reason)
        elif answer.action is Action.SPLIT:
            log.warning("callbacks.batch_rejected", portal_id=self.portal_id, size=len(sent), status=answer.status)
        return Reply(sent, answer)

    async def get_token(self, refresh: bool) -> Answer:
        """The access token (refreshed after a 401 when ``refresh``), as an answer."""
        tokens = self.q.tokens
        try:
            if refresh and self.token is not None:
                self.token = await tokens.after_unauthorized(self.portal_id, self.token)
            else:
                self.token = await tokens.access_token(self.portal_id)
        except TokenUnavailable as exc:
            return exc.answer
        return Answer(Action.DONE, RefersTo.REQUEST, kind="ok")
