import base64

import pytest

from throttled.crypto import DecryptionError, TokenCipher, generate_key, parse_key

KEY = bytes(range(32))


def test_round_trip_and_random_nonce():
    cipher = TokenCipher(KEY)
    a, b = cipher.encrypt("tok-123", 62515), cipher.encrypt("tok-123", 62515)
    assert a != b  # a fresh nonce each time
    assert cipher.decrypt(a, 62515) == "tok-123"
    assert b"tok-123" not in a


def test_portal_is_bound_as_associated_data():
    cipher = TokenCipher(KEY)
    stored = cipher.encrypt("tok-123", 1)
    with pytest.raises(DecryptionError):
        cipher.decrypt(stored, 2)


def test_other_key_is_an_error_not_a_fallback():
    stored = TokenCipher(KEY).encrypt("tok", 1)
    with pytest.raises(DecryptionError, match="unknown key id"):
        TokenCipher(bytes(32)).decrypt(stored, 1)


def test_tampered_bytes_rejected():
    cipher = TokenCipher(KEY)
    stored = bytearray(cipher.encrypt("tok", 1))
    stored[-1] ^= 1
    with pytest.raises(DecryptionError):
        cipher.decrypt(bytes(stored), 1)


def test_parse_key_accepts_generated_and_urlsafe():
    assert len(parse_key(generate_key())) == 32
    urlsafe = base64.urlsafe_b64encode(b"\xfb" * 32).decode().rstrip("=")
    assert parse_key(urlsafe) == b"\xfb" * 32


@pytest.mark.parametrize("bad", ["", "not base64!!", base64.b64encode(b"short").decode()])
def test_parse_key_rejects(bad):
    with pytest.raises(ValueError):
        parse_key(bad)


def test_repr_holds_no_key():
    cipher = TokenCipher(KEY)
    assert KEY.hex() not in repr(cipher) and base64.b64encode(KEY).decode() not in repr(cipher)
