"""``throttled demo``: the main job on this machine, with one command and no set-up.

Starts (or reuses) PostgreSQL — ``THROTTLED_DATABASE_URL`` if set, else the embedded one —
makes a fresh database for the run, starts the sandbox HubSpot and a daemon on free
loopback ports, installs a demo portal through the real OAuth redirects, sends signed
enrollments to four workflow steps in three queues (two steps share one) with different
rates, shows live progress per queue, and ends with a table per queue: received, released,
and the most released in any window versus the limit. Returns True only if nothing was
lost, nothing was completed twice and no window went over its limit.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import IO, Any

import sqlalchemy as sa
import trio
from rich.console import Console
from rich.live import Live
from rich.table import Table

from throttled import logs
from throttled.testing import (
    Stack,
    Step,
    local_stack,
    max_per_window,
    scratch_database,
    server_url,
)
from throttled.throttle.rate import UNIT_SECONDS

STEPS = (
    Step(workflow_id=9001, action_id=1, limit=50, period=5, unit="seconds"),
    Step(workflow_id=9001, action_id=2, limit=100, period=10, unit="seconds", mode="smooth"),
    # two workflows whose steps share one throttle
    Step(workflow_id=9002, action_id=1, limit=60, period=3, unit="seconds", shared="demo-shared"),
    Step(workflow_id=9003, action_id=4, limit=60, period=3, unit="seconds", shared="demo-shared"),
)
TIMEOUT_S = 55.0
SENDERS = 16


#: Columns the result table needs whole (143 with its widest queue id) and some to spare.
TABLE_WIDTH = 180


def demo_console(file: IO[str] | None = None) -> Console:
    """The demo's console on ``file`` (stdout by default), at least :data:`TABLE_WIDTH` wide
    (a wider terminal keeps its width): the result table is never cut ("receiv…", "most in
    any win…"); a narrower terminal wraps its lines instead, a pipe or CI log has room."""
    probe = Console(file=file)
    return Console(file=file, width=max(TABLE_WIDTH, probe.width) if probe.is_terminal else TABLE_WIDTH)


async def run_demo(enrollments: int = 600, console: Console | None = None) -> bool:
    """Run the demo; True when every enrollment was released within its limits."""
    console = console or demo_console()
    logs.configure("WARNING")
    started = time.monotonic()
    server = await trio.to_thread.run_sync(server_url)
    demo_url, drop = await trio.to_thread.run_sync(scratch_database, server)
    console.print(f"[bold]throttled demo[/] — database {sa.engine.make_url(demo_url).database!r}, "
                  f"{enrollments} enrollments over {len(STEPS)} workflow steps in {len(_queues(0))} queues "
                  f"(burst, smooth, and one throttle shared by two workflows)")
    try:
        async with local_stack(demo_url, overrides={"log_level": "WARNING"}) as stack:
            console.print(f"sandbox HubSpot at {stack.hubspot.sandbox_url}, daemon at {stack.daemons[0].url}, "
                          f"portal {stack.portal_id} installed through OAuth")
            plan = _plan(stack.portal_id, enrollments)
            sent_at = time.monotonic()
            await _send_all(stack, plan)
            console.print(f"{len(stack.hubspot.sent)} webhooks answered BLOCK in {time.monotonic() - sent_at:.2f} s")
            completions = await _watch(stack, console)
    finally:
        await trio.to_thread.run_sync(drop)
    ok = _report(console, stack.hubspot.sent, completions, stack.portal_id, len(plan))
    console.print(f"wall time {time.monotonic() - started:.1f} s — {'[green]OK[/]' if ok else '[red]FAILED[/]'}")
    return ok


def _plan(portal_id: int, n: int) -> list[tuple[str, Step]]:
    """Interleave enrollments over the steps, as several workflows enrolling at once."""
    return [(f"ap-{portal_id}-{STEPS[i % len(STEPS)].workflow_id}-{i}-0", STEPS[i % len(STEPS)]) for i in range(n)]


async def _send_all(stack: Stack, plan: list[tuple[str, Step]]) -> None:
    send, receive = trio.open_memory_channel[tuple[str, Step]](len(plan))
    for item in plan:
        send.send_nowait(item)
    send.close()

    async def sender() -> None:
        async for callback_id, step in receive:
            response = await stack.hubspot.enroll(stack.daemons[0].url, callback_id, stack.portal_id, step)
            if response.status_code != 200:
                raise RuntimeError(f"webhook answered {response.status_code}: {response.text[:200]}")

    async with trio.open_nursery() as nursery:
        for _ in range(SENDERS):
            nursery.start_soon(sender)


async def _watch(stack: Stack, console: Console) -> list[dict[str, Any]]:
    """Show progress until every acknowledged enrollment completed (or the timeout)."""
    expected = len(stack.hubspot.sent)
    completions: list[dict[str, Any]] = []
    with Live(console=console, refresh_per_second=4, transient=True) as live, trio.move_on_after(TIMEOUT_S):
        while True:
            completions = await stack.hubspot.completions()
            live.update(_table(stack.hubspot.sent, completions, stack.portal_id, "progress"))
            if len(completions) >= expected:
                break
            await trio.sleep(0.25)
    await trio.sleep(0.3)  # let a stray duplicate show up if there is one
    return await stack.hubspot.completions()


def _table(sent: dict[str, str], completions: list[dict[str, Any]], portal_id: int, title: str) -> Table:
    received = Counter(sent.values())
    released: dict[str, list[float]] = defaultdict(list)
    outputs: dict[str, list[dict[str, str]]] = defaultdict(list)
    for c in completions:
        released[sent.get(c["callbackId"], "?")].append(c["completedAt"])
        outputs[sent.get(c["callbackId"], "?")].append(c["outputFields"])
    table = Table(title=title)
    table.add_column("queue", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    for column in ("limit", "received", "released", "most in any window", "span", "max held s",
                   "max line"):
        table.add_column(column, justify="right", no_wrap=True)
    for step in _queues(portal_id):
        queue_id = step.queue_id(portal_id)
        times = released.get(queue_id, [])
        worst = max_per_window(times, step.period * UNIT_SECONDS[step.unit])
        window = f"{worst} / {step.limit}" if worst <= step.limit else f"[red]{worst} / {step.limit}[/]"
        span = f"{max(times) - min(times):.1f} s" if times else "-"
        kind = "shared, 2 steps" if step.shared else step.mode
        held = [int(f.get("held_seconds", 0)) for f in outputs.get(queue_id, [])]
        line = [int(f.get("position_on_arrival", 0)) for f in outputs.get(queue_id, [])]
        table.add_row(queue_id, kind, step.label, str(received[queue_id]), str(len(times)), window, span,
                      str(max(held, default="-")), str(max(line, default="-")))
    return table


def _report(console: Console, sent: dict[str, str], completions: list[dict[str, Any]], portal_id: int,
            planned: int) -> bool:
    console.print(_table(sent, completions, portal_id, "result"))
    ids = [c["callbackId"] for c in completions]
    twice = [cid for cid, n in Counter(ids).items() if n > 1]
    missing = set(sent) - set(ids)
    over = [
        s.label for s in _queues(portal_id)
        if max_per_window([c["completedAt"] for c in completions if sent.get(c["callbackId"]) == s.queue_id(portal_id)],
                          s.period * UNIT_SECONDS[s.unit]) > s.limit
    ]
    if completions:  # what a later workflow step can branch on
        console.print(f"outputs of the last completion, for later workflow steps: {completions[-1]['outputFields']}")
    console.print(f"sent {planned}, acknowledged {len(sent)}, completed {len(set(ids))}, "
                  f"missing {len(missing)}, completed twice {len(twice)}, windows over limit {len(over)}")
    return len(sent) == planned and not missing and not twice and not over


def _queues(portal_id: int) -> list[Step]:
    """One step per distinct queue (steps sharing a throttle count once)."""
    by_queue = {step.queue_id(portal_id): step for step in STEPS}
    return list(by_queue.values())
