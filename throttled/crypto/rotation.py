"""``throttled keys rotate``: re-encrypt every portal's tokens with the current key, in the
current stored form (rows of format 1, which bound only the portal, are rewritten too).

Batches of row-locked portals (``FOR UPDATE SKIP LOCKED``), each its own transaction, so
daemons keep serving: a portal a daemon is refreshing is skipped and retried in a later
pass, and a daemon reading a row sees either the old or the new ciphertext — both decrypt,
as long as every daemon's key ring holds both keys (deploy the new ring first, rotate
second, drop the old key last).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.engine import Connection

from throttled.crypto.tokens import FORMAT, KeyRing
from throttled.db import portals as portals_sql
from throttled.db.engine import Database


def rotate_batch(conn: Connection, ring: KeyRing, limit: int) -> int:
    """Re-encrypt up to ``limit`` portals' tokens with the ring's current key (format 2);
    returns how many.

    Raises:
        DecryptionError: a token is under a key the ring does not hold (nothing of this
            batch is written).
    """
    rows = portals_sql.lock_portals_to_rotate(conn, ring.key_id, FORMAT, limit)
    for row in rows:
        # The query takes portals with an access token; both tokens are always written together.
        assert row.access_token is not None and row.refresh_token is not None
        access = ring.encrypt(ring.decrypt(row.access_token, row.portal_id, "access_token"), row.portal_id, "access_token")
        refresh = ring.encrypt(ring.decrypt(row.refresh_token, row.portal_id, "refresh_token"), row.portal_id,
                               "refresh_token")
        portals_sql.save_reencrypted(conn, row.portal_id, access, refresh, ring.key_id)
    return len(rows)


def rotate_all(db: Database, ring: KeyRing, batch: int = 100,
               progress: Callable[[int, int], None] = lambda done, total: None, patience_s: float = 30.0) -> int:
    """Rotate until no portal is left under an old key; returns how many were re-encrypted.

    ``progress(done, total)`` is called after every batch. Rows locked by a daemon are
    waited for up to ``patience_s`` seconds in all.
    Raises:
        TimeoutError: some rows stayed locked longer than ``patience_s``.
    """
    total = db.transaction_sync(portals_sql.count_to_rotate, ring.key_id, FORMAT)
    done, waited = 0, 0.0
    while True:
        n = db.transaction_sync(rotate_batch, ring, batch)
        done += n
        progress(done, total)
        if n:
            continue
        left = db.transaction_sync(portals_sql.count_to_rotate, ring.key_id, FORMAT)
        if left == 0:
            return done
        if waited >= patience_s:
            raise TimeoutError(f"{left} portals stayed locked for {patience_s:.0f} s; run `throttled keys rotate` again")
        time.sleep(0.2)  # those rows are being refreshed right now
        waited += 0.2
