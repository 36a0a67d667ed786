"""The admin listener's header checks (pure parts of ``web/auth.py``)."""

from __future__ import annotations

import base64

from throttled.web.auth import basic_password_matches, bearer_matches, normal_host


def _basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def test_hosts_compare_without_port_case_brackets_or_trailing_dot():
    assert normal_host("LocalHost.:8081") == "localhost"
    assert normal_host("[::1]:8081") == "::1"
    assert normal_host("[::1]") == "::1"
    assert normal_host("127.0.0.1") == "127.0.0.1"
    assert normal_host("") == ""


def test_malformed_hosts_normalize_to_nothing():
    for host in ("[::1]evil.example", "[::1", "localhost:abc", "[::1]:80x"):
        assert normal_host(host) == "", host


def test_basic_takes_the_token_as_password_under_any_user_name():
    assert basic_password_matches(_basic("anyone:tok-123"), "tok-123")
    assert basic_password_matches(_basic(":tok-123"), "tok-123")
    assert basic_password_matches("basic " + base64.b64encode(b"u:tok-123").decode(), "tok-123")
    assert not basic_password_matches(_basic("tok-123"), "tok-123")  # no colon: a user, no password
    assert not basic_password_matches(_basic("u:tok-1234"), "tok-123")
    assert not basic_password_matches("Basic not*base64", "tok-123")
    assert not basic_password_matches("Basic " + base64.b64encode(b"u:\xff").decode(), "tok-123")
    assert not basic_password_matches("Bearer tok-123", "tok-123")


def test_bearer_scheme_is_case_insensitive():
    assert bearer_matches("bEaReR tok-123", "tok-123")
    assert not bearer_matches("Basic tok-123", "tok-123")
