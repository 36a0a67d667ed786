"""Spent OAuth states in the database: each spends once, the cleaner forgets them after expiry."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from tests.conftest import EPOCH
from throttled.cleaner.cleaner import Cleaner
from throttled.clock import TrioClock
from throttled.db import oauth_states
from throttled.hubspot.oauth import nonce_digest


async def test_a_state_spends_once_and_is_pruned_after_it_expires(db, autojump_clock):
    digest, other = nonce_digest("nonce-a"), nonce_digest("nonce-b")
    expires = EPOCH + dt.timedelta(minutes=10)
    assert await db.transaction(oauth_states.spend, digest, expires)
    assert not await db.transaction(oauth_states.spend, digest, expires)
    assert await db.transaction(oauth_states.spend, other, expires + dt.timedelta(minutes=5))

    await Cleaner(db, TrioClock(expires + dt.timedelta(seconds=1)))(None)

    left = await db.transaction(lambda c: c.execute(sa.text("SELECT nonce_sha256 FROM oauth_spent_states")).scalars().all())
    assert [bytes(x) for x in left] == [other]
