"""Portal-side edge cases found by a new-user trial: a changed encryption key must not crash
the daemon, and releases in our hands at shutdown go straight back in line."""

from __future__ import annotations

import datetime as dt

import pytest
import trio

from throttled.clock import WallClock
from throttled.crypto import KeyRing
from throttled.db import executions as executions_sql
from throttled.db import portals as portals_sql
from throttled.db.executions import Lease, NewExecution
from throttled.hubspot.client import HubSpotClient
from throttled.hubspot.senders import PortalSenders
from throttled.hubspot.tokens import TokenStore, TokenUnavailable

PORTAL = 777


def _install(db, cipher: KeyRing, now: dt.datetime) -> None:
    db.transaction_sync(portals_sql.save_install, PORTAL, cipher.encrypt("access", PORTAL, "access_token"),
                        cipher.encrypt("refresh", PORTAL, "refresh_token"), now + dt.timedelta(hours=1), ["automation"],
                        cipher.key_id, now)


async def test_tokens_under_another_key_make_the_portal_unusable_not_the_daemon(db):
    now = WallClock().now()
    _install(db, KeyRing.single(bytes(range(32))), now)
    client = HubSpotClient("http://127.0.0.1:9", "id", "secret")
    try:
        store = TokenStore(db, WallClock(), KeyRing.single(bytes(32)), client)  # a different key
        with pytest.raises(TokenUnavailable) as info:
            await store.access_token(PORTAL)
    finally:
        await client.aclose()
    assert info.value.answer.action == "hold_portal" and "THROTTLED_ENCRYPTION_KEYS" in info.value.answer.reason


async def _silent_server(task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Accepts connections and never answers: HubSpot stalling."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])

    async def hold(stream):
        async with stream:
            await trio.sleep_forever()

    await trio.serve_listeners(hold, listeners)


async def test_releases_in_hand_at_shutdown_go_back_in_line(db):
    clock = WallClock()
    now = clock.now()
    cipher = KeyRing.single(bytes(range(32)))
    _install(db, cipher, now)
    ids = [f"cb-{i}" for i in range(5)]
    db.transaction_sync(executions_sql.insert_executions,
                        [NewExecution(cid, PORTAL, "queue:777:1:1:0", None, None, {}, now + dt.timedelta(days=7)) for cid in ids],
                        now)
    lease = now + dt.timedelta(minutes=2)
    db.transaction_sync(executions_sql.take_pending, "queue:777:1:1:0", 5, now, lease)

    async with trio.open_nursery() as nursery:
        port = await nursery.start(_silent_server)
        client = HubSpotClient(f"http://127.0.0.1:{port}", "id", "secret", timeout_s=30)
        queues = PortalSenders(db, clock, TokenStore(db, clock, cipher, client), client)
        scope = trio.CancelScope()
        nursery.start_soon(_run, queues, scope)
        await trio.sleep(0.2)
        await queues.submit(PORTAL, [Lease(cid, PORTAL, "queue:777:1:1:0", lease) for cid in ids])
        await trio.sleep(0.5)  # the batch is in flight to a HubSpot that never answers
        counts = db.transaction_sync(executions_sql.execution_counts)
        assert counts["queue:777:1:1:0"] == {"releasing": 5}
        scope.cancel()  # shutdown
        await trio.sleep(0.2)
        await client.aclose()
        nursery.cancel_scope.cancel()
    counts = db.transaction_sync(executions_sql.execution_counts)
    assert counts["queue:777:1:1:0"] == {"pending": 5}  # not stuck until the lease ends


async def _run(queues: PortalSenders, scope: trio.CancelScope) -> None:
    with scope:
        await queues.run()
