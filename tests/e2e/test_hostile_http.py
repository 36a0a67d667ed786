"""Bad requests that once hurt good ones: a 413 on a kept-alive connection, and a body
the database refuses inside a shared group commit."""

from __future__ import annotations

import json

import httpx
import trio

from tests.support.raw_http import raw_exchange
from throttled.testing import ACTION_PATH, Step, enrollment_body, local_stack

STEP = Step(workflow_id=41, action_id=1, limit=1, period=1, unit="hours")  # one released, the rest held for days


async def test_413_closes_the_connection_so_the_next_request_is_served(empty_database):
    async with local_stack(empty_database) as stack:
        daemon, hubspot = stack.daemons[0], stack.hubspot
        async with httpx.AsyncClient(timeout=10) as client:  # one keep-alive connection
            hubspot.http, original = client, hubspot.http
            try:
                huge = await client.post(daemon.url + ACTION_PATH, content=b"x" * 2_000_000,
                                         headers={"Content-Type": "application/json"})
                assert huge.status_code == 413
                with trio.fail_after(5):
                    ok = await hubspot.enroll(daemon.url, "ap-1-after-413", stack.portal_id, STEP)
            finally:
                hubspot.http = original
        assert ok.status_code == 200


async def test_a_body_the_database_refuses_fails_alone(empty_database):
    async with local_stack(empty_database) as stack:
        daemon, hubspot = stack.daemons[0], stack.hubspot
        good = [f"ap-{stack.portal_id}-good-{i}" for i in range(60)]
        answers: dict[str, int] = {}

        async def post(callback_id: str, body: bytes) -> None:
            answers[callback_id] = (await hubspot.post(daemon.url, body)).status_code

        async with trio.open_nursery() as nursery:
            for i, cid in enumerate(good):
                nursery.start_soon(post, cid, enrollment_body(cid, stack.portal_id, STEP))
                if i % 6 == 0:  # NaN parses in Python but PostgreSQL's jsonb refuses it
                    bad = json.loads(enrollment_body(f"bad-{i}", stack.portal_id, STEP))
                    bad["inputFields"]["note"] = float("nan")
                    nursery.start_soon(post, f"bad-{i}", json.dumps(bad).encode())
        stored = await daemon.db.transaction(
            lambda conn: conn.exec_driver_sql("SELECT count(*) FROM action_executions").scalar_one())
    assert {answers[cid] for cid in good} == {200}
    assert {code for cid, code in answers.items() if cid.startswith("bad-")} == {400}
    assert stored == len(good)


# -- bodies over the limit and slow clients, over raw sockets ------------------------------

LIMIT = 4096  # THROTTLED_MAX_BODY of these tests
READ_TIMEOUT_S = 1.0  # THROTTLED_READ_TIMEOUT of these tests
MARGIN_S = 1.5  # scheduling slack on a loaded CI machine


def head(method: str, path: str, *extra: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: throttled", *extra, "", ""]).encode()


async def test_413_comes_before_the_body_is_read_and_the_connection_closes(empty_database):
    async with local_stack(empty_database, overrides={"max_body_bytes": LIMIT}) as stack:
        url = stack.daemons[0].url
        with trio.fail_after(10):
            # Content-Length 10 MB announced, nothing sent: 413 at once, then the server hangs up.
            answer, closed_after = await raw_exchange(url, [head("POST", ACTION_PATH, "Content-Length: 10000000"), 5.0])
            assert answer.startswith(b"HTTP/1.1 413") and b'"limit_bytes":4096' in answer
            assert closed_after < 1.0
            # Chunked, a little over the limit, then stalled: the 413 does not wait for the rest.
            chunk = b"%x\r\n%s\r\n" % (1024, b"x" * 1024)
            answer, closed_after = await raw_exchange(
                url, [head("POST", ACTION_PATH, "Transfer-Encoding: chunked"), *[chunk] * (LIMIT // 1024 + 2), 5.0])
            assert answer.startswith(b"HTTP/1.1 413") and closed_after < 1.0
        # Under the limit is not refused for its size; over it, a signed webhook is a 413 too.
        small = await stack.hubspot.enroll(url, "ap-small", stack.portal_id, STEP)
        assert small.status_code == 200
        big = await stack.hubspot.post(url, b'{"callbackId": "' + b"x" * LIMIT + b'"}')
        assert big.status_code == 413 and big.headers["Connection"] == "close"


async def test_slow_clients_are_cut_while_others_are_served(empty_database):
    async with local_stack(empty_database, overrides={"read_timeout_s": READ_TIMEOUT_S}) as stack:
        url = stack.daemons[0].url
        request = head("GET", "/healthz", "X-Pad: " + "a" * 60)
        slow = {
            "silent": [30.0],
            "half a head, then silence": [request[:20], 30.0],
            # a byte every 0.2 s: each read is quick, the head as a whole is not
            "head trickled": [step for byte in request for step in (bytes([byte]), 0.2)],
            "body trickled": [head("POST", ACTION_PATH, "Content-Length: 200", "Content-Type: application/json"),
                              *[step for _ in range(200) for step in (b"{", 0.2)]],
            # HTTP/2 by prior knowledge, then no stream: the preface once stopped every timer
            "http/2 preface, then silence": [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 30.0],
            # a kept-alive connection after one answer: its waiting read once had no deadline
            "one request answered, then silence": [request, 30.0],
        }
        cut: dict[str, tuple[bytes, float]] = {}
        served: list[int] = []

        async def run_slow(name: str) -> None:
            cut[name] = await raw_exchange(url, slow[name])

        async def serve_others() -> None:
            await trio.sleep(0.3)
            for i in range(5):
                served.append((await stack.hubspot.enroll(url, f"ap-while-slow-{i}", stack.portal_id, STEP)).status_code)
                await trio.sleep(0.1)

        with trio.fail_after(READ_TIMEOUT_S + 10):
            async with trio.open_nursery() as nursery:
                for name in slow:
                    nursery.start_soon(run_slow, name)
                nursery.start_soon(serve_others)
    assert served == [200] * 5
    for name, (_, closed_after) in cut.items():
        assert READ_TIMEOUT_S - 0.2 <= closed_after < READ_TIMEOUT_S + MARGIN_S, (name, closed_after)
    assert cut["one request answered, then silence"][0].startswith(b"HTTP/1.1 200")
    assert cut["silent"][0] == cut["half a head, then silence"][0] == cut["head trickled"][0] == b""
    assert cut["body trickled"][0].startswith(b"HTTP/1.1 408")


async def test_an_answer_before_the_body_says_connection_close(empty_database):
    # Found by the hostile-input run and a new-user trial: the server closed these connections
    # without saying so, and a pooled client's next request met "server disconnected".
    async with local_stack(empty_database, overrides={"read_timeout_s": 1.0}) as stack:
        url = stack.daemons[0].url
        for method, path in [("POST", "/healthz"), ("POST", "/nope"), ("PUT", f"/api/config/{stack.portal_id}/1")]:
            answer, _ = await raw_exchange(url, [head(method, path, "Content-Length: 20"), 1.0])
            status_line, _, rest = answer.partition(b"\r\n")
            assert status_line.split(b" ")[1] in (b"405", b"404", b"401"), answer[:80]
            assert b"connection: close" in rest.lower(), (method, path, answer[:300])
        ok, _ = await raw_exchange(url, [head("GET", "/healthz"), 0.3])
        assert ok.startswith(b"HTTP/1.1 200") and b"connection: close" not in ok.lower()  # keep-alive kept


async def _h2_post_without_length(url: str, path: str, frames: int) -> None:
    """HTTP/2 by prior knowledge: POST ``path`` with no content-length, then keep sending 16 KiB
    DATA frames after the server answered (it answers 413 and drops the stream)."""
    import h2.config
    import h2.connection
    import h2.exceptions

    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    connection.initiate_connection()
    connection.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", host), (":path", path),
                                ("content-type", "application/json")])
    async with await trio.open_tcp_stream(host, int(port)) as stream:
        try:
            for _ in range(frames):
                if connection.local_flow_control_window(1) >= 16384:
                    connection.send_data(1, b"a" * 16384)
                await stream.send_all(connection.data_to_send())
                with trio.move_on_after(0.05):
                    connection.receive_data(await stream.receive_some(65536))
        except (trio.BrokenResourceError, trio.ClosedResourceError, h2.exceptions.ProtocolError,
                h2.exceptions.StreamClosedError):
            pass  # the server hung up on us: fine, as long as it is still serving others


async def test_one_bad_http2_connection_does_not_stop_the_server(empty_database):
    # A second new-user trial: DATA frames for a stream the server had just answered (413) and
    # dropped raised KeyError inside hypercorn's HTTP/2 code; connections shared one nursery, so
    # that one client stopped the whole daemon.
    async with local_stack(empty_database) as stack:
        daemon = stack.daemons[0]
        for url in (daemon.url, daemon.admin_url):
            with trio.fail_after(20):
                await _h2_post_without_length(url, ACTION_PATH, frames=20)
        await trio.sleep(0.2)
        health = await stack.hubspot.http.get(daemon.url + "/healthz")
        admin = await stack.hubspot.http.get(daemon.admin_url + "/metrics")
    assert health.status_code == 200 and admin.status_code == 200


async def test_config_api_refuses_bodies_that_are_not_json_text(empty_database):
    # Found by the hostile-input scenario: a body that is not UTF-8 (or nested past Python's
    # recursion limit) made the config API's JSON decoding raise: a 500 instead of a 400.
    token = "admin-" + "5" * 32
    async with local_stack(empty_database, overrides={"admin_token": token}) as stack:
        url = f"{stack.daemons[0].admin_url}/api/config/{stack.portal_id}/3"
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for body in (b"\xf5\x04z\xa1", b"\xff\xfe{}", b"[" * 30_000 + b"]" * 30_000):
            response = await stack.hubspot.http.put(url, content=body, headers=auth)
            assert response.status_code == 400, (body[:10], response.status_code, response.text)
            assert response.json()["error"] == "invalid_input"
        hourly = {"max_throughput": 5, "time_period": 1, "time_unit": "hours"}
        still = await stack.hubspot.http.put(url, json=hourly, headers=auth)
        assert still.status_code == 200
