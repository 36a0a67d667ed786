"""/metrics parses with prometheus-client's own parser, and its counters match the database."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.support.completions import settled_completions
from throttled.db import executions as executions_sql
from throttled.testing import Step, local_stack

STEP = Step(workflow_id=61, action_id=1, limit=25, period=1, unit="seconds")


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


async def test_metrics_match_the_database_after_a_run(empty_database):
    async with local_stack(empty_database) as stack:
        daemon, hubspot = stack.daemons[0], stack.hubspot
        ids = [f"ap-{stack.portal_id}-m-{i}" for i in range(60)]
        for cid in ids:
            assert (await hubspot.enroll(daemon.url, cid, stack.portal_id, STEP)).status_code == 200
        await hubspot.enroll(daemon.url, ids[0], stack.portal_id, STEP)  # a HubSpot retry: stored once
        bad = await hubspot.post(daemon.url, b"{}")
        await settled_completions(stack, 60, timeout_s=20)
        text = (await hubspot.http.get(daemon.admin_url + "/metrics")).text
        counts = (await daemon.db.transaction(executions_sql.execution_counts))[STEP.queue_id(stack.portal_id)]
    samples = _samples(text)
    assert bad.status_code == 400
    repeat_done = samples.get(("throttled_webhooks_total", (("outcome", "already_completed"),)), 0)
    assert samples[("throttled_webhooks_total", (("outcome", "accepted"),))] + repeat_done == 61  # the retry: either
    assert samples[("throttled_webhooks_total", (("outcome", "invalid"),))] == 1
    assert samples[("throttled_releases_total", ())] == counts["released"] == 60
    assert samples[("throttled_executions", (("state", "pending"),))] == 0
    assert samples[("throttled_executions", (("state", "releasing"),))] == 0
    # finished ones are counted by counters, not by reading every finished row at each scrape
    assert ("throttled_executions", (("state", "released"),)) not in samples
    batches = samples[("throttled_ingest_batch_size_count", ())]
    assert 1 <= batches <= 61 and samples[("throttled_ingest_batch_size_sum", ())] == 61
    calls = sum(v for (name, labels), v in samples.items()
                if name == "throttled_hubspot_calls_total" and ("endpoint", "complete_batch") in labels)
    assert calls >= 3  # 60 at 25 per second: at least three windows of batches
