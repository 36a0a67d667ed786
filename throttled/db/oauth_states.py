"""Every SQL statement of ``oauth_spent_states``: OAuth install states already used.

A callback spends its state's nonce before exchanging the code; a second callback with the
same state finds it spent and is refused. Rows live until the state would have expired
anyway, then the cleaner prunes them.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlalchemy.engine import Connection


def spend(conn: Connection, nonce_sha256: bytes, expires_at: dt.datetime) -> bool:
    """Mark a state spent; ``False`` if it already was (a replayed callback).

    Args:
        nonce_sha256: :func:`throttled.hubspot.oauth.nonce_digest` of the state's nonce.
        expires_at: when the state expires (UTC); the row is kept until then.
    """
    return conn.execute(
        text("""INSERT INTO oauth_spent_states (nonce_sha256, expires_at) VALUES (:digest, :expires_at)
                ON CONFLICT (nonce_sha256) DO NOTHING"""),
        {"digest": nonce_sha256, "expires_at": expires_at},
    ).rowcount == 1


def prune(conn: Connection, now: dt.datetime, limit: int = 1000) -> int:
    """Forget up to ``limit`` spent states past their expiry (the cleaner); returns how many."""
    return conn.execute(
        text("""DELETE FROM oauth_spent_states WHERE nonce_sha256 IN (
                    SELECT nonce_sha256 FROM oauth_spent_states WHERE expires_at < :now LIMIT :limit)"""),
        {"now": now, "limit": limit},
    ).rowcount
