import base64

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from throttled.crypto import (
    FORMAT,
    DecryptionError,
    KeyRing,
    generate_key,
    key_id_of,
    parse_key,
    parse_key_ring,
)

KEY = bytes(range(32))


def test_round_trip_and_random_nonce():
    cipher = KeyRing.single(KEY)
    a, b = cipher.encrypt("tok-123", 62515, "access_token"), cipher.encrypt("tok-123", 62515, "access_token")
    assert a != b  # a fresh nonce each time
    assert cipher.decrypt(a, 62515, "access_token") == "tok-123"
    assert b"tok-123" not in a


def test_portal_is_bound_as_associated_data():
    cipher = KeyRing.single(KEY)
    stored = cipher.encrypt("tok-123", 1, "access_token")
    with pytest.raises(DecryptionError):
        cipher.decrypt(stored, 2, "access_token")


def test_the_field_is_bound_as_associated_data():
    cipher = KeyRing.single(KEY)
    access = cipher.encrypt("tok-123", 1, "access_token")
    with pytest.raises(DecryptionError, match="as this portal's refresh_token"):
        cipher.decrypt(access, 1, "refresh_token")  # a swapped column fails, not a silent mix-up


def test_values_stored_before_the_field_was_bound_still_decrypt():
    # Format 1, as the first releases wrote it: only the portal is associated data.
    nonce = bytes(12)
    sealed = AESGCM(KEY).encrypt(nonce, b"tok-legacy", b"portal:7")
    kid = KeyRing.single(KEY).key_id.encode()
    legacy = bytes([1, len(kid)]) + kid + nonce + sealed
    cipher = KeyRing.single(KEY)
    assert cipher.decrypt(legacy, 7, "access_token") == "tok-legacy"
    assert cipher.decrypt(legacy, 7, "refresh_token") == "tok-legacy"  # why `keys rotate` rewrites them
    with pytest.raises(DecryptionError):
        cipher.decrypt(legacy, 8, "access_token")
    assert cipher.encrypt("tok", 7, "access_token")[0] == FORMAT == 2


def test_other_key_is_an_error_not_a_fallback():
    stored = KeyRing.single(KEY).encrypt("tok", 1, "access_token")
    with pytest.raises(DecryptionError, match="unknown key id"):
        KeyRing.single(bytes(32)).decrypt(stored, 1, "access_token")


def test_tampered_bytes_rejected():
    cipher = KeyRing.single(KEY)
    stored = bytearray(cipher.encrypt("tok", 1, "access_token"))
    stored[-1] ^= 1
    with pytest.raises(DecryptionError):
        cipher.decrypt(bytes(stored), 1, "access_token")


def test_parse_key_accepts_generated_and_urlsafe():
    assert len(parse_key(generate_key())) == 32
    urlsafe = base64.urlsafe_b64encode(b"\xfb" * 32).decode().rstrip("=")
    assert parse_key(urlsafe) == b"\xfb" * 32


@pytest.mark.parametrize(("bad", "message"), [
    ("", "must decode to 32 bytes, got 0"),
    ("not base64!!", "must be base64 of 32 random bytes"),
    (base64.b64encode(b"short").decode(), "must decode to 32 bytes, got 5"),
])
def test_parse_key_rejects(bad, message):
    with pytest.raises(ValueError, match=message):
        parse_key(bad)


def test_repr_holds_no_key():
    cipher = KeyRing.single(KEY)
    assert KEY.hex() not in repr(cipher) and base64.b64encode(KEY).decode() not in repr(cipher)


def test_ring_decrypts_old_keys_encrypts_with_current():
    old, new = bytes(range(32)), bytes(range(1, 33))
    stored_old = KeyRing({"k1": old}, "k1").encrypt("tok", 5, "access_token")
    ring = KeyRing({"k2": new, "k1": old}, "k2")
    assert ring.decrypt(stored_old, 5, "access_token") == "tok"
    fresh = ring.encrypt("tok", 5, "access_token")
    assert key_id_of(fresh) == "k2" and key_id_of(stored_old) == "k1"
    with pytest.raises(DecryptionError, match="unknown key id 'k2'"):
        KeyRing({"k1": old}, "k1").decrypt(fresh, 5, "access_token")


def test_parse_key_ring_first_is_current():
    text = f"k2:{generate_key()}, k1:{generate_key()}"
    keys, current = parse_key_ring(text)
    assert current == "k2" and set(keys) == {"k1", "k2"}


_KEY = base64.b64encode(bytes(range(32))).decode()  # fixed, so every xdist worker collects the same ids


@pytest.mark.parametrize(("bad", "message"), [
    ("", "must list at least one id:key"),
    ("k1", "entries are id:base64key"),
    (f"k1:{_KEY},k1:{_KEY}", "key id 'k1' appears twice"),
    ("bad id:AAAA", "entries are id:base64key"),
    ("k1:short", "key 'k1': must be base64"),
], ids=["empty", "no-key", "duplicate-id", "bad-id", "short-key"])
def test_parse_key_ring_rejects(bad, message):
    with pytest.raises(ValueError, match=message):
        parse_key_ring(bad)


def test_ring_repr_names_ids_only():
    key = bytes(range(32))
    ring = KeyRing({"k1": key}, "k1")
    assert "k1" in repr(ring) and key.hex() not in repr(ring) and base64.b64encode(key).decode() not in repr(ring)
