"""The database handle: a SQLAlchemy Core engine (psycopg 3) used from trio through threads.

SQLAlchemy and psycopg calls block, so every call runs in ``trio.to_thread.run_sync`` under
a :class:`trio.CapacityLimiter` sized to the connection pool (trio's default limiter of 40
threads would outrun a small pool and turn load into pool timeouts; stack notes). A thread
is not interrupted when its caller is cancelled, so writes must be idempotent and replies
are sent only after the commit returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
import tenacity
import trio
from sqlalchemy.engine import Connection, Engine

from throttled.db.urls import libpq_uri, shown_url, sqlalchemy_url

T = TypeVar("T")

# Errors that mean "the database is not reachable right now", as opposed to a bug.
_UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)

#: A pooled connection idle longer than this (seconds) is pinged before use; one in steady
#: use is not (a ping on every checkout cost 9 % of the release path's samples, issue 17).
PING_IDLE_S = 1.0


class SchemaMissing(Exception):
    """The database has no throttled tables, or older ones than this version needs: run
    ``throttled migrate`` (or ``run``)."""


class DatabaseUnavailable(Exception):
    """The database could not be reached or the pool is exhausted; try again later.

    The web layer answers 503 with ``Retry-After``; background tasks back off and retry.
    """


def make_engine(url: str, pool_size: int, session_timezone: str = "UTC", ping_idle_s: float = PING_IDLE_S) -> Engine:
    """A pooled engine for ``url``.

    ``url`` may be ``postgres://``, ``postgresql://`` or ``postgresql+psycopg://``; it is
    always driven by psycopg 3. Connections time out after 5 s so an outage fails fast.
    Every time we store is an aware UTC datetime in a ``timestamptz`` column, so the
    session time zone changes nothing stored; UTC just makes values read back print in UTC.
    It is set by a statement on each new connection, not as a startup option: PgBouncer
    refuses the ``options`` startup parameter (``FATAL: unsupported startup parameter``).

    A connection idle more than ``ping_idle_s`` seconds is pinged at checkout and replaced if
    the server went away (SQLAlchemy's pessimistic disconnect handling, limited to idle ones).
    The pool hands out the most recently used connection first, so the connections in steady
    use are never idle (first in, first out made every checkout of a quiet daemon a ping:
    bench/db_cost's idle daemon ran 12.5 statements/s instead of 7.7). Those are not pinged:
    when the server restarts under one, that transaction fails with
    :class:`DatabaseUnavailable` (every caller retries outages) and SQLAlchemy drops the whole
    pool, so the next ones reconnect.
    """
    engine = sa.create_engine(
        normalize_url(url),
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=10,
        pool_use_lifo=True,  # the connections in use stay hot (no ping); the spare ones idle
        pool_recycle=1800,
        connect_args={"connect_timeout": 5},
    )

    @sa.event.listens_for(engine, "checkin")
    def note_idle_since(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) <= ping_idle_s:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_connection.rollback()
        except psycopg.Error as exc:
            raise sa.exc.DisconnectionError("pooled connection went away while idle") from exc  # the pool retries

    @sa.event.listens_for(engine, "connect")
    def set_session_timezone(dbapi_connection: Any, record: Any) -> None:  # psycopg.Connection
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT set_config('timezone', %s, false)", (session_timezone,))
        dbapi_connection.commit()  # or the pool's reset-on-return rollback would undo it
        record.info["idle_since"] = time.monotonic()  # just proven alive

    return engine


def normalize_url(url: str) -> str:
    """``url`` with the ``postgresql+psycopg`` driver name (several hosts: ``db/urls.py``)."""
    return sqlalchemy_url(url)


def libpq_url(url: str) -> str:
    """``url`` as a plain libpq URI (for a raw psycopg connection, e.g. LISTEN)."""
    return libpq_uri(url)


class Database:
    """The daemon's database: an engine plus the thread limiter that guards it.

    Args:
        url: PostgreSQL URL (see :func:`make_engine`).
        pool_size: connections in the pool, and threads allowed at once.
        session_timezone: PostgreSQL ``timezone`` of every session (tests vary it).
        ping_idle_s: seconds idle after which a pooled connection is pinged before use.
    """

    def __init__(self, url: str, pool_size: int = 10, session_timezone: str = "UTC",
                 ping_idle_s: float = PING_IDLE_S) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size, session_timezone, ping_idle_s)
        self.limiter = trio.CapacityLimiter(pool_size)

    async def transaction(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` in one transaction in a worker thread; return its result.

        The transaction commits when ``fn`` returns and rolls back if it raises.
        Raises:
            DatabaseUnavailable: the database is unreachable or the pool is exhausted.
        """
        return await trio.to_thread.run_sync(partial(self.transaction_sync, fn, *args), limiter=self.limiter)

    async def transaction_through_outage(self, fn: Callable[..., T], *args: Any, give_up_s: float) -> T:
        """:meth:`transaction`, tried again while the database is unreachable (see
        :func:`through_outage`) for up to ``give_up_s`` seconds.

        Raises:
            DatabaseUnavailable: still unreachable after ``give_up_s`` seconds.
        """
        async for attempt in through_outage(give_up_s):
            with attempt:
                return await self.transaction(fn, *args)
        raise AssertionError("unreachable: the last DatabaseUnavailable is raised again")

    def transaction_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Blocking form of :meth:`transaction`, for threads and CLI commands."""
        try:
            with self.engine.begin() as conn:
                return fn(conn, *args)
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailable(_describe(exc)) from exc
        except sa.exc.ProgrammingError as exc:
            if isinstance(exc.orig, psycopg.errors.UndefinedTable):
                raise SchemaMissing("the database has no throttled tables: run `throttled migrate`") from exc
            if isinstance(exc.orig, psycopg.errors.UndefinedColumn):
                raise SchemaMissing("the database schema is older than this version of throttled: "
                                    "run `throttled migrate`") from exc
            raise

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({shown_url(self.url)})"  # the password hidden, in the user part or a parameter


def through_outage(give_up_s: float) -> tenacity.AsyncRetrying:
    """Tries of a write that must not be dropped over a short database outage (a stamp, an
    acknowledgement, a job's outcome: dropped, each waits minutes for a lease to lapse), as
    ``async for attempt in through_outage(s): with attempt: ...``: each try again after a
    :class:`DatabaseUnavailable`, pauses of 0.25 s doubling to at most 2 s, in trio time (a
    test's ``MockClock`` drives them), until ``give_up_s`` seconds have passed; then the last
    :class:`DatabaseUnavailable` is raised. Any other error is raised at once."""
    deadline = trio.current_time() + give_up_s
    return tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception_type(DatabaseUnavailable),
        wait=tenacity.wait_exponential(multiplier=0.25, max=2.0),
        stop=lambda _state: trio.current_time() >= deadline,
        sleep=trio.sleep, reraise=True)


def _describe(exc: BaseException) -> str:
    # The driver's message can include the host but never the password; keep the first line.
    text = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


__all__ = ["Connection", "Database", "DatabaseUnavailable", "SchemaMissing", "libpq_url", "make_engine", "normalize_url"]
