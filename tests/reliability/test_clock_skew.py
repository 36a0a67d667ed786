"""Scenario 7: two daemons whose clocks disagree by a second share one queue — the window
still holds at HubSpot, because both decide by the database's time.

Input from the field-faults issue: a queue of 5 per 10 seconds, 15 enrollments to daemon A;
once HubSpot has the first 5, daemon B starts on the same database with its clock shifted by
Debian's ``faketime`` (libfaketime preloaded: every clock call of the process is shifted).
Before the database clock, B (1 s ahead) sent the second five 9.08 s after the first: 10 in
one 10 s window. Both directions are run; each daemon's log must show its skew.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from tests.support.waiting import wait_until
from throttled.testing import Step, max_per_window

from .harness import DaemonProcess, reliability_stack

STEP = Step(workflow_id=71, action_id=1, limit=5, period=10, unit="seconds")
LIBFAKETIME = [Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
               Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"),
               Path("/usr/lib/faketime/libfaketime.so.1")]


def _libfaketime() -> Path:
    found = next((p for p in LIBFAKETIME if p.exists()), None)
    assert found, "Debian's faketime package is needed (apt-get install faketime; .ci/run installs it)"
    return found


@pytest.mark.parametrize("shift", ["+1s", "-1s"])
async def test_a_second_daemon_with_a_skewed_clock_keeps_the_window(reliability_database, log_dir, report, shift):
    async with reliability_stack(reliability_database, log_dir) as stack:
        a, http = stack.daemons[0], stack.hubspot.http
        ids = [f"ap-{stack.portal_id}-71-{shift}-{i}" for i in range(15)]
        for callback_id in ids:
            response = await stack.hubspot.enroll(a.url, callback_id, stack.portal_id, STEP)
            assert response.status_code == 200, response.text
        state = stack.sandbox.state
        await wait_until(lambda: len(state.completions) >= 5, timeout_s=10, what="the first five at HubSpot")
        b = DaemonProcess(f"daemon-b{shift}", a.env | {"LD_PRELOAD": str(_libfaketime()), "FAKETIME": shift},
                          log_dir / f"daemon-b{shift}.log")
        try:
            await b.start(http)
            await wait_until(lambda: len(state.completions) >= 15, timeout_s=45, what="all fifteen at HubSpot")
        finally:
            with trio.CancelScope(shield=True):
                await b.terminate(timeout_s=10)
        times = sorted(c["completedAt"] for c in state.completions)
        skews = [json.loads(line).get("skew_s") for line in b.log.read_text().splitlines()
                 if line.startswith("{") and '"clock.synced"' in line]

    worst = max_per_window(times, 10.0)
    gaps = [round(times[i + 5] - times[i], 2) for i in range(len(times) - 5)]
    report.add(f"7. clock skew ({shift} on the second daemon)", {
        "completions at HubSpot": len(times),
        "most in any 10 s window (limit 5)": worst,
        "shortest span of 6 consecutive completions (s, must be ≥ 10)": min(gaps),
        "skew the second daemon measured (s)": skews[0] if skews else "not logged",
    })
    assert len(times) == 15
    assert worst <= 5, gaps
    assert skews and abs(abs(skews[0]) - 1.0) < 0.2, skews  # B saw its host clock 1 s off
