"""Token encryption at rest (AES-256-GCM)."""

from throttled.crypto.tokens import DecryptionError, TokenCipher, generate_key, parse_key

__all__ = ["DecryptionError", "TokenCipher", "generate_key", "parse_key"]
