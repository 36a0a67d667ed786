"""Database URLs: libpq's multi-host form for a primary and its standbys (pure)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from throttled.db.urls import libpq_uri, sqlalchemy_url

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
