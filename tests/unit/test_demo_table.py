"""The demo's result table in a pipe or CI log (not a terminal) shows every column whole.
Found by two fresh-user trials: headers and cells came out cut ("receiv…", "most in any win…")."""

from __future__ import annotations

import io

from throttled.demo.run import STEPS, _queues, _table, demo_console

PORTAL = 62515


def test_the_result_table_is_not_cut_when_stdout_is_not_a_terminal():
    sent, completions = {}, []
    for n, step in enumerate(_queues(PORTAL)):
        for i in range(3):
            callback_id = f"cb-{n}-{i}"
            sent[callback_id] = step.queue_id(PORTAL)
            completions.append({"callbackId": callback_id, "completedAt": 1_000.0 + i,
                                "outputFields": {"held_seconds": "12", "position_on_arrival": str(i + 1)}})
    out = io.StringIO()
    demo_console(out).print(_table(sent, completions, PORTAL, "result"))
    text = out.getvalue()
    assert "…" not in text, text
    assert "most in any window" in text and "max held s" in text
    assert all(step.queue_id(PORTAL) in text for step in STEPS), text
