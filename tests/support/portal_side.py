"""HubSpot acknowledging completions at once, for tests that drive the throttle worker
without HTTP (the one copy; the worker and semantics suites share it).

The worker's ``submit`` goes to :meth:`PortalSide.submit`, which records each call (trio
time, callback ids) and each acknowledgement (UTC time from the test's clock, callback id)
in order, and marks the executions released at that time — as the portal sender does after
a 204. With ``check_orphans`` it also checks design invariant 3 after every release.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import trio

from throttled.clock import Clock
from throttled.db import executions as executions_sql
from throttled.db import queues as queues_sql
from throttled.db.engine import Database
from throttled.db.executions import Lease
from throttled.testing import Step


class PortalSide:
    """Stands in for the portal senders and HubSpot behind them.

    Args:
        db: the test database.
        clock: the clock whose ``now()`` is the acknowledgement time.
        check_orphans: after every release, record any queue left without a live job.
    """

    def __init__(self, db: Database, clock: Clock, *, check_orphans: bool = False) -> None:
        self.db = db
        self.clock = clock
        self.check_orphans = check_orphans
        self.batches: list[tuple[float, list[str]]] = []  # (trio time, callback ids) per submit
        self.acks: list[tuple[dt.datetime, str]] = []     # (acknowledged at, callback id)
        self.orphans_seen: list[list[tuple[str, int, int | None]]] = []
        self._changed = trio.Event()

    async def submit(self, portal_id: int, releases: Sequence[Lease]) -> None:
        """The worker's ``submit``: acknowledge every release now."""
        assert {r.portal_id for r in releases} == {portal_id}
        acked_at = self.clock.now()
        ids = [r.callback_id for r in releases]
        self.batches.append((trio.current_time(), ids))
        assert await self.db.transaction(executions_sql.mark_released, ids, acked_at) == len(ids)
        self.acks.extend((acked_at, cid) for cid in ids)
        if self.check_orphans:
            orphans = await self.db.transaction(queues_sql.queues_without_live_job, "throttle:", acked_at)
            if orphans:
                self.orphans_seen.append(orphans)
        self._changed.set()
        self._changed = trio.Event()

    @property
    def ids(self) -> list[str]:
        """Callback ids in acknowledgement order."""
        return [cid for _, cid in self.acks]

    @property
    def times(self) -> list[dt.datetime]:
        """Acknowledgement times, in order."""
        return [t for t, _ in self.acks]

    @property
    def batch_sizes(self) -> list[int]:
        """Releases per worker hand-over."""
        return [len(ids) for _, ids in self.batches]

    def since(self, moment: dt.datetime) -> list[dt.datetime]:
        """Acknowledgement times at or after ``moment``."""
        return [t for t in self.times if t >= moment]

    def released(self, step: Step | None = None) -> list[str]:
        """Callback ids acknowledged (of ``step`` only, when given; ids must follow the
        ``ap-{portal}-{workflow}-{action}-…`` pattern)."""
        if step is None:
            return self.ids
        return [cid for cid in self.ids if f"-{step.workflow_id}-{step.action_id}-" in cid]

    async def wait_for(self, n: int, timeout_s: float, tick_s: float | None = None) -> None:
        """Wait (trio time, virtual under MockClock) until ``n`` completions in all were
        acknowledged. With ``tick_s``, time advances in steps that small (when a NOTIFY,
        which travels in real time, is on its way).

        Raises:
            trio.TooSlowError: not within ``timeout_s``.
        """
        with trio.fail_after(timeout_s):
            while len(self.acks) < n:
                with trio.move_on_after(tick_s or math.inf):
                    await self._changed.wait()
