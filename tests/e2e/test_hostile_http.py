"""Bad requests that once hurt good ones: a 413 on a kept-alive connection, and a body
the database refuses inside a shared group commit."""

from __future__ import annotations

import json

import httpx
import trio

from throttled.demo.stack import ACTION_PATH, Step, enrollment_body, local_stack

STEP = Step(workflow_id=41, action_id=1, limit=1, period=1, unit="days")  # nothing released


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
