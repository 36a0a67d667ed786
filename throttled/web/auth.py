"""Who may use the admin listener, decided once: the bearer check of the operator and config
APIs (``THROTTLED_ADMIN_TOKEN``), the optional token of the read-only pages
(``THROTTLED_PAGES_TOKEN``), and the ``Host`` allow-list (``THROTTLED_ADMIN_HOSTS``).

- Operator and config APIs: no token configured, the routes answer 404, as if they did not
  exist. Else every request needs ``Authorization: Bearer <token>``, the scheme matched
  case-insensitively (RFC 7235 §2.1) and the token in constant time; anything else is a 401
  with ``WWW-Authenticate``.
- Pages (``/admin``, ``/metrics``): open unless a pages token is set; then the pages token or
  the admin token, as a bearer token (Prometheus' ``authorization``) or as the password of
  HTTP Basic (any user name — so a browser asks for it, RFC 7617).
- ``Host``: a page on another site can make an operator's browser call the loopback listener
  through a name it controls that resolves to 127.0.0.1 (DNS rebinding); such a request
  carries that name in ``Host``. Requests whose host is not allowed get ``421``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from quart import abort, jsonify, request


def bearer_guard(token: str | None) -> Callable[[], Awaitable[Any]]:
    """A ``before_request`` handler enforcing the operator API's ``token`` (module docstring)."""

    async def authorize() -> Any:
        if not token:
            abort(404)
        if not bearer_matches(request.headers.get("Authorization", ""), token):
            return jsonify(error="unauthorized", message="a valid bearer token is required"), 401, {
                "WWW-Authenticate": "Bearer"}
        return None

    return authorize


def pages_guard(pages_token: str | None, admin_token: str | None) -> Callable[[], Awaitable[Any]]:
    """A ``before_request`` handler for the read-only pages: open when ``pages_token`` is
    ``None``; else the pages or the admin token, as Bearer or as a Basic password (401 with
    both challenges otherwise)."""
    tokens = [t for t in (pages_token, admin_token) if t]

    async def authorize() -> Any:
        if pages_token is None:
            return None
        header = request.headers.get("Authorization", "")
        if any(bearer_matches(header, t) or basic_password_matches(header, t) for t in tokens):
            return None
        return jsonify(error="unauthorized", message="THROTTLED_PAGES_TOKEN is required"), 401, {
            "WWW-Authenticate": 'Basic realm="throttled", charset="UTF-8"'}

    return authorize


def host_guard(allowed: Iterable[str] | None) -> Callable[[], Awaitable[Any]]:
    """A ``before_request`` handler answering ``421`` to a ``Host`` not in ``allowed``
    (``None``: any host)."""
    names = None if allowed is None else frozenset(normal_host(h) for h in allowed)

    async def check() -> Any:
        host = normal_host(request.headers.get("Host", ""))
        if names is None or host in names:
            return None
        return jsonify(error="misdirected_request",
                       message="this Host is not one the admin listener answers to (THROTTLED_ADMIN_HOSTS)"), 421

    return check


def bearer_matches(header: str, token: str) -> bool:
    """Whether an ``Authorization`` header value carries ``token`` as a bearer token."""
    scheme, _, given = header.strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def basic_password_matches(header: str, token: str) -> bool:
    """Whether an ``Authorization`` header value is HTTP Basic with ``token`` as the password."""
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(given.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    _user, sep, password = decoded.partition(":")
    return bool(sep) and hmac.compare_digest(password.encode(), token.encode())


def normal_host(host: str) -> str:
    """A ``Host`` value (or an allow-list entry) without port, brackets, trailing dot or case:
    ``"LocalHost.:8081"`` → ``"localhost"``, ``"[::1]:8081"`` → ``"::1"``; ``""`` for one
    that is malformed (``"[::1]evil.example"``, ``"localhost:abc"``), which no list allows."""
    host = host.strip().lower()
    if host.startswith("["):
        address, bracket, rest = host[1:].partition("]")
        well_formed = bracket and (rest == "" or (rest.startswith(":") and rest[1:].isdigit()))
        return address if well_formed else ""
    if host.count(":") == 1:
        host, _, port = host.partition(":")
        if not port.isdigit():
            return ""
    return host.rstrip(".")
