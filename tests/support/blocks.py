"""Reading the block a webhook answer asks HubSpot for."""

from __future__ import annotations

from typing import Any

from throttled.settings import duration_seconds


def held_for_s(answer: dict[str, Any]) -> int:
    """Seconds of the ``BLOCK`` an answer asks for (fails the test on any other answer)."""
    fields = answer["outputFields"]
    assert fields["hs_execution_state"] == "BLOCK", fields
    assert set(fields) == {"hs_execution_state", "hs_expiration_duration"}, fields
    return duration_seconds(fields["hs_expiration_duration"])


def rest_of_block(answer: dict[str, Any], block_s: int, within_s: int = 300) -> bool:
    """Whether ``answer`` holds for the rest of a ``block_s`` block begun at most ``within_s``
    seconds ago (a webhook sent again), not for a new block."""
    return block_s - within_s <= held_for_s(answer) <= block_s
