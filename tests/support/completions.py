"""Waiting for HubSpot's side *and* ours: the completions at the sandbox, once the daemons
have recorded every one of them.

A daemon records a success in the database while its next batch is already on the wire,
so the sandbox can hold all completions while some executions still read 'releasing'
(``test_a_token_that_dies_during_a_429_wait_is_refreshed_again`` failed 3 runs in 7 on
that). Once every completed callback's execution has left 'pending'/'releasing', its
outcome is recorded and it will not be sent again — so the completions returned here are
final for those callbacks: no sleep is needed to catch a late duplicate.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from tests.support.waiting import wait_until
from throttled.testing import Stack

_UNSETTLED = sa.text(
    "SELECT count(*) FROM action_executions WHERE callback_id = ANY(:ids) AND state IN ('pending', 'releasing')"
)


async def settled_completions(
    stack: Stack, n: int | None = None, *, ids: Collection[str] | None = None, timeout_s: float = 15.0,
) -> list[dict[str, Any]]:
    """Every completion the sandbox recorded, once at least ``n`` callbacks (or every one of
    ``ids``) were completed there and the database holds each of them in a final state.

    Raises:
        WaitTimedOut: not within ``timeout_s`` seconds (the message says which side lagged).
    """
    if (n is None) == (ids is None):
        raise TypeError("give n or ids")
    wanted = set(ids or ())

    async def at_hubspot() -> list[dict[str, Any]] | None:
        done = await stack.hubspot.completions()
        seen = {c["callbackId"] for c in done}
        return done if (wanted <= seen if ids is not None else len(seen) >= (n or 0)) else None

    what = f"{n if ids is None else len(wanted)} completions at the sandbox"
    done = await wait_until(at_hubspot, timeout_s=timeout_s, what=what)
    completed = sorted({c["callbackId"] for c in done})

    async def recorded() -> bool:
        unsettled = await stack.daemons[0].db.transaction(
            lambda conn: conn.execute(_UNSETTLED, {"ids": completed}).scalar_one())
        return unsettled == 0

    await wait_until(recorded, timeout_s=timeout_s, what="the daemons to record every completion")
    return await stack.hubspot.completions()
