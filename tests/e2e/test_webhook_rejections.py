"""The action endpoint of a running daemon, over real HTTP: what it accepts, what it refuses.

Design invariant 6: bad input gets a clear 4xx and writes nothing — not an execution, not a
queue, not a job. Invariant 2: a webhook HubSpot sends twice (a retry, a lost reply) is stored
once and completed once. Bodies come from ``tests/data/webhooks`` (HubSpot's shapes, see its
README) or from :func:`throttled.demo.stack.enrollment_body`; signatures are made with the
same recipe HubSpot uses (``throttled.hubspot.signatures``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import trio

from tests.support.blocks import rest_of_block
from tests.support.completions import settled_completions
from throttled.db import tables
from throttled.hubspot.signatures import SignedRequest, sign_v2, signed_headers
from throttled.testing import ACTION_PATH, Step, enrollment_body, local_stack

WEBHOOKS = Path(__file__).parent.parent / "data" / "webhooks"
BLOCK = {"outputFields": {"hs_execution_state": "BLOCK", "hs_expiration_duration": "P7D"}}
STEP = Step(workflow_id=9001, action_id=3, limit=10, period=1, unit="seconds")
#: The field each ``invalid-*`` sample must be refused for.
INVALID_FIELDS = {
    "invalid-unit.json": "inputFields.time_unit",
    "invalid-throughput.json": "inputFields.max_throughput",
    "invalid-no-callback.json": "callbackId",
}


async def _row_counts(stack) -> dict[str, int]:
    """Rows in every table ingest writes to (jobs: throttle jobs; cron adds its own)."""
    def count(conn):
        counts = {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (tables.action_executions, tables.queues)
        }
        throttle_jobs = sa.select(sa.func.count()).select_from(tables.jobs).where(tables.jobs.c.kind == "throttle")
        counts["jobs"] = conn.execute(throttle_jobs).scalar_one()
        return counts
    return await stack.daemons[0].db.transaction(count)


async def _post_raw(stack, body: bytes, headers: dict[str, str]):
    return await stack.hubspot.http.post(stack.daemons[0].url + ACTION_PATH, content=body, headers=headers)


def _signed(stack, body: bytes, *, secret: str | None = None, timestamp_ms: int | None = None) -> dict[str, str]:
    uri = stack.daemons[0].url + ACTION_PATH
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    return signed_headers(secret or stack.hubspot.client_secret, SignedRequest("POST", uri, body), ts)


async def _completions_of(stack, callback_id: str, timeout_s: float = 10.0) -> list[dict]:
    """The sandbox's completions of ``callback_id``, once it was completed there and its
    execution recorded as final (no second completion can follow)."""
    done = await settled_completions(stack, ids=[callback_id], timeout_s=timeout_s)
    return [c for c in done if c["callbackId"] == callback_id]


def _sample_files() -> list[Path]:
    files = sorted(WEBHOOKS.glob("*.json"))
    assert files, f"no samples in {WEBHOOKS}"
    return files


@pytest.mark.parametrize("sample", _sample_files(), ids=lambda p: p.name)
async def test_hubspot_shaped_samples(empty_database, sample: Path):
    body = await trio.Path(sample).read_bytes()
    async with local_stack(empty_database) as stack:
        before = await _row_counts(stack)
        response = await stack.hubspot.post(stack.daemons[0].url, body)
        after = await _row_counts(stack)
    if sample.name.startswith("invalid-"):
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_input"
        assert response.json()["field"] == INVALID_FIELDS[sample.name]
        assert after == before
    else:
        assert response.status_code == 200, response.text
        assert response.json() == BLOCK
        assert after["action_executions"] == before["action_executions"] + 1
        assert after["queues"] == before["queues"] + 1 and after["jobs"] == before["jobs"] + 1


def test_every_invalid_sample_names_its_field():
    invalid = {p.name for p in _sample_files() if p.name.startswith("invalid-")}
    assert invalid == set(INVALID_FIELDS)


async def test_signature_failures_are_401_and_write_nothing(empty_database):
    async with local_stack(empty_database) as stack:
        body = enrollment_body(f"ap-{stack.portal_id}-1-1", stack.portal_id, STEP)
        now_ms = int(time.time() * 1000)
        v2_only = {"Content-Type": "application/json", "X-HubSpot-Signature-Version": "v2"}
        cases = {
            "wrong secret": (body, _signed(stack, body, secret="not-the-secret"), "mismatch"),
            "stale v3 timestamp": (body, _signed(stack, body, timestamp_ms=now_ms - 301_000), "stale"),
            "future timestamp": (body, _signed(stack, body, timestamp_ms=now_ms + 31_000), "future"),
            "no signature headers": (body, {"Content-Type": "application/json"}, "missing"),
            "tampered body": (body.replace(b'"10"', b'"99"'), _signed(stack, body), "mismatch"),
            "v2 with wrong secret": (
                body,
                {**v2_only, "X-HubSpot-Signature": sign_v2("x", SignedRequest("POST", stack.daemons[0].url + ACTION_PATH, body))},
                "mismatch",
            ),
        }
        before = await _row_counts(stack)
        for name, (sent, headers, reason) in cases.items():
            response = await _post_raw(stack, sent, headers)
            assert response.status_code == 401, (name, response.text)
            assert response.json() == {"error": "invalid_signature", "reason": reason}, name
        assert await _row_counts(stack) == before


async def test_v2_only_signature_is_accepted(empty_database):
    async with local_stack(empty_database) as stack:
        body = enrollment_body(f"ap-{stack.portal_id}-1-2", stack.portal_id, STEP)
        uri = stack.daemons[0].url + ACTION_PATH
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Signature": sign_v2(stack.hubspot.client_secret, SignedRequest("POST", uri, body)),
            "X-HubSpot-Signature-Version": "v2",
        }
        response = await _post_raw(stack, body, headers)
        assert response.status_code == 200, response.text
        assert response.json() == BLOCK
        assert (await _row_counts(stack))["action_executions"] == 1


async def test_bad_bodies_are_400_and_write_nothing(empty_database):
    async with local_stack(empty_database) as stack:
        good = json.loads(enrollment_body(f"ap-{stack.portal_id}-1-3", stack.portal_id, STEP))
        no_period = {**good, "inputFields": {k: v for k, v in good["inputFields"].items() if k != "time_period"}}
        no_origin = {k: v for k, v in good.items() if k != "origin"}
        # json.dumps writes the escape "\ud800": valid JSON, but not storable as UTF-8 text.
        body_with_surrogate = json.dumps({**good, "inputFields": {**good["inputFields"], "note": "\ud800"}}).encode()
        cases = {
            "missing time_period": (no_period, "inputFields.time_period"),
            "missing origin": (no_origin, "origin"),
            "unknown unit": ({**good, "inputFields": {**good["inputFields"], "time_unit": "fortnights"}},
                             "inputFields.time_unit"),
            "wordy throughput": ({**good, "inputFields": {**good["inputFields"], "max_throughput": "ten"}},
                                 "inputFields.max_throughput"),
            "not JSON": (b'{"callbackId": "ap-1", ', "body"),
            "JSON array": ([good], "body"),
            "JSON string": ("hello", "body"),
            "empty body": (b"", "body"),
            "NUL character": ({**good, "object": {"objectId": "a\x00b"}}, "body"),
            "unpaired surrogate": (body_with_surrogate, "body"),
            # Parses, but deep enough that a recursive walk of it used to end in a 500.
            "deeply nested": (b'{"a":' + b"[" * 700 + b"]" * 700 + b"}", "callbackId"),
        }
        before = await _row_counts(stack)
        for name, (payload, field) in cases.items():
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            response = await stack.hubspot.post(stack.daemons[0].url, body)
            assert response.status_code == 400, (name, response.text)
            assert response.json()["error"] == "invalid_input", name
            assert response.json()["field"] == field, name
        assert await _row_counts(stack) == before


async def test_repeated_webhook_is_stored_once_and_completed_once(empty_database):
    async with local_stack(empty_database) as stack:
        url = stack.daemons[0].url
        body = enrollment_body(f"ap-{stack.portal_id}-2-1", stack.portal_id, STEP)
        first = await stack.hubspot.post(url, body)
        second = await stack.hubspot.post(url, body)
        assert first.status_code == second.status_code == 200
        assert first.json() == BLOCK and rest_of_block(second.json(), 7 * 86400)
        assert (await _row_counts(stack))["action_executions"] == 1
        done = await _completions_of(stack, f"ap-{stack.portal_id}-2-1")
        assert len(done) == 1
        # HubSpot retries after the completion too: answered with what is true (done), nothing
        # new stored.
        late = await stack.hubspot.post(url, body)
        assert late.status_code == 200 and late.json() == {"outputFields": done[0]["outputFields"]}
        assert done[0]["outputFields"]["hs_execution_state"] == "SUCCESS"
        assert (await _row_counts(stack))["action_executions"] == 1


async def test_twenty_concurrent_copies_are_stored_once_and_completed_once(empty_database):
    async with local_stack(empty_database) as stack:
        callback_id = f"ap-{stack.portal_id}-2-2"
        body = enrollment_body(callback_id, stack.portal_id, STEP)
        answers = []

        async def post():
            response = await stack.hubspot.post(stack.daemons[0].url, body)
            answers.append((response.status_code, response.json()))

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(post)
        assert answers == [(200, BLOCK)] * 20
        counts = await _row_counts(stack)
        assert counts["action_executions"] == 1 and counts["queues"] == 1 and counts["jobs"] == 1
        assert len(await _completions_of(stack, callback_id)) == 1


async def test_body_over_64_kib_is_413_and_writes_nothing(empty_database):
    async with local_stack(empty_database) as stack:
        good = json.loads(enrollment_body(f"ap-{stack.portal_id}-3-1", stack.portal_id, STEP))
        good["object"]["properties"] = {"notes": "x" * (64 * 1024)}
        body = json.dumps(good).encode()
        before = await _row_counts(stack)
        response = await stack.hubspot.post(stack.daemons[0].url, body)
        assert response.status_code == 413, response.text
        assert response.json() == {"error": "body_too_large", "limit_bytes": 65536}

        async def chunks():  # no Content-Length: the limit must hold while streaming too
            for i in range(0, len(body), 8192):
                yield body[i : i + 8192]

        streamed = await stack.hubspot.http.post(
            stack.daemons[0].url + ACTION_PATH, content=chunks(), headers=_signed(stack, body)
        )
        assert streamed.status_code == 413, streamed.text
        assert await _row_counts(stack) == before


async def test_health_and_readiness(empty_database):
    async with local_stack(empty_database) as stack:
        health = await stack.hubspot.http.get(stack.daemons[0].url + "/healthz")
        ready = await stack.hubspot.http.get(stack.daemons[0].url + "/readyz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


async def test_refusals_are_logged_once_per_kind_with_counts_never_the_body(empty_database):
    # A new-user trial: a wrong THROTTLED_PUBLIC_URL or client secret made every webhook a 401
    # and left nothing in the log.
    from structlog.testing import capture_logs

    async with local_stack(empty_database) as stack:
        body = enrollment_body(f"ap-{stack.portal_id}-77-1-0", stack.portal_id, STEP)
        with capture_logs() as logs:
            for _ in range(5):
                wrong = await _post_raw(stack, body, _signed(stack, body, secret="not-the-secret"))
                assert wrong.status_code == 401
            for _ in range(3):
                bad = await stack.hubspot.post(stack.daemons[0].url, body.replace(b'"seconds"', b'"fortnights"'))
                assert bad.status_code == 400
            slash = await stack.hubspot.post(stack.daemons[0].url, enrollment_body("a/b", stack.portal_id, STEP))
        assert slash.status_code == 400 and slash.json()["field"] == "callbackId"
        assert (await _row_counts(stack))["action_executions"] == 0
    lines = [e for e in logs if e["event"] == "webhook.rejected"]
    assert [(e["outcome"], e["reason"]) for e in lines] == [
        ("unauthorized", "mismatch"), ("invalid", "inputFields.time_unit"), ("invalid", "callbackId")]
    assert "HUBSPOT_CLIENT_SECRET" in lines[0]["note"]
    assert not any("fortnights" in repr(e) for e in lines)  # never the body
