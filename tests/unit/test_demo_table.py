"""The demo's result table in a pipe or CI log (not a terminal) shows every column whole.
Found by two fresh-user trials: headers and cells came out cut ("receiv…", "most in any win…")."""

from __future__ import annotations

import io

from throttled.demo.run import STEPS, TABLE_WIDTH, _queues, _table, demo_console

PORTAL = 62515


def _finished() -> tuple[dict[str, str], list[dict]]:
    """Three completions of each demo queue, as the sandbox reports them."""
    sent, completions = {}, []
    for n, step in enumerate(_queues(PORTAL)):
        for i in range(3):
            callback_id = f"cb-{n}-{i}"
            sent[callback_id] = step.queue_id(PORTAL)
            completions.append({"callbackId": callback_id, "completedAt": 1_000.0 + i,
                                "outputFields": {"held_seconds": "12", "position_on_arrival": str(i + 1)}})
    return sent, completions


def test_the_result_table_is_not_cut_when_stdout_is_not_a_terminal():
    sent, completions = _finished()
    out = io.StringIO()
    demo_console(out).print(_table(sent, completions, PORTAL, "result"))
    text = out.getvalue()
    assert "…" not in text, text
    assert "most in any window" in text and "max held s" in text
    assert all(step.queue_id(PORTAL) in text for step in STEPS), text



class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_result_table_is_not_cut_in_a_narrow_terminal(monkeypatch):
    # A second trial: in a 120-column terminal the table was still cut, to 132 columns.
    monkeypatch.setenv("COLUMNS", "120")
    out = _Terminal()
    console = demo_console(out)
    assert console.is_terminal and console.width >= TABLE_WIDTH
    console.print(_table(*_finished(), PORTAL, "result"))
    assert "…" not in out.getvalue(), out.getvalue()
