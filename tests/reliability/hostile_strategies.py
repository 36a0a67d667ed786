"""Hypothesis strategies for the hostile-input scenario: descriptions of requests to every
route of the public listener, pure data (no secret, no clock, no socket).

A :class:`Hostile` says *what* to send — method, path, query, headers, a body (JSON
shapes, bytes, a size over the limit), how to sign it — and :func:`materialize` turns it
into bytes on the wire once the daemon's URL, the client secret, the admin token, the
time and a fresh ``hostile-<n>`` callback id are known. It also says which answers are
acceptable (:attr:`Sent.expect`), so the scenario asserts more than "no 5xx".
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import strategies as st

from throttled.hubspot.signatures import SignedRequest, sign_v1, sign_v2, sign_v3

ACTION_PATH = "/api/hubspot/action"
PREFIX = "hostile-"
CALLBACK = "\x00CALLBACK\x00"  # placeholder for the callback id, replaced when materialized
PORTAL = "\x00PORTAL\x00"  # placeholder for the installed portal id (an int once materialized)

SIGNINGS = ("none", "v3", "v2", "v3+v2", "v1", "v3-stale", "v3-future", "v3-forged", "v2-forged",
            "v3-bad-timestamp", "v3-other-body", "v3-other-uri", "v2-as-v1")
VALID_SIGNINGS = {"v3", "v2", "v3+v2"}
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "FOO")


@dataclass(frozen=True)
class Hostile:
    """One request to send (see :func:`materialize`)."""

    kind: str  # a label for the figures, e.g. "webhook/mutated"
    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, bytes], ...] = ()
    body: Any = b""  # bytes, or a JSON-able value (may hold CALLBACK / PORTAL)
    over_limit: int = 0  # > 0: send a JSON body this many bytes over THROTTLED_MAX_BODY
    chunked: bool = False  # stream the body (Transfer-Encoding: chunked)
    signing: str = "none"
    admin: str = "none"  # config API: "none", "valid", "wrong"
    replay: bool = False  # send the same bytes twice
    expect: frozenset[int] | None = None  # acceptable statuses (None: anything below 500)


@dataclass
class Sent:
    """A :class:`Hostile` made concrete: what goes on the wire, what may come back."""

    kind: str
    method: str
    target: str  # path and query, as sent
    headers: dict[str, bytes]
    body: bytes
    chunked: bool
    callback_id: str | None
    expect: frozenset[int] | None
    repeat: int = 1
    statuses: list[int] = field(default_factory=list)  # 0 = no answer
    answers: list[str] = field(default_factory=list)  # the start of each answer's body


def materialize(h: Hostile, *, base_url: str, secret: str, admin_token: str, portal_id: int,
                limit: int, callback_id: str) -> Sent:
    """Bytes, headers and expectations of ``h`` for this daemon, now."""
    target = h.path + ("?" + urlencode(h.query) if h.query else "")
    body = _body_bytes(h, callback_id, portal_id, limit)
    headers = dict(h.headers)
    now_ms = int(time.time() * 1000)
    headers.update(_signature(h.signing, secret, h.method, base_url + target, body, now_ms))
    if h.admin == "valid":
        headers["Authorization"] = f"Bearer {admin_token}".encode()
    elif h.admin == "wrong":
        headers["Authorization"] = f"Bearer {admin_token[:-1]}x".encode()
    expect = h.expect
    if h.over_limit and h.path == ACTION_PATH and h.method == "POST":
        expect = frozenset({413})  # the webhook reads the body before anything else
    elif h.over_limit and h.path.startswith("/api/config/") and h.method == "PUT" and h.admin == "valid":
        expect = frozenset({413, 404})  # 404: a path the route does not match
    return Sent(h.kind, h.method, target, headers, body, h.chunked, _stored_id(h, body), expect, 2 if h.replay else 1)


# -- strategies --------------------------------------------------------------------------

def valid_enrollment() -> st.SearchStrategy[dict]:
    """A body HubSpot could send: ``callbackId`` and ``origin.portalId`` are placeholders."""
    return st.fixed_dictionaries({
        "callbackId": st.just(CALLBACK),
        "origin": st.fixed_dictionaries({"portalId": st.just(PORTAL), "actionDefinitionId": st.integers(1, 10**9)}),
        "context": st.fixed_dictionaries({"source": st.just("WORKFLOWS"), "workflowId": st.integers(1, 10**9)},
                                         optional={"actionId": st.integers(0, 10**6)}),
        "object": st.fixed_dictionaries({"objectId": st.integers(1, 10**12), "objectType": st.sampled_from(["CONTACT", "DEAL"])}),
        "inputFields": st.fixed_dictionaries({
            "max_throughput": st.integers(1, 10**6).map(str) | st.integers(1, 10**6),
            "time_period": st.integers(1, 52).map(str),  # 52 weeks: within the 366-day bound
            "time_unit": st.sampled_from(["seconds", "minutes", "hours", "days", "weeks"]),
        }, optional={"mode": st.sampled_from(["burst", "smooth"]), "priority": st.integers(0, 9).map(str)}),
    })


def hostile_value() -> st.SearchStrategy[Any]:
    """Wrong types, nulls, unicode, edge numbers, nesting."""
    scalars = (st.none() | st.booleans() | st.integers() | st.integers(-(2**70), 2**70)
               | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
               | st.sampled_from(["", " ", "0", "-1", "1e400", "9" * 30, "١٢٣", "\u202e", "😀" * 5, "a\x00b",
                                  "null", "true", "<script>", "' OR 1=1 --", "x" * 300]))
    return st.recursive(scalars,
                        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                        max_leaves=8)


@st.composite
def mutated_enrollment(draw) -> dict:
    """A valid enrollment with one field replaced by a hostile value, or removed."""
    body = draw(valid_enrollment())
    paths = [("callbackId",), ("origin",), ("origin", "portalId"), ("origin", "actionDefinitionId"), ("context",),
             ("context", "workflowId"), ("object",), ("object", "objectId"), ("inputFields",),
             ("inputFields", "max_throughput"), ("inputFields", "time_period"), ("inputFields", "time_unit"),
             ("inputFields", "mode"), ("inputFields", "shared_queue"), ("inputFields", "release_days"),
             ("inputFields", "release_hours"), ("inputFields", "time_zone"), ("inputFields", "priority"),
             ("inputFields", "release_after")]
    path = draw(st.sampled_from(paths))
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()) and path[-1] in parent:
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(hostile_value())
    if path == ("callbackId",) and isinstance(parent.get("callbackId"), str):
        parent["callbackId"] = CALLBACK + parent["callbackId"]  # still ours: hostile-<n><suffix>
    return body


def raw_bodies() -> st.SearchStrategy[bytes]:
    """Bodies that are not (valid) JSON objects."""
    return st.one_of(
        st.binary(max_size=200),
        st.text(max_size=100).map(str.encode),
        st.sampled_from([b"", b"{", b"[]", b"null", b"0", b'"x"', b"\xef\xbb\xbf{}", b"\xff\xfe{", b'{"a": NaN}',
                         b'{"callbackId": "x", "n": Infinity}', b'{"a": "\\ud800"}', b'{"a": "\\u0000"}',
                         b"[" * 5000 + b"]" * 5000, b'{"a": ' + b"1" * 5000 + b"}",
                         b'{"callbackId": "hostile-dup", "callbackId": 1}']),
        valid_enrollment().flatmap(lambda body: st.integers(0, 200).map(lambda cut: json.dumps(body).encode()[:cut])),
    )


def json_values() -> st.SearchStrategy[Any]:
    return hostile_value() | valid_enrollment() | mutated_enrollment()


@st.composite
def webhook(draw) -> Hostile:
    """``POST /api/hubspot/action`` in all its forms."""
    shape = draw(st.sampled_from(["valid", "valid", "mutated", "mutated", "mutated", "raw", "json", "over-limit"]))
    signing = draw(st.sampled_from(SIGNINGS + ("v3", "v3+v2") * 3))
    over_limit = draw(st.sampled_from([1, 100, 10_000, 1_000_000])) if shape == "over-limit" else 0
    body = {"valid": valid_enrollment(), "mutated": mutated_enrollment(), "raw": raw_bodies(),
            "json": hostile_value(), "over-limit": valid_enrollment()}[shape]
    valid_signature = signing in VALID_SIGNINGS
    if shape == "valid":
        expect = {200} if valid_signature else {401}
    elif shape == "mutated":
        expect = {200, 400} if valid_signature else {401}  # some mutations are harmless
    else:
        expect = {400} if valid_signature else {401}
    headers = draw(st.sampled_from([(), (("Content-Type", b"application/json"),),
                                    (("Content-Type", b"text/plain; charset=\xff"),)]))
    return Hostile(f"webhook/{shape}/{'signed' if valid_signature else signing}", "POST", ACTION_PATH,
                   query=draw(st.sampled_from([(), (("a", "b"),)])) if signing != "v3-other-uri" else (),
                   headers=headers, body=draw(body), over_limit=over_limit, chunked=draw(st.booleans()),
                   signing=signing, replay=draw(st.integers(0, 9)) == 0, expect=frozenset(expect))


def queries() -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    junk = st.text(max_size=30)
    named = st.sampled_from(["code", "state", "error", "error_description", "portal_id", "x"])
    return st.lists(st.tuples(named | junk, junk | st.sampled_from(["", "a" * 2000, "%00", "1' --"])), max_size=4).map(tuple)


@st.composite
def oauth(draw) -> Hostile:
    path = draw(st.sampled_from(["/api/oauth/install", "/api/oauth/callback"]))
    method = draw(st.sampled_from(["GET", "GET", "GET", "POST", "HEAD", "DELETE"]))
    query = draw(queries())
    if method not in ("GET", "HEAD"):
        expect = {405}
    elif path == "/api/oauth/install":
        expect = {302}
    else:
        expect = {400, 429}  # denied, no or bad state, no code; 429 past THROTTLED_OAUTH_CALLBACKS_PER_MINUTE
    return Hostile(f"oauth/{path.rsplit('/', 1)[1]}", method, path, query=query, expect=frozenset(expect))


@st.composite
def health(draw) -> Hostile:
    path = draw(st.sampled_from(["/healthz", "/readyz"]))
    method = draw(st.sampled_from(METHODS))
    expect = {200} if method in ("GET", "HEAD") else {405} if method != "OPTIONS" else {200}
    body = draw(st.sampled_from([b"", b"x" * 100]))
    return Hostile(f"health/{method}", method, path, body=body, query=draw(queries()), expect=frozenset(expect))


@st.composite
def config(draw) -> Hostile:
    portal = draw(st.sampled_from(["1", "62515", "0", "-1", "99999999999999999999999", "abc", "%00", "1.5", "٣"])
                  | st.integers(0, 2**64).map(str))
    action = draw(st.sampled_from(["1", "0", "9" * 25, "x"]) | st.integers(0, 2**64).map(str))
    method = draw(st.sampled_from(["GET", "PUT", "DELETE", "PUT", "POST", "PATCH"]))
    admin = draw(st.sampled_from(["none", "valid", "valid", "wrong"]))
    override = st.fixed_dictionaries({}, optional={"max_throughput": hostile_value() | st.integers(1, 100),
                                                   "time_period": hostile_value() | st.integers(1, 100),
                                                   "time_unit": hostile_value() | st.just("hours"),
                                                   "mode": hostile_value() | st.just("smooth")})
    body = draw(override | raw_bodies() | hostile_value()) if method == "PUT" else b""
    over_limit = draw(st.sampled_from([0, 0, 0, 1, 50_000])) if method == "PUT" else 0
    # Werkzeug's int converter is r"\d+" then int(): any Unicode decimal digits ("٣" is 3) match
    matched = all(re.fullmatch(r"\d+", part) for part in (portal, action))
    if method not in ("GET", "PUT", "DELETE"):
        expect = {405, 404}
    elif admin != "valid":
        expect = {401, 404}
    elif not matched or not all(1 <= int(part) < 2**63 for part in (portal, action)):
        expect = {404}  # not a number, or no such id: ids are positive bigints
    else:
        expect = {"GET": {200, 404, 400}, "PUT": {200, 400}, "DELETE": {204, 404, 400}}[method]
    return Hostile(f"config/{method}/{admin}", method, f"/api/config/{quote(portal, safe='%')}/{quote(action, safe='')}",
                   body=body, over_limit=over_limit, admin=admin, expect=frozenset(expect))


@st.composite
def unknown(draw) -> Hostile:
    segments = draw(st.lists(st.text(min_size=1, max_size=12), min_size=0, max_size=4))
    path = "/unknown/" + "/".join(quote(s, safe="") for s in segments)
    method = draw(st.sampled_from(METHODS))
    body = draw(st.sampled_from([b"", b"{}"]))
    return Hostile("unknown-path", method, path, body=body, query=draw(queries()), expect=frozenset({404, 405}))


def hostile_requests() -> st.SearchStrategy[Hostile]:
    """Any request to the public listener, webhooks most often."""
    return st.one_of(webhook(), webhook(), webhook(), webhook(), oauth(), health(), config(), config(), unknown())


@dataclass(frozen=True)
class RawHostile:
    """Bytes that an HTTP client library would refuse to send, over a raw socket.

    ``hang_up``: close right after sending (a truncated request: no answer is expected);
    else wait for the answer (or the server's close).
    """

    kind: str
    data: bytes
    hang_up: bool = False
    expect: frozenset[int] | None = None  # acceptable statuses (None: an answer below 500)


@st.composite
def raw_http(draw) -> RawHostile:
    """Truncated bodies, malformed request lines and headers, smuggling-style framing."""
    body = b'{"callbackId": "hostile-raw", "origin": {"portalId": 1}, "inputFields": {}}'
    post = b"POST " + ACTION_PATH.encode() + b" HTTP/1.1\r\nHost: throttled\r\n"
    kind = draw(st.sampled_from(["truncated", "truncated-chunked", "garbage", "request-line", "header",
                                 "huge-header", "framing", "transfer-coding", "http/2-preface", "http/1.0", "pipelined"]))
    if kind == "truncated":
        cut = draw(st.integers(0, len(body) - 1))
        return RawHostile(kind, post + b"Content-Length: %d\r\n\r\n" % len(body) + body[:cut], hang_up=True)
    if kind == "truncated-chunked":
        cut = draw(st.integers(0, 63))
        return RawHostile(kind, post + b"Transfer-Encoding: chunked\r\n\r\n40\r\n" + body[:cut], hang_up=True)
    if kind == "garbage":
        return RawHostile(kind, draw(st.binary(min_size=1, max_size=300)) + b"\r\n\r\n")
    if kind == "request-line":
        line = draw(st.sampled_from([b"GET", b"GET / HTTP/9.9", b"GET /\xff\xfe HTTP/1.1", b"G\x00T / HTTP/1.1",
                                     b" / HTTP/1.1", b"GET  /healthz  HTTP/1.1", b"GET http://evil.example/healthz HTTP/1.1",
                                     b"GET * HTTP/1.1", b"GET /" + b"a" * 20000 + b" HTTP/1.1"]))
        return RawHostile(kind, line + b"\r\nHost: throttled\r\n\r\n")
    if kind == "header":
        header = draw(st.sampled_from([b"NoColon", b"Bad Name: x", b"X-A: a\x00b", b"X-A: a\r\n folded",
                                       b": empty-name", b"X-A:\xff\xfe", b"Host: a\r\nHost: b"]))
        return RawHostile(kind, b"GET /healthz HTTP/1.1\r\nHost: throttled\r\n" + header + b"\r\n\r\n")
    if kind == "huge-header":
        return RawHostile(kind, b"GET /healthz HTTP/1.1\r\nHost: throttled\r\nX-A: " + b"a" * 20000 + b"\r\n\r\n")
    if kind == "framing":
        framing = draw(st.sampled_from([
            b"Content-Length: 5\r\nContent-Length: 7\r\n", b"Content-Length: -1\r\n", b"Content-Length: abc\r\n",
            b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"Content-Length: 99999999999999999999999\r\n"]))
        return RawHostile(kind, post + framing + b"\r\n" + b"0\r\n\r\n")
    if kind == "transfer-coding":
        # RFC 9112 §6.1: a transfer coding the server does not implement SHOULD get 501 (h11 does so)
        coding = draw(st.sampled_from([b"gzip, chunked", b"identity", b"compress", b"chunked, chunked"]))
        return RawHostile(kind, post + b"Transfer-Encoding: " + coding + b"\r\n\r\n0\r\n\r\n", expect=frozenset({400, 501}))
    if kind == "http/2-preface":
        # HTTP/2 by prior knowledge, then junk or nothing: h2 frames back (no HTTP/1 status
        # line), and the connection is closed after the read timeout at the latest
        tail = draw(st.sampled_from([b"", b"SM\r\n\r\n", b"Host: throttled\r\n\r\n", b"SM\r\n\r\n\x00\x00\x00\x04"]))
        return RawHostile(kind, b"PRI * HTTP/2.0\r\n\r\n" + tail, expect=frozenset({0}))
    if kind == "http/1.0":
        return RawHostile(kind, b"GET /healthz HTTP/1.0\r\n\r\n")
    return RawHostile(kind, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" * draw(st.integers(2, 20)))


# -- materializing -----------------------------------------------------------------------

def _body_bytes(h: Hostile, callback_id: str, portal_id: int, limit: int) -> bytes:
    if isinstance(h.body, bytes):
        body = h.body
    else:
        text = json.dumps(h.body, ensure_ascii=False)
        text = text.replace(json.dumps(CALLBACK)[1:-1], callback_id).replace(f'"{json.dumps(PORTAL)[1:-1]}"', str(portal_id))
        body = text.encode("utf-8", "surrogatepass")
    if h.over_limit:
        pad = limit + h.over_limit - len(body)
        if isinstance(h.body, dict):  # still a valid enrollment, only too big
            body = body[:-1] + b', "pad": "' + b"p" * max(pad - 11, 1) + b'"}'
        else:
            body = body + b" " * max(pad, 1)
    return body


def _stored_id(h: Hostile, body: bytes) -> str | None:
    """The callback id the daemon would store from ``body`` if it accepted it (ours only)."""
    if isinstance(h.body, bytes):
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    value = data.get("callbackId") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value.startswith(PREFIX) else None


def _signature(signing: str, secret: str, method: str, uri: str, body: bytes, now_ms: int) -> dict[str, bytes]:
    signed = SignedRequest(method, uri, body)

    def v3(ts: int, request: SignedRequest = signed) -> dict[str, bytes]:
        return {"X-HubSpot-Signature-v3": sign_v3(secret, request, ts).encode(), "X-HubSpot-Request-Timestamp": str(ts).encode()}

    def v2(request: SignedRequest = signed) -> dict[str, bytes]:
        return {"X-HubSpot-Signature": sign_v2(secret, request).encode(), "X-HubSpot-Signature-Version": b"v2"}

    forged = base64.b64encode(b"\x01" * 32)
    return {
        "none": dict,
        "v3": lambda: v3(now_ms),
        "v2": lambda: v2(),
        "v3+v2": lambda: v3(now_ms) | v2(),
        "v1": lambda: {"X-HubSpot-Signature": sign_v1(secret, signed).encode(), "X-HubSpot-Signature-Version": b"v1"},
        "v3-stale": lambda: v3(now_ms - 6 * 60_000),
        "v3-future": lambda: v3(now_ms + 5 * 60_000),
        "v3-forged": lambda: {"X-HubSpot-Signature-v3": forged, "X-HubSpot-Request-Timestamp": str(now_ms).encode()},
        "v2-forged": lambda: {"X-HubSpot-Signature": b"0" * 64, "X-HubSpot-Signature-Version": b"v2"},
        "v3-bad-timestamp": lambda: {"X-HubSpot-Signature-v3": forged, "X-HubSpot-Request-Timestamp": b"9" * 5000},
        "v3-other-body": lambda: v3(now_ms, SignedRequest(method, uri, body + b" ")),
        "v3-other-uri": lambda: v3(now_ms, SignedRequest(method, uri + "?x=1", body)),
        "v2-as-v1": lambda: {"X-HubSpot-Signature": sign_v2(secret, signed).encode(), "X-HubSpot-Signature-Version": b"v1"},
    }[signing]()
