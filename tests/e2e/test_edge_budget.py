"""The public listener's body budget and Host check over real sockets (a new-user trial:
256 request heads announcing chunked bodies and sending none held the whole budget, so every
signed webhook got 503; a ``Host: a..b`` got a 500 with an empty body and no log line)."""

from __future__ import annotations

import trio
from structlog.testing import capture_logs

from tests.support.raw_http import raw_exchange
from throttled.testing import ACTION_PATH, Step, local_stack

STEP = Step(workflow_id=94, action_id=4, limit=100, period=1, unit="seconds")
BUDGET = 256 * 1024  # four bodies of the 64 KiB limit


async def _hold(url: str, data: bytes, opened: list[int], gone: trio.Event) -> None:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    async with await trio.open_tcp_stream(host, int(port)) as stream:
        await stream.send_all(data)
        opened.append(1)
        with trio.move_on_after(30):
            await gone.wait()


async def test_request_heads_without_bodies_do_not_hold_the_budget(empty_database):
    overrides = {"body_budget_bytes": BUDGET, "read_timeout_s": 20.0}
    async with local_stack(empty_database, overrides=overrides) as stack:
        url, portal = stack.daemons[0].url, stack.portal_id
        head = (f"POST {ACTION_PATH} HTTP/1.1\r\nHost: {url[7:]}\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n").encode()
        gone, opened = trio.Event(), []
        async with trio.open_nursery() as nursery:
            for _ in range(32):  # 32 × 64 KiB announced = 8× the budget; 32 × 2 KiB held
                nursery.start_soon(_hold, url, head, opened, gone)
            with trio.fail_after(10):
                while len(opened) < 32:
                    await trio.sleep(0.05)
            await trio.sleep(0.5)
            answers = [await stack.hubspot.enroll(url, f"ap-{portal}-94-{i}-0", portal, STEP) for i in range(5)]
            gone.set()
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]


async def test_bodies_past_the_budget_are_refused_with_retry_after_as_their_bytes_arrive(empty_database):
    overrides = {"body_budget_bytes": BUDGET, "read_timeout_s": 3.0}  # the admitted ones then end in 408
    async with local_stack(empty_database, overrides=overrides) as stack:
        url = stack.daemons[0].url
        head = (f"POST {ACTION_PATH} HTTP/1.1\r\nHost: {url[7:]}\r\nContent-Type: application/json\r\n"
                "Content-Length: 65000\r\n\r\n").encode()
        answers: list[bytes] = []

        async def send_most_of_a_body() -> None:
            received, _ = await raw_exchange(url, [head + b"x" * 64_000, 10.0])
            answers.append(received)

        with capture_logs() as logs:
            async with trio.open_nursery() as nursery:
                for _ in range(8):  # 8 × 64,000 bytes = twice the budget
                    nursery.start_soon(send_most_of_a_body)
    refused = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
    assert refused, [a[:40] for a in answers]
    assert all(b"retry-after: 1" in a.lower() for a in refused)
    kinds = [e["kind"] for e in logs if e["event"] == "http.refused"]
    assert kinds.count("body_budget") == 1, kinds  # once a minute, with the count of the others
    assert kinds.count("body_timeout") == 1, kinds


async def test_a_host_werkzeug_cannot_encode_is_a_logged_400_not_a_silent_500(empty_database):
    async with local_stack(empty_database) as stack:
        with capture_logs() as logs:
            for host in ("a..b", "localhost..", "x" * 64 + ".example"):
                response = await stack.hubspot.http.get(stack.daemons[0].url + "/healthz", headers={"Host": host})
                assert response.status_code == 400, (host, response.status_code)
                assert response.json()["error"] == "invalid_host"
            admin = await stack.hubspot.http.get(stack.daemons[0].admin_url + "/admin", headers={"Host": "a..b"})
    assert admin.status_code == 400
    assert [e["kind"] for e in logs if e["event"] == "http.refused"] == ["invalid_host"] * 2  # once per listener
