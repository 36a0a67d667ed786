"""Settings that are each valid but together break a guarantee — pure, one place.

``config check`` and ``run`` refuse them with one line naming every variable involved (the
settings model calls :func:`combination_error`). Each rule says which guarantee it protects;
the README's settings section lists them.
"""

from __future__ import annotations

from typing import Protocol

#: Seconds a release's lease must have left, beyond the call itself, for its outcome to be
#: written before the lease lapses (one database round trip, with room for a slow one).
RECORD_SLACK_S = 1.0


class _Timings(Protocol):
    release_lease_s: float
    hubspot_timeout_s: float
    bind: str
    admin_bind: str
    block_duration: str
    block_max: str
    max_body_bytes: int
    body_budget_bytes: int

    @property
    def block_seconds(self) -> tuple[int, int]: ...


def renew_margin_s(hubspot_timeout_s: float) -> float:
    """Seconds of lease a release must have left for a HubSpot call to start on it: the
    longest call (every call ends within ``THROTTLED_HUBSPOT_TIMEOUT``) plus the time to
    record its outcome."""
    return hubspot_timeout_s + RECORD_SLACK_S


def combination_error(s: _Timings) -> str | None:
    """The first rule ``s`` breaks, as one line naming the variables, or ``None``."""
    margin = renew_margin_s(s.hubspot_timeout_s)
    if s.release_lease_s < 2 * margin:
        # At-least-once without duplicates: a call on a release must end (and be recorded)
        # before its lease lapses, or the worker hands the release out again while the
        # first call is still on its way (measured: 11 of 20 callbacks sent twice with a
        # 6 s lease, a 10 s timeout and a HubSpot answering after 9 s). Twice the margin, so
        # a renewed lease always covers at least one whole call.
        return (f"THROTTLED_RELEASE_LEASE ({s.release_lease_s:g} s) must be at least 2 × "
                f"(THROTTLED_HUBSPOT_TIMEOUT + {RECORD_SLACK_S:g} s) = {2 * margin:g} s: a release must stay leased "
                "through a whole HubSpot call, or it is sent again while the call is on its way")
    if s.bind == s.admin_bind and not s.bind.endswith(":0"):
        # The public and the admin listener cannot share an address: the second fails to bind.
        return f"THROTTLED_BIND and THROTTLED_ADMIN_BIND are both {s.bind}: the admin listener needs an address of its own"
    if s.body_budget_bytes < s.max_body_bytes:
        # A body the size of the limit must fit the budget, or such a webhook is refused forever.
        return (f"THROTTLED_BODY_BUDGET ({s.body_budget_bytes}) must be at least THROTTLED_MAX_BODY "
                f"({s.max_body_bytes}): a body at the limit would never be admitted")
    shortest, longest = s.block_seconds
    if longest < shortest:
        # Every block lies between the two; a longest below the shortest leaves none.
        return (f"THROTTLED_BLOCK_MAX ({s.block_max}) must be at least THROTTLED_BLOCK_DURATION ({s.block_duration}): "
                "the longest block cannot be shorter than the shortest")
    return None
