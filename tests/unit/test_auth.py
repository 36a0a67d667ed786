"""The one bearer check of the operator and config APIs (``throttled/web/auth.py``)."""

from throttled.web.auth import bearer_matches

TOKEN = "admin-" + "0123456789abcdef" * 2


def test_the_scheme_is_case_insensitive_and_the_token_exact():
    # RFC 7235 §2.1: the auth scheme is case-insensitive; before, "bearer …" was refused.
    for header in (f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER {TOKEN}", f"  Bearer {TOKEN}  "):
        assert bearer_matches(header, TOKEN), header
    for header in ("", "Bearer", f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Token {TOKEN}"):
        assert not bearer_matches(header, TOKEN), header
