"""Database URLs: libpq's multi-host form for a primary and its standbys (pure)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from throttled.db.engine import Database
from throttled.db.urls import libpq_uri, shown_url, sqlalchemy_url

MULTI = "postgresql://app:p%40ss@db1:5432,db2:5433/throttled?target_session_attrs=read-write&connect_timeout=3"


def test_a_multi_host_url_becomes_repeated_host_parameters_for_sqlalchemy():
    parsed = sa.engine.make_url(sqlalchemy_url(MULTI))
    assert parsed.drivername == "postgresql+psycopg"
    assert parsed.query["host"] == ("db1:5432", "db2:5433")
    assert parsed.query["target_session_attrs"] == "read-write" and parsed.database == "throttled"
    assert (parsed.username, parsed.password) == ("app", "p@ss")


def test_and_back_to_libpqs_own_form_for_a_raw_connection():
    base, _, query = libpq_uri(MULTI).partition("?")
    assert base == "postgresql://app:p%40ss@db1:5432,db2:5433/throttled"
    assert sorted(query.split("&")) == ["connect_timeout=3", "target_session_attrs=read-write"]
    assert libpq_uri(sqlalchemy_url(MULTI)) == libpq_uri(MULTI)


@pytest.mark.parametrize("url", ["postgresql://postgres@127.0.0.1:5432/postgres", "postgres://u:p@h/db?sslmode=require",
                                 "postgresql://u@/db?host=/var/run/postgresql"])
def test_single_host_urls_pass_through(url):
    assert sa.engine.make_url(libpq_uri(url)) == sa.engine.make_url(url.replace("postgres://", "postgresql://"))
    assert sqlalchemy_url(url).startswith("postgresql+psycopg://")


def test_the_setting_accepts_a_multi_host_url():
    from throttled.settings import load_settings

    assert load_settings(database_url=MULTI).database_url == MULTI


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://u:hunter2@db.example:5432/t", "postgresql://u:***@db.example:5432/t"),
    # A fresh-user trial: libpq takes a password parameter too, and it was printed in full.
    ("postgresql://postgres@127.0.0.1/x?sslmode=disable&password=hunter2",
     "postgresql://postgres@127.0.0.1/x?password=***&sslmode=disable"),
    ("postgres://app:hunter2@db1:5432,db2:5433/throttled?target_session_attrs=read-write",
     "postgresql://app:***@db1:5432,db2:5433/throttled?target_session_attrs=read-write"),
    ("postgresql+psycopg://a:hunter2@h/d", "postgresql://a:***@h/d"),
])
def test_a_url_is_shown_as_written_without_its_password(url, shown):
    assert shown_url(url) == shown
    db = Database(url, pool_size=1)
    try:
        assert repr(db) == f"Database({shown})"  # what `throttled migrate` prints
    finally:
        db.dispose()
