"""The OAuth ``state``: signed, expiring, bound to the browser's cookie (pure)."""

from __future__ import annotations

import datetime as dt

import pytest
import trio

from throttled.clock import TrioClock
from throttled.hubspot.oauth import STATE_MAX_AGE_S, InvalidState, check_state, make_state, nonce_digest

SECRET = "client-secret-" + "x" * 20
EPOCH = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def _reason(state: str | None, cookie: str | None, secret: str = SECRET) -> str:
    with pytest.raises(InvalidState) as caught:
        check_state(secret, TrioClock(EPOCH), state, cookie)
    return caught.value.reason


async def test_the_starting_browser_gets_its_nonce_back(autojump_clock):
    clock = TrioClock(EPOCH)
    issued = make_state(SECRET, clock)
    await trio.sleep(STATE_MAX_AGE_S - 1)
    assert check_state(SECRET, clock, issued.state, issued.nonce) == issued.nonce
    assert issued.nonce not in repr(issued) and issued.state not in repr(issued)


async def test_a_state_older_than_ten_minutes_is_refused(autojump_clock):
    issued = make_state(SECRET, TrioClock(EPOCH))
    await trio.sleep(STATE_MAX_AGE_S + 1)
    assert _reason(issued.state, issued.nonce) == "forged_or_expired"


async def test_refusals_name_their_reason(autojump_clock):
    issued = make_state(SECRET, TrioClock(EPOCH))
    other = make_state(SECRET, TrioClock(EPOCH))
    assert _reason(None, issued.nonce) == "missing"
    assert _reason(issued.state, issued.nonce, secret="another-secret-" + "y" * 20) == "forged_or_expired"
    assert _reason(issued.state[:-2] + "xx", issued.nonce) == "forged_or_expired"
    assert _reason(issued.state, None) == "no_cookie"
    assert _reason(issued.state, other.nonce) == "other_browser"


async def test_nonces_are_fresh_and_stored_only_as_digests(autojump_clock):
    clock = TrioClock(EPOCH)
    nonces = {make_state(SECRET, clock).nonce for _ in range(100)}
    assert len(nonces) == 100
    nonce = next(iter(nonces))
    assert len(nonce_digest(nonce)) == 32 and nonce.encode() not in nonce_digest(nonce)
