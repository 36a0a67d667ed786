"""The customer page's session cookie and CSRF check (pure): signed with the client secret
under its own salt, 12 hours by the daemon's clock, the portal it names unforgeable."""

from __future__ import annotations

import datetime as dt
import json

import trio
from itsdangerous import URLSafeTimedSerializer

from throttled.clock import TrioClock
from throttled.hubspot.oauth import make_state
from throttled.web.customer.session import MAX_AGE_S, SALT, csrf_ok, issue, read

SECRET = "client-secret-" + "x" * 20
EPOCH = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


async def test_a_session_reads_back_until_twelve_hours_by_the_clock(autojump_clock):
    clock = TrioClock(EPOCH)
    cookie, issued = issue(SECRET, clock, 62515)
    assert read(SECRET, clock, cookie) == issued and issued.portal_id == 62515
    await trio.sleep(MAX_AGE_S - 1)
    assert read(SECRET, clock, cookie) == issued
    await trio.sleep(2)
    assert read(SECRET, clock, cookie) is None, "an expired session was accepted"


async def test_a_session_from_the_future_is_refused(autojump_clock):
    later = TrioClock(EPOCH + dt.timedelta(hours=1))
    cookie, _ = issue(SECRET, later, 1)
    assert read(SECRET, TrioClock(EPOCH), cookie) is None


async def test_forged_sessions_are_refused():
    clock = TrioClock(EPOCH)
    cookie, _ = issue(SECRET, clock, 1)
    assert read(SECRET, clock, None) is None and read(SECRET, clock, "") is None
    assert read("another-secret-" + "y" * 20, clock, cookie) is None  # another key
    assert read(SECRET, clock, cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")) is None  # altered signature
    # Another use of the same key (an OAuth state) never passes for a session.
    assert read(SECRET, clock, make_state(SECRET, clock).state) is None
    # A session that names another portal, signed with a key the attacker has: refused.
    forged = URLSafeTimedSerializer("attacker", salt=SALT).dumps({"portal": 2, "csrf": "x"})
    assert read(SECRET, clock, forged) is None


async def test_the_portal_cannot_be_swapped_inside_a_signed_cookie():
    clock = TrioClock(EPOCH)
    cookie, _ = issue(SECRET, clock, 1)
    payload, _, signature = cookie.partition(".")
    other = URLSafeTimedSerializer(SECRET, salt=SALT).dump_payload({"portal": 2, "csrf": "x"}).decode()
    assert other != payload
    assert read(SECRET, clock, f"{other}.{signature}") is None


async def test_payloads_of_the_wrong_shape_are_refused():
    clock = TrioClock(EPOCH)
    sign = URLSafeTimedSerializer(SECRET, salt=SALT)
    for payload in ([1, "x"], {"portal": "1", "csrf": "x"}, {"portal": True, "csrf": "x"}, {"portal": 1, "csrf": ""},
                    {"portal": 1}):
        assert read(SECRET, clock, sign.dumps(payload)) is None, json.dumps(payload)


async def test_csrf_needs_this_sessions_token():
    clock = TrioClock(EPOCH)
    _, mine = issue(SECRET, clock, 1)
    _, other_portal = issue(SECRET, clock, 2)
    _, same_portal_again = issue(SECRET, clock, 1)
    assert csrf_ok(mine, mine.csrf)
    assert not csrf_ok(mine, other_portal.csrf)  # another portal's session's token
    assert not csrf_ok(mine, same_portal_again.csrf)  # every session has its own
    assert not csrf_ok(mine, None) and not csrf_ok(mine, "") and not csrf_ok(None, mine.csrf)
    assert not csrf_ok(mine, mine.csrf + "x") and not csrf_ok(mine, "é")
    assert len(mine.csrf) >= 43 and mine.csrf not in repr(mine)
