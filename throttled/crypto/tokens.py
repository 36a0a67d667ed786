"""Encryption of OAuth tokens at rest: AES-256-GCM from ``cryptography``.

Each encryption draws a random 96-bit nonce (NIST SP 800-38D's recommended size) and binds
the ciphertext to its portal by passing the portal id as associated data, so a token row
copied onto another portal fails to decrypt. The stored form carries the id of the key that
made it, so a key ring can be introduced without re-encrypting in place::

    b"\\x01" | len(key_id) (1 byte) | key_id (ascii) | nonce (12 bytes) | ciphertext+tag
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_FORMAT = 1
_NONCE_BYTES = 12


class DecryptionError(Exception):
    """A stored token could not be decrypted: wrong key, wrong portal, or corrupted bytes."""


class TokenCipher:
    """Encrypts and decrypts tokens with one AES-256 key.

    Args:
        key: 32 raw bytes.
    Raises:
        ValueError: the key is not 32 bytes.

    The key never appears in ``repr``; ``key_id`` is a short fingerprint (first 8 hex digits
    of SHA-256 of the key), safe to log.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("encryption key must be 32 bytes")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:8]

    def encrypt(self, plaintext: str, portal_id: int) -> bytes:
        """Encrypt ``plaintext`` for ``portal_id``; returns the stored form (bytes)."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), _aad(portal_id))
        kid = self.key_id.encode()
        return bytes([_FORMAT, len(kid)]) + kid + nonce + sealed

    def decrypt(self, stored: bytes, portal_id: int) -> str:
        """Decrypt a value made by :meth:`encrypt` for the same ``portal_id``.

        Raises:
            DecryptionError: unknown format or key id, wrong portal, or tampered bytes.
        """
        stored = bytes(stored)
        if len(stored) < 2 or stored[0] != _FORMAT:
            raise DecryptionError("unknown token format")
        kid_len = stored[1]
        kid = stored[2 : 2 + kid_len].decode("ascii", "replace")
        if kid != self.key_id:
            raise DecryptionError(f"token was encrypted with unknown key id {kid!r}")
        rest = stored[2 + kid_len :]
        nonce, sealed = rest[:_NONCE_BYTES], rest[_NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, sealed, _aad(portal_id)).decode()
        except InvalidTag:
            raise DecryptionError("token does not decrypt for this portal") from None

    def __repr__(self) -> str:
        return f"TokenCipher(key_id={self.key_id!r})"


def parse_key(encoded: str) -> bytes:
    """Decode ``THROTTLED_ENCRYPTION_KEY``: standard or url-safe base64 of exactly 32 bytes.

    Raises:
        ValueError: not base64, or not 32 bytes once decoded (message names no key material).
    """
    text = encoded.strip()
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if ("-" in text or "_" in text) else None, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be base64 of 32 random bytes (see `throttled keys generate`)") from None
    if len(raw) != 32:
        raise ValueError(f"must decode to 32 bytes, got {len(raw)}")
    return raw


def generate_key() -> str:
    """A new random key, base64 of 32 bytes from ``os.urandom``, for ``THROTTLED_ENCRYPTION_KEY``."""
    return base64.b64encode(os.urandom(32)).decode()


def _aad(portal_id: int) -> bytes:
    return f"portal:{portal_id}".encode()
