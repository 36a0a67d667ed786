"""HubSpot request signatures (v1, v2, v3) — pure functions, no I/O.

Recipe from ``../shared/docs/hubspot-protocol.md`` §4 ([VAL], [V3CL], HubSpot's Python SDK
``hubspot/utils/signature.py``): the key is always the app's client secret; the body is the
raw bytes received; the URI is the full public URL HubSpot called.

======== ==================================== ================ =====================
version  string hashed                        algorithm        encoding
======== ==================================== ================ =====================
v1       secret + body                        SHA-256          lowercase hex
v2       secret + METHOD + URI + body         SHA-256          lowercase hex
v3       METHOD + URI + body + timestamp      HMAC-SHA256      base64 (padded)
======== ==================================== ================ =====================
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

#: v3 timestamps older than this are rejected (5 minutes, [V3CL]).
V3_MAX_AGE_MS = 300_000
#: v3 timestamps this far in the future are tolerated (clock skew); more is rejected.
V3_MAX_SKEW_MS = 30_000

# Escapes HubSpot decodes in the URI before hashing v3 ([VAL]; exact list UNCERTAIN, so
# anything else, such as %20 or %2B, stays as received).
_V3_URI_DECODES = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}


class SignatureError(Exception):
    """The request's signature is missing, wrong or stale; the web layer answers 401.

    ``reason`` is a short machine-readable word (``missing``, ``mismatch``, ``stale``,
    ``future``, ``malformed``); the message never contains the secret or the signature.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What a signature is computed over.

    ``method`` upper-case HTTP method; ``uri`` the full public URL HubSpot called (scheme,
    host, path, query as received); ``body`` the raw request bytes.
    """

    method: str
    uri: str
    body: bytes


def sign_v1(secret: str, request: SignedRequest) -> str:
    """v1 signature: lowercase hex SHA-256 of ``secret + body``."""
    return hashlib.sha256(secret.encode() + request.body).hexdigest()


def sign_v2(secret: str, request: SignedRequest) -> str:
    """v2 signature: lowercase hex SHA-256 of ``secret + METHOD + URI + body``."""
    prefix = (secret + request.method.upper() + request.uri).encode()
    return hashlib.sha256(prefix + request.body).hexdigest()


def sign_v3(secret: str, request: SignedRequest, timestamp_ms: int) -> str:
    """v3 signature: base64 HMAC-SHA256 of ``METHOD + URI + body + timestamp`` keyed by ``secret``.

    ``timestamp_ms`` is the ``X-HubSpot-Request-Timestamp`` value (Unix epoch milliseconds).
    """
    message = (
        (request.method.upper() + _decode_v3_uri(request.uri)).encode()
        + request.body
        + str(timestamp_ms).encode()
    )
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


#: Versions accepted unless configured otherwise. v1 covers neither method nor URI, so it
#: is opt-in (old app settings); v2 carries no timestamp, so a captured v2 request can be
#: replayed — harmless here, because a replay repeats a callbackId, which is stored once.
DEFAULT_VERSIONS = ("v3", "v2")


class Headers(Protocol):
    """Request headers as name/value pairs: a ``Mapping[str, str]`` or Werkzeug's ``Headers``."""

    def items(self) -> Iterable[tuple[str, str]]: ...


def verify(
    secret: str, request: SignedRequest, headers: Headers, now_ms: int,
    accepted: tuple[str, ...] = DEFAULT_VERSIONS,
) -> str:
    """Verify a HubSpot request; return the version that matched (``"v1"|"v2"|"v3"``).

    v3 is checked when ``X-HubSpot-Signature-v3`` is present (with the 5-minute window),
    else ``X-HubSpot-Signature`` as v1 or v2 per ``X-HubSpot-Signature-Version`` (default v2,
    the version custom-action requests carry per [CWA]) — each only if in ``accepted``.

    Args:
        headers: request headers; looked up case-insensitively.
        now_ms: current Unix time in milliseconds (from the injected clock).
        accepted: signature versions allowed (``THROTTLED_SIGNATURE_VERSIONS``).
    Raises:
        SignatureError: missing, malformed, stale, future, mismatching or not-accepted signature.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    v3 = lower.get("x-hubspot-signature-v3")
    if v3 is not None and "v3" in accepted:
        timestamp_ms = _parse_timestamp(lower.get("x-hubspot-request-timestamp"), now_ms)
        _compare(sign_v3(secret, request, timestamp_ms), v3)
        return "v3"
    signature = lower.get("x-hubspot-signature")
    if signature is None:
        raise SignatureError("missing", "no accepted X-HubSpot-Signature header")
    version = lower.get("x-hubspot-signature-version", "v2").strip().lower()
    if version not in ("v1", "v2"):
        raise SignatureError("malformed", "unknown X-HubSpot-Signature-Version")
    if version not in accepted:
        raise SignatureError("version", f"signature version {version} is not accepted")
    expected = sign_v1(secret, request) if version == "v1" else sign_v2(secret, request)
    _compare(expected, signature.lower())
    return version


def _parse_timestamp(raw: str | None, now_ms: int) -> int:
    if raw is None:
        raise SignatureError("missing", "no X-HubSpot-Request-Timestamp header")
    try:
        timestamp_ms = int(raw.strip())
    except ValueError:
        raise SignatureError("malformed", "X-HubSpot-Request-Timestamp is not an integer") from None
    if now_ms - timestamp_ms > V3_MAX_AGE_MS:
        raise SignatureError("stale", "request timestamp older than 5 minutes")
    if timestamp_ms - now_ms > V3_MAX_SKEW_MS:
        raise SignatureError("future", "request timestamp too far in the future")
    return timestamp_ms


def _compare(expected: str, given: str) -> None:
    if not hmac.compare_digest(expected.encode(), given.strip().encode()):
        raise SignatureError("mismatch", "signature does not match")


def _decode_v3_uri(uri: str) -> str:
    out, i = [], 0
    while i < len(uri):
        escape = uri[i : i + 3].upper()
        if uri[i] == "%" and escape in _V3_URI_DECODES:
            out.append(_V3_URI_DECODES[escape])
            i += 3
        else:
            out.append(uri[i])
            i += 1
    return "".join(out)


def signed_headers(secret: str, request: SignedRequest, timestamp_ms: int) -> dict[str, str]:
    """The headers HubSpot would send with ``request``: v3 with its timestamp, plus v2.

    Used by the demo, tests and benchmarks to act as HubSpot.
    """
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": sign_v3(secret, request, timestamp_ms),
        "X-HubSpot-Request-Timestamp": str(timestamp_ms),
        "X-HubSpot-Signature": sign_v2(secret, request),
        "X-HubSpot-Signature-Version": "v2",
    }
