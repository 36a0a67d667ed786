"""The HubSpot client over real loopback HTTP: cancellation, timeouts, budget, token paths."""

from __future__ import annotations

import trio

from tests.support.hubspot_side import sandbox_grant, silent_server
from throttled.hubspot.answers import Action, RefersTo
from throttled.hubspot.budget import PortalBudget
from throttled.hubspot.client import POOLS, HubSpotClient
from throttled.sandbox import SandboxConfig, serve_sandbox

PORTAL = 62515


async def test_cancelling_a_thousand_stalled_calls_leaks_no_pool_slot():
    config = SandboxConfig(client_id="cid", client_secret="secret", app_id=1, default_portal_id=PORTAL,
                           rate_limit_max=1000)
    async with trio.open_nursery() as nursery:
        stall_port = await nursery.start(silent_server)
        sandbox = await nursery.start(serve_sandbox, config)
        stalled = HubSpotClient(f"http://127.0.0.1:{stall_port}", "cid", "secret", timeout_s=30, max_connections=20)
        started = trio.current_time()
        with trio.move_on_after(0.5):
            async with trio.open_nursery() as calls:
                for i in range(1000):
                    calls.start_soon(stalled.complete, "t", [f"cb-{i}"], PORTAL)
        cancelled_in = trio.current_time() - started
        assert stalled._in_flight.value == 20  # every slot came back
        await stalled.aclose()

        client = HubSpotClient(sandbox.url, "cid", "secret", timeout_s=5, max_connections=20)
        token = (await sandbox_grant(sandbox.url, config.client_id, client)).access_token
        with trio.fail_after(10):
            async with trio.open_nursery() as calls:
                for i in range(100):
                    calls.start_soon(client.complete, token, [f"ok-{i}"], PORTAL)
        await client.aclose()
        nursery.cancel_scope.cancel()
    assert cancelled_in < 2.0
    assert len(sandbox.state.completions) == 100


async def test_calls_of_many_portals_share_one_bound_across_the_pools():
    # The calls are spread over several httpx pools by portal (client.POOLS); the bound on
    # connections and calls in flight is still one for all of them.
    accepted: list[int] = []
    async with trio.open_nursery() as nursery:
        port = await nursery.start(silent_server, accepted)
        client = HubSpotClient(f"http://127.0.0.1:{port}", "cid", "secret", timeout_s=30, max_connections=5)
        with trio.move_on_after(1.0):
            async with trio.open_nursery() as calls:
                for portal in range(4 * POOLS):  # every pool gets calls
                    calls.start_soon(client.complete, "t", [f"cb-{portal}"], 1000 + portal)
        await client.aclose()
        nursery.cancel_scope.cancel()
    assert len(accepted) == 5  # five calls reached HubSpot; the others waited for a slot


async def test_a_stalled_hubspot_is_a_transient_answer_within_the_timeout():
    async with trio.open_nursery() as nursery:
        port = await nursery.start(silent_server)
        client = HubSpotClient(f"http://127.0.0.1:{port}", "cid", "secret", timeout_s=0.2)
        started = trio.current_time()
        try:
            answer = await client.complete("t", ["a", "b"], PORTAL)
        finally:
            await client.aclose()
        took = trio.current_time() - started
        nursery.cancel_scope.cancel()
    assert (answer.action, answer.refers_to) == (Action.RETRY, RefersTo.TRANSIENT) and "timed out" in answer.reason
    assert took < 0.2 + 0.5  # the whole call is bounded, not each of its phases


async def test_budget_keeps_a_portal_under_its_limit_at_the_sandbox():
    config = SandboxConfig(client_id="cid", client_secret="secret", app_id=1, default_portal_id=PORTAL,
                           rate_limit_max=110, rate_limit_interval_s=1.0)
    async with trio.open_nursery() as nursery:
        sandbox = await nursery.start(serve_sandbox, config)
        client = HubSpotClient(sandbox.url, "cid", "secret", budget=PortalBudget(20, 1.0))
        token = (await sandbox_grant(sandbox.url, config.client_id, client)).access_token
        with trio.fail_after(20):
            async with trio.open_nursery() as calls:
                for i in range(60):
                    calls.start_soon(client.complete, token, [f"b-{i}"], PORTAL)
        await client.aclose()
        nursery.cancel_scope.cancel()
    times = sorted(c["completedAt"] for c in sandbox.state.completions)
    assert len(times) == 60
    assert max(sum(1 for u in times if t <= u < t + 1.0) for t in times) <= 20 + 1  # one of slack for clock skew
    assert times[-1] - times[0] >= 2.0  # 60 calls at 20 per second need at least two more windows


def _connections_to(port: int) -> int:
    """Established TCP connections of this machine whose far end is 127.0.0.1:``port``."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


async def test_the_pools_keep_only_their_share_of_idle_connections():
    # Found by a fresh-user trial: each of the POOLS pools kept up to max_connections idle
    # connections, so a daemon could hold 8 × 50 sockets to HubSpot, not ~50.
    config = SandboxConfig(client_id="cid", client_secret="secret", app_id=1, default_portal_id=PORTAL,
                           rate_limit_max=100_000)
    async with trio.open_nursery() as nursery:
        sandbox = await nursery.start(serve_sandbox, config)
        port = int(sandbox.url.rsplit(":", 1)[1])
        client = HubSpotClient(sandbox.url, "cid", "secret", timeout_s=5, max_connections=16)
        token = (await sandbox_grant(sandbox.url, config.client_id, client)).access_token
        with trio.fail_after(20):
            for pool in range(POOLS):  # 16 calls at once in each pool in turn
                async with trio.open_nursery() as calls:
                    for i in range(16):
                        portal = PORTAL + pool + POOLS * i  # all of this round in one pool
                        calls.start_soon(client.complete, token, [f"p{pool}-{i}"], portal)
        open_now = _connections_to(port)
        await client.aclose()
        nursery.cancel_scope.cancel()
    assert len(sandbox.state.completions) == 16 * POOLS
    assert open_now <= 2 * 16, f"{open_now} connections open to HubSpot with max_connections=16"
