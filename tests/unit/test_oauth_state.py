"""The OAuth ``state``: signed, expiring, bound to the browser's cookie (pure)."""

from __future__ import annotations

import datetime as dt

import pytest
import trio
from itsdangerous import URLSafeTimedSerializer

from throttled.clock import TrioClock
from throttled.hubspot.oauth import (
    APP,
    INSTALL,
    STATE_MAX_AGE_S,
    InvalidState,
    _serializer,
    check_state,
    make_state,
    nonce_digest,
    read_state,
)

SECRET = "client-secret-" + "x" * 20
EPOCH = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def _reason(state: str | None, cookie: str | None, secret: str = SECRET) -> str:
    with pytest.raises(InvalidState) as caught:
        check_state(secret, TrioClock(EPOCH), state, cookie)
    return caught.value.reason


async def test_the_starting_browser_completes_its_install(autojump_clock):
    clock = TrioClock(EPOCH)
    issued = make_state(SECRET, clock)
    await trio.sleep(STATE_MAX_AGE_S - 1)
    committed = check_state(SECRET, clock, issued.state, issued.browser_secret)
    assert committed and issued.browser_secret not in committed
    assert issued.browser_secret not in repr(issued) and issued.state not in repr(issued)


async def test_the_state_does_not_reveal_the_cookie(autojump_clock):
    # A new-user trial: the state carried the cookie's value readably (itsdangerous signs, it
    # does not encrypt), so a stranger holding the state made the cookie and installed.
    issued = make_state(SECRET, TrioClock(EPOCH))
    _valid, readable = URLSafeTimedSerializer("anyone").loads_unsafe(issued.state)  # no secret needed to read
    assert isinstance(readable, str) and issued.browser_secret not in readable
    assert _reason(issued.state, readable) == "other_browser"


async def test_a_state_older_than_ten_minutes_is_refused(autojump_clock):
    issued = make_state(SECRET, TrioClock(EPOCH))
    await trio.sleep(STATE_MAX_AGE_S + 1)
    assert _reason(issued.state, issued.browser_secret) == "forged_or_expired"


async def test_refusals_name_their_reason(autojump_clock):
    issued = make_state(SECRET, TrioClock(EPOCH))
    other = make_state(SECRET, TrioClock(EPOCH))
    assert _reason(None, issued.browser_secret) == "missing"
    assert _reason(issued.state, issued.browser_secret, secret="another-secret-" + "y" * 20) == "forged_or_expired"
    assert _reason(issued.state[:-2] + "xx", issued.browser_secret) == "forged_or_expired"
    assert _reason(issued.state, None) == "no_cookie"
    assert _reason(issued.state, other.browser_secret) == "other_browser"


async def test_browser_secrets_are_fresh_and_spent_only_as_digests(autojump_clock):
    clock = TrioClock(EPOCH)
    issued = [make_state(SECRET, clock) for _ in range(100)]
    assert len({i.browser_secret for i in issued}) == 100
    committed = check_state(SECRET, clock, issued[0].state, issued[0].browser_secret)
    assert len(nonce_digest(committed)) == 32 and committed.encode() not in nonce_digest(committed)


async def test_a_state_says_what_it_is_for_and_one_without_a_purpose_is_an_install(autojump_clock):
    clock = TrioClock(EPOCH)
    install, sign_in = make_state(SECRET, clock), make_state(SECRET, clock, APP)
    assert read_state(SECRET, clock, install.state, install.browser_secret).purpose == INSTALL
    checked = read_state(SECRET, clock, sign_in.state, sign_in.browser_secret)
    assert checked.purpose == APP and sign_in.browser_secret not in checked.nonce and checked.nonce not in repr(checked)
    # A state as the previous version wrote it (the digest alone) reads as an install.
    _valid, old = URLSafeTimedSerializer("anyone").loads_unsafe(install.state)
    assert isinstance(old, str) and check_state(SECRET, clock, install.state, install.browser_secret) == old
    # An install may not be completed with a sign-in's state, nor a state of an unknown kind.
    assert _reason(sign_in.state, sign_in.browser_secret) == "other_purpose"
    unknown = _serializer(SECRET, clock).dumps({"nonce": checked.nonce, "purpose": "admin"})
    with pytest.raises(InvalidState) as caught:
        read_state(SECRET, clock, unknown, sign_in.browser_secret)
    assert caught.value.reason == "forged_or_expired"
    with pytest.raises(ValueError, match="purpose"):
        make_state(SECRET, clock, "admin")
