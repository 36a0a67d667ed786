"""Token encryption at rest (AES-256-GCM with a key ring)."""

from throttled.crypto.tokens import (
    FORMAT,
    DecryptionError,
    KeyRing,
    TokenField,
    fingerprint,
    generate_key,
    key_id_of,
    parse_key,
    parse_key_ring,
)

__all__ = [
    "FORMAT",
    "DecryptionError",
    "KeyRing",
    "TokenField",
    "fingerprint",
    "generate_key",
    "key_id_of",
    "parse_key",
    "parse_key_ring",
]
