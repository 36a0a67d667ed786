"""Retry backoff for failed jobs — pure.

``delay(attempt) = min(cap, base * 2 ** (attempt - 1)) * (1 + jitter * u)`` with ``u``
uniform in [-1, 1): 1 s, 2 s, 4 s, … capped at one hour, each ±10 %. ``attempt`` counts
attempts that *failed*; snoozes never spend an attempt, so they never lengthen the backoff.
"""

from __future__ import annotations

import random

BASE_S = 1.0
CAP_S = 3600.0
JITTER = 0.1


def backoff_seconds(attempt: int, *, rng: random.Random | None = None) -> float:
    """Seconds to wait before retrying after failed attempt number ``attempt`` (1-based).

    Raises:
        ValueError: ``attempt`` below 1.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    raw = min(CAP_S, BASE_S * 2.0 ** min(attempt - 1, 62))
    u = (rng or random).uniform(-1.0, 1.0)
    return raw * (1.0 + JITTER * u)
