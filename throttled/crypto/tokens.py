"""Encryption of OAuth tokens at rest: AES-256-GCM from ``cryptography``, with a key ring.

Each encryption draws a random 96-bit nonce (NIST SP 800-38D's recommended size) and binds
the ciphertext to its portal *and* its field by passing both as associated data, so a token
copied onto another portal, or a portal's access token swapped with its refresh token,
fails to decrypt. The stored form names the key that made it, so keys can be rotated
(``throttled keys rotate``) while daemons keep serving::

    b"\\x02" | len(key_id) (1 byte) | key_id (ascii) | nonce (12 bytes) | ciphertext+tag

Format 1 (before the field was bound: the portal alone is associated data) still decrypts;
``keys rotate`` rewrites such rows in format 2 even under the current key, and every token
refresh writes format 2. Decrypting with a key id the ring does not hold is an error, never
a silent fallback.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: The stored form written today (portal and field bound); ``_PORTAL_ONLY`` is still read.
FORMAT = 2
_PORTAL_ONLY = 1
_NONCE_BYTES = 12
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def check_key_id(key_id: str) -> str:
    """``key_id`` if it may name a key of the ring (1-32 letters, digits, ``_ . -``).

    Raises:
        ValueError: it may not.
    """
    if not _KEY_ID.match(key_id):
        raise ValueError(f"key id {key_id[:40]!r} must be 1-32 letters, digits, '_', '.' or '-'")
    return key_id


#: Which token a ciphertext holds: part of the associated data.
TokenField = Literal["access_token", "refresh_token"]


class DecryptionError(Exception):
    """A stored token could not be decrypted: unknown key id, wrong portal or field, or
    damaged bytes."""


class KeyRing:
    """Encrypts with the current key; decrypts with whichever key a ciphertext names.

    Args:
        keys: key id → 32 raw bytes.
        current: the id new ciphertexts use (must be in ``keys``).
    Raises:
        ValueError: a key is not 32 bytes, an id is malformed, or ``current`` is unknown.

    Keys never appear in ``repr``; key ids are safe to log.
    """

    def __init__(self, keys: dict[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError("the current key id is not in the ring")
        for key_id, key in keys.items():
            check_key_id(key_id)
            if len(key) != 32:
                raise ValueError(f"key {key_id!r} must be 32 bytes")
        self._aeads = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.key_id = current

    @classmethod
    def single(cls, key: bytes) -> KeyRing:
        """A ring of one key whose id is its fingerprint (first 8 hex digits of SHA-256) —
        the legacy ``THROTTLED_ENCRYPTION_KEY``."""
        key_id = fingerprint(key)
        return cls({key_id: key}, key_id)

    @property
    def key_ids(self) -> list[str]:
        """Every id in the ring, current first."""
        return [self.key_id, *sorted(k for k in self._aeads if k != self.key_id)]

    def encrypt(self, plaintext: str, portal_id: int, field: TokenField) -> bytes:
        """Encrypt ``plaintext`` as ``portal_id``'s ``field`` with the current key; returns
        the stored form (format 2)."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aeads[self.key_id].encrypt(nonce, plaintext.encode(), _aad(FORMAT, portal_id, field))
        kid = self.key_id.encode()
        return bytes([FORMAT, len(kid)]) + kid + nonce + sealed

    def decrypt(self, stored: bytes, portal_id: int, field: TokenField) -> str:
        """Decrypt a value made by :meth:`encrypt` (with any key of the ring) as
        ``portal_id``'s ``field`` (format 1 values bind the portal only).

        Raises:
            DecryptionError: unknown format or key id, wrong portal or field, or tampered bytes.
        """
        fmt, key_id, nonce, sealed = _split(bytes(stored))
        aead = self._aeads.get(key_id)
        if aead is None:
            raise DecryptionError(f"token was encrypted with unknown key id {key_id!r}")
        try:
            return aead.decrypt(nonce, sealed, _aad(fmt, portal_id, field)).decode()
        except InvalidTag:
            raise DecryptionError(f"token does not decrypt as this portal's {field}") from None

    def __repr__(self) -> str:
        return f"KeyRing(current={self.key_id!r}, ids={self.key_ids!r})"


def key_id_of(stored: bytes) -> str:
    """The key id a stored token names (no decryption)."""
    return _split(bytes(stored))[1]


def fingerprint(key: bytes) -> str:
    """First 8 hex digits of SHA-256 of ``key``: its id when it came without one."""
    return hashlib.sha256(key).hexdigest()[:8]


def parse_key(encoded: str) -> bytes:
    """Decode one key: standard or url-safe base64 of exactly 32 bytes.

    Raises:
        ValueError: not base64, or not 32 bytes once decoded (message names no key material).
    """
    text = encoded.strip()
    padded = text + "=" * (-len(text) % 4)
    for altchars in (None, b"-_"):
        try:
            raw = base64.b64decode(padded, altchars=altchars, validate=True)
            break
        except (binascii.Error, ValueError):
            continue
    else:
        raise ValueError("must be base64 of 32 random bytes (see `throttled keys generate`)")
    if len(raw) != 32:
        raise ValueError(f"must decode to 32 bytes, got {len(raw)}")
    return raw


def parse_key_ring(text: str) -> tuple[dict[str, bytes], str]:
    """Decode ``THROTTLED_ENCRYPTION_KEYS``: ``"id1:BASE64,id2:BASE64"``, the first current.

    Raises:
        ValueError: malformed entry, duplicate id, or a bad key (naming the id, not the key).
    """
    keys: dict[str, bytes] = {}
    entries = [e.strip() for e in text.split(",") if e.strip()]
    if not entries:
        raise ValueError("must list at least one id:key")
    for entry in entries:
        key_id, sep, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not sep or not _KEY_ID.match(key_id):
            raise ValueError("entries are id:base64key, ids of 1-32 letters, digits, '_', '.' or '-'")
        if key_id in keys:
            raise ValueError(f"key id {key_id!r} appears twice")
        try:
            keys[key_id] = parse_key(encoded)
        except ValueError as exc:
            raise ValueError(f"key {key_id!r}: {exc}") from None
    return keys, entries[0].partition(":")[0].strip()


def generate_key() -> str:
    """A new random key, base64 of 32 bytes from ``os.urandom``."""
    return base64.b64encode(os.urandom(32)).decode()


def _split(stored: bytes) -> tuple[int, str, bytes, bytes]:
    if len(stored) < 2 or stored[0] not in (FORMAT, _PORTAL_ONLY):
        raise DecryptionError("unknown token format")
    kid_len = stored[1]
    key_id = stored[2 : 2 + kid_len].decode("ascii", "replace")
    rest = stored[2 + kid_len :]
    return stored[0], key_id, rest[:_NONCE_BYTES], rest[_NONCE_BYTES:]


def _aad(fmt: int, portal_id: int, field: TokenField) -> bytes:
    if fmt == _PORTAL_ONLY:
        return f"portal:{portal_id}".encode()
    return f"portal:{portal_id}:{field}".encode()
