"""A daemon's clock that jumps forward must not let a burst through at HubSpot.

The whole release path — scheduler, throttle worker, portal senders, the sandbox over HTTP —
on a :class:`DatabaseClock` that a reading moves forward while releases go out. Found by a
new-user trial: with runs leading their window's opening (``lead_s``), calls started at the
opening itself, and a reading 10 ms ahead let a second batch of five reach HubSpot 0.98 s
after the first, on a queue of 5 per second. Measured where the bound must hold: the
sandbox's own completion times.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
import trio

from tests.support.hubspot_side import sandbox_grant
from tests.support.waiting import wait_until
from throttled.clock import DatabaseClock
from throttled.crypto import KeyRing
from throttled.db import portals as portals_sql
from throttled.hubspot.client import HubSpotClient
from throttled.hubspot.senders import PortalSenders
from throttled.hubspot.tokens import TokenStore
from throttled.ingest.payload import parse_enrollment
from throttled.ingest.store import store_enrollments
from throttled.jobs.scheduler import Scheduler, SchedulerConfig
from throttled.sandbox import SandboxConfig, serve_sandbox
from throttled.testing import Step, enrollment_body
from throttled.throttle.block_length import BlockLimits
from throttled.throttle.job import THROTTLE_JOB_KIND
from throttled.throttle.rate import max_in_window
from throttled.throttle.worker import ThrottleWorker

PORTAL = 888
STEP = Step(workflow_id=1, action_id=1, limit=5, period=1, unit="seconds")
BLOCK = BlockLimits(dt.timedelta(days=7), dt.timedelta(days=30))


def _read(clock: DatabaseClock, ahead_s: float) -> None:
    """A reading of the 'database' (the host's wall clock here) ``ahead_s`` ahead of it."""
    mono = time.monotonic()
    clock.calibrate(mono, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ahead_s), mono)


@pytest.mark.deadline(60)
@pytest.mark.parametrize("jump_s", [0.015, 0.2])
async def test_a_forward_jump_of_the_clock_lets_no_burst_through(db, jump_s):
    clock = DatabaseClock()
    _read(clock, 0.0)
    cipher = KeyRing.single(bytes(range(32)))
    config = SandboxConfig(client_id="cid", client_secret="secret", app_id=1, default_portal_id=PORTAL)
    async with trio.open_nursery() as nursery:
        sandbox = await nursery.start(serve_sandbox, config)
        client = HubSpotClient(sandbox.url, "cid", "secret", timeout_s=5)
        grant = await sandbox_grant(sandbox.url, config.client_id, client)
        now = clock.now()
        db.transaction_sync(portals_sql.save_install, PORTAL, cipher.encrypt(grant.access_token, PORTAL, "access_token"),
                            cipher.encrypt(grant.refresh_token, PORTAL, "refresh_token"), grant.expires_at(now),
                            ["automation"], cipher.key_id, now)
        senders = PortalSenders(db, clock, TokenStore(db, clock, cipher, client), client)
        await nursery.start(senders.run)
        worker = ThrottleWorker(db, clock, senders.submit, ack_latency=lambda: senders.ack_latency_s)
        await nursery.start(Scheduler(db, clock, {THROTTLE_JOB_KIND: worker},
                                      SchedulerConfig(workers=8, poll_interval_s=1.0)).run)
        ids = [f"ap-{PORTAL}-1-1-{i}" for i in range(20)]
        await db.transaction(store_enrollments, [parse_enrollment(enrollment_body(cid, PORTAL, STEP, object_id=i))
                                                 for i, cid in enumerate(ids)], clock.now(), BLOCK)
        for k in range(1, 4):  # a reading jump_s further ahead, half a window after each batch
            await wait_until(lambda k=k: len(sandbox.state.completions) >= 5 * k, timeout_s=20, step_s=0.005,
                             what=f"batch {k}")
            await trio.sleep(0.5)
            _read(clock, jump_s * k)
        await wait_until(lambda: len(sandbox.state.completions) == 20, timeout_s=20, what="all 20")
        await client.aclose()
        nursery.cancel_scope.cancel()
    times = sorted(c["completedAt"] for c in sandbox.state.completions)
    assert max_in_window(times, 1.0) == 5, [round(b - a, 4) for a, b in zip(times[::5], times[5::5], strict=False)]
