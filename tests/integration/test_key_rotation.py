"""Key rotation on a real database while a daemon keeps reading tokens.

Portals are stored under key ``k1``; a daemon's :class:`TokenStore` with the ring (``k2``
current, ``k1``) reads their tokens — row-locking each, as a refresh does — while
``rotate_all`` re-encrypts them in another thread. The rotation skips rows a reader holds
and comes back for them; the reader sees old or new ciphertext and decrypts both. A ring
that lacks a token's key stops the rotation with the key named and the batch unwritten.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from throttled.clock import WallClock
from throttled.crypto import FORMAT, DecryptionError, KeyRing, key_id_of
from throttled.crypto.rotation import rotate_all, rotate_batch
from throttled.db import portals as portals_sql
from throttled.db.engine import Database
from throttled.hubspot.client import HubSpotClient
from throttled.hubspot.tokens import TokenStore

K1, K2, K3 = bytes(range(32)), bytes(range(100, 132)), bytes(range(200, 232))
OLD = KeyRing({"k1": K1}, "k1")
RING = KeyRing({"k2": K2, "k1": K1}, "k2")  # what every daemon runs with during the rotation
PORTALS = range(1000, 1500)


def _store(db: Database, ring: KeyRing, portals, now: dt.datetime) -> None:
    def save(conn):
        for portal in portals:
            portals_sql.save_install(conn, portal, ring.encrypt(f"access-{portal}", portal, "access_token"),
                                     ring.encrypt(f"refresh-{portal}", portal, "refresh_token"), now + dt.timedelta(days=1),
                                     ["automation"], ring.key_id, now)
    db.transaction_sync(save)


def _snapshot(db: Database) -> dict[int, tuple[str | None, bytes | None, bytes | None]]:
    return {p.portal_id: (p.key_id, p.access_token, p.refresh_token)
            for p in db.transaction_sync(portals_sql.list_portals)}


async def test_rotation_while_a_daemon_reads_tokens(db, empty_database):
    _store(db, OLD, PORTALS, WallClock().now())
    rotation_db = Database(empty_database, pool_size=2)
    client = HubSpotClient("http://127.0.0.1:9", "id", "secret")  # never called: tokens are fresh
    tokens = TokenStore(db, WallClock(), RING, client)
    progress: list[tuple[int, int]] = []
    seen_keys: list[str] = []
    reads = 0
    rotated = trio.Event()

    async def reader(offset: int) -> None:
        nonlocal reads
        n = offset
        while not rotated.is_set():
            portal = PORTALS[n % len(PORTALS)]
            n += 7
            row = await db.transaction(portals_sql.get_portal, portal)
            seen_keys.append(row.key_id)
            tokens._cache.pop(portal, None)  # read through the database, under the row lock
            assert await tokens.access_token(portal) == f"access-{portal}"
            reads += 1

    async def rotate() -> int:
        try:
            return await trio.to_thread.run_sync(
                lambda: rotate_all(rotation_db, RING, 25, lambda done, total: progress.append((done, total))))
        finally:
            rotated.set()

    done = None
    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for offset in range(4):
                    nursery.start_soon(reader, offset * 125)
                done = await rotate()
    finally:
        rotation_db.dispose()
        await client.aclose()

    assert done == len(PORTALS)
    assert progress[0][1] == len(PORTALS) and progress[-1] == (len(PORTALS), len(PORTALS))
    assert reads > 0 and {"k1", "k2"} <= set(seen_keys)  # the reads really overlapped the rotation
    assert tokens.refreshes == 0
    only_k2 = KeyRing({"k2": K2}, "k2")  # k1 can now leave the ring
    rows = _snapshot(db)
    assert sorted(rows) == list(PORTALS)
    for portal, (key_id, access, refresh) in rows.items():
        assert key_id == "k2" and key_id_of(access) == key_id_of(refresh) == "k2"
        assert only_k2.decrypt(access, portal, "access_token") == f"access-{portal}"
        assert only_k2.decrypt(refresh, portal, "refresh_token") == f"refresh-{portal}"
    assert db.transaction_sync(portals_sql.count_to_rotate, "k2", FORMAT) == 0


def test_a_ring_without_the_old_key_names_it_and_writes_nothing(db):
    now = WallClock().now()
    _store(db, RING, range(1, 6), now)  # already under k2
    _store(db, OLD, [6], now)  # still under k1
    before = _snapshot(db)
    newer = KeyRing({"k3": K3, "k2": K2}, "k3")  # k1 was dropped too early
    with pytest.raises(DecryptionError, match="'k1'"):
        db.transaction_sync(rotate_batch, newer, 100)
    assert _snapshot(db) == before  # k2 portals 1-5 came first in the batch: rolled back too
    with pytest.raises(DecryptionError, match="'k1'"):
        rotate_all(db, newer, 100)
    assert _snapshot(db) == before


def _portal_only(key_id: str, key: bytes, plaintext: str, portal: int) -> bytes:
    """A token as releases before the field binding stored it (format 1: the portal alone
    is the associated data)."""
    nonce = os.urandom(12)
    return bytes([1, len(key_id)]) + key_id.encode() + nonce + AESGCM(key).encrypt(nonce, plaintext.encode(),
                                                                                  f"portal:{portal}".encode())


def test_rotation_rewrites_tokens_stored_before_the_field_was_bound(db):
    now = WallClock().now()
    def save(conn):
        for portal in (1, 2):
            portals_sql.save_install(conn, portal, _portal_only("k2", K2, f"access-{portal}", portal),
                                     _portal_only("k2", K2, f"refresh-{portal}", portal), now + dt.timedelta(days=1),
                                     ["automation"], "k2", now)
    db.transaction_sync(save)
    # Already under the current key, yet still to rotate: their columns could be swapped unnoticed.
    assert db.transaction_sync(portals_sql.count_to_rotate, "k2", FORMAT) == 2
    assert RING.decrypt(_snapshot(db)[1][1], 1, "refresh_token") == "access-1"
    assert rotate_all(db, RING, 10) == 2
    for portal, (key_id, access, refresh) in _snapshot(db).items():
        assert key_id == "k2" and access[0] == refresh[0] == FORMAT
        assert RING.decrypt(access, portal, "access_token") == f"access-{portal}"
        assert RING.decrypt(refresh, portal, "refresh_token") == f"refresh-{portal}"
        with pytest.raises(DecryptionError):
            RING.decrypt(access, portal, "refresh_token")
    assert db.transaction_sync(portals_sql.count_to_rotate, "k2", FORMAT) == 0


def _cli(database_url: str, ring: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("THROTTLED_", "HUBSPOT_"))}
    env |= {"THROTTLED_DATABASE_URL": database_url, "THROTTLED_ENCRYPTION_KEYS": ring}
    throttled = Path(sys.executable).with_name("throttled")
    return subprocess.run([str(throttled), "keys", "rotate", "--batch", "40"], env=env,
                          capture_output=True, text=True, timeout=60)


def _entry(key_id: str, key: bytes) -> str:
    return f"{key_id}:{base64.b64encode(key).decode()}"


def test_cli_keys_rotate(db, empty_database):
    _store(db, OLD, range(1, 101), WallClock().now())

    refused = _cli(empty_database, f"{_entry('k3', K3)},{_entry('k2', K2)}")
    assert refused.returncode == 1
    assert "'k1'" in refused.stderr and "nothing of the failed batch was written" in refused.stderr
    assert base64.b64encode(K3).decode() not in refused.stderr + refused.stdout
    assert {key_id for key_id, _, _ in _snapshot(db).values()} == {"k1"}

    first = _cli(empty_database, f"{_entry('k2', K2)},{_entry('k1', K1)}")
    assert first.returncode == 0, first.stderr
    assert "100 portals re-encrypted; every token is under key k2" in first.stdout
    rows = _snapshot(db)
    assert {key_id for key_id, _, _ in rows.values()} == {"k2"}
    assert all(RING.decrypt(access, p, "access_token") == f"access-{p}" for p, (_, access, _) in rows.items())

    again = _cli(empty_database, f"{_entry('k2', K2)},{_entry('k1', K1)}")
    assert again.returncode == 0 and "0 portals re-encrypted" in again.stdout
