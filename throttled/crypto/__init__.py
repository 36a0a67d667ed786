"""Token encryption at rest (AES-256-GCM with a key ring)."""

from throttled.crypto.tokens import (
    DecryptionError,
    KeyRing,
    fingerprint,
    generate_key,
    key_id_of,
    parse_key,
    parse_key_ring,
)

__all__ = ["DecryptionError", "KeyRing", "fingerprint", "generate_key", "key_id_of",
           "parse_key", "parse_key_ring"]
