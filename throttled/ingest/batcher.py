"""The batcher: group-commits enrollments and answers each waiting webhook handler.

A handler submits its enrollment with a one-shot reply and waits. The batcher takes
everything already waiting (up to ``max_batch``) and commits it in one transaction, then
answers them all. There is no fixed sleep: at low load each webhook commits at once; at
high load batches grow while the previous commit runs. A handler is answered only after
the commit returned (design invariant 1).

After a commit in which a record went ahead of pending ones of a lower priority, the queue
is checked, off the answer's path, for held records whose block now ends before their turn
(a few seconds later, so a burst of such records makes one check; at most once a minute per
queue), and ``queue.will_expire`` is logged when there are some (once per queue per 10 min).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import structlog
import trio

from throttled.clock import Clock
from throttled.db.engine import Database, DatabaseUnavailable
from throttled.ingest.payload import Enrollment
from throttled.ingest.store import Answer, store_enrollments
from throttled.logs import OncePer
from throttled.service.metrics import Metrics
from throttled.throttle.block_length import BlockLimits
from throttled.throttle.outlook import refresh_expiring

log = structlog.get_logger("throttled.ingest")

#: A check for records pushed past their blocks waits this long (seconds) after the first
#: jump, so a burst of higher-priority records makes one check, and runs at most this often.
CHECK_DELAY_S, CHECK_EVERY_S = 5.0, 60.0


@dataclass(eq=False)
class _Waiting:
    enrollment: Enrollment
    done: trio.Event = field(default_factory=trio.Event)
    error: BaseException | None = None
    answer: Answer | None = None  # once committed


class Batcher:
    """Group commit for enrollments.

    Args:
        db: the database.
        clock: source of ``received_at``.
        limits: the shortest and longest block asked of HubSpot (``ingest/holds.py`` chooses
            each record's between them).
        max_batch: most enrollments per transaction.
        queue_size: most submissions waiting before handlers feel backpressure.
    """

    def __init__(self, db: Database, clock: Clock, limits: BlockLimits, max_batch: int = 500, queue_size: int = 10_000,
                 metrics: Metrics | None = None) -> None:
        self.db = db
        self.metrics = metrics or Metrics()
        self._committing = False
        self._commit_started = 0.0
        self.clock = clock
        self.limits = limits
        self.max_batch = max_batch
        self._send, self._receive = trio.open_memory_channel[_Waiting](queue_size)
        self.batch_sizes: list[int] = []  # recent batch sizes, for benchmarks and status
        self._checks_due: set[str] = set()  # queues with a check on its way
        self._checked_at: dict[str, float] = {}  # trio time of each queue's last check
        self._will_expire_logs = OncePer(600.0)
        self.committed = 0

    async def submit(self, enrollment: Enrollment) -> Answer:
        """Return once ``enrollment`` is committed: what to answer — the state of its stored
        execution and the end of its block (``pending`` when new; a webhook HubSpot sent again
        finds it as it is, e.g. ``released``), or that it was refused.

        Raises:
            DatabaseUnavailable: the commit failed because the database is unreachable.
        """
        waiting = _Waiting(enrollment)
        await self._send.send(waiting)
        await waiting.done.wait()
        if waiting.error is not None:
            raise waiting.error
        assert waiting.answer is not None
        return waiting.answer

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Commit batches until cancelled."""
        async with trio.open_nursery() as checks:
            task_status.started()
            async for first in self._receive:
                batch = [first]
                while len(batch) < self.max_batch:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except trio.WouldBlock:
                        break
                for queue_id in sorted(await self._commit(batch)):
                    if queue_id not in self._checks_due:
                        self._checks_due.add(queue_id)
                        checks.start_soon(self._check_expiring, queue_id)

    async def _check_expiring(self, queue_id: str) -> None:
        """Log held records of ``queue_id`` whose block now ends before their forecast turn."""
        last = self._checked_at.get(queue_id, -math.inf)
        await trio.sleep_until(max(trio.current_time() + CHECK_DELAY_S, last + CHECK_EVERY_S))
        self._checks_due.discard(queue_id)
        self._checked_at[queue_id] = trio.current_time()
        if len(self._checked_at) > 10_000:
            del self._checked_at[next(iter(self._checked_at))]
        try:
            found = await self.db.transaction(refresh_expiring, queue_id, self.clock.now())
        except DatabaseUnavailable:
            return  # the status views show it too; nothing to lose here
        if found.count and self._will_expire_logs.due(queue_id, trio.current_time()) is not None:
            log.warning("queue.will_expire", queue_id=queue_id, count=found.count, complete=found.complete,
                        note="records of a higher priority went ahead: these held records' blocks now end before "
                             "their turn; raise the rate or drain the queue")

    async def _commit(self, batch: list[_Waiting]) -> set[str]:
        """Store ``batch`` and answer its handlers; returns the queues where a record went
        ahead of lower priorities."""
        self._committing = True
        started = self._commit_started = trio.current_time()
        try:
            return await self._store(batch)
        finally:
            self.metrics.commit_seconds.observe(trio.current_time() - started)
            self.metrics.batch_size.observe(len(batch))
            self._committing = False
            for waiting in batch:
                waiting.done.set()

    @property
    def idle(self) -> bool:
        """Nothing waiting and no commit running (graceful shutdown waits for this)."""
        return not self._committing and self._receive.statistics().current_buffer_used == 0

    @property
    def oldest_wait_s(self) -> float:
        """How long the batcher has been busy with the current commit (0 when idle), s."""
        return 0.0 if not self._committing else trio.current_time() - self._commit_started

    async def _store(self, batch: list[_Waiting]) -> set[str]:
        jumped: set[str] = set()
        try:
            stored = await self.db.transaction(
                store_enrollments, [w.enrollment for w in batch], self.clock.now(), self.limits
            )
            for waiting in batch:
                waiting.answer = stored.answer_for(waiting.enrollment.callback_id)
            self.committed += len(batch)
            self._note_size(len(batch))
            jumped = stored.jumped
        except DatabaseUnavailable as exc:
            log.warning("ingest.commit_failed", size=len(batch), error=str(exc))
            for waiting in batch:
                waiting.error = exc
        except Exception as exc:
            if len(batch) > 1:
                # One enrollment the database refuses must not fail its neighbours: store
                # them one by one so only the culprit gets its error.
                for waiting in batch:
                    jumped |= await self._store([waiting])
                return jumped
            # The message can quote the row (personal data): log the kind of error only.
            sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
            log.error("ingest.commit_error", error=type(exc).__name__, sqlstate=sqlstate)
            batch[0].error = exc
        return jumped

    def _note_size(self, size: int) -> None:
        self.batch_sizes.append(size)
        if len(self.batch_sizes) > 10_000:
            del self.batch_sizes[: len(self.batch_sizes) // 2]

    @property
    def mean_batch_size(self) -> float:
        """Mean of recent batch sizes (NaN before the first commit)."""
        return sum(self.batch_sizes) / len(self.batch_sizes) if self.batch_sizes else math.nan
