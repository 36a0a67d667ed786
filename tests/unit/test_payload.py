"""Payload parsing over the shared HubSpot-shaped variants and hand-made bad bodies."""

import json
from pathlib import Path

import pytest

from throttled.ingest.payload import InvalidInput, parse_enrollment

WEBHOOKS = Path(__file__).resolve().parents[2] / "tests" / "data" / "webhooks"
VALID = sorted(p for p in WEBHOOKS.glob("*.json") if not p.name.startswith("invalid-"))
INVALID = sorted(WEBHOOKS.glob("invalid-*.json"))


def test_fixture_files_present():
    assert len(VALID) >= 5 and len(INVALID) >= 3


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_variants_parse(path):
    enrollment = parse_enrollment(path.read_bytes())
    data = json.loads(path.read_bytes())
    assert enrollment.callback_id == data["callbackId"]
    assert enrollment.portal_id == data["origin"]["portalId"]
    assert enrollment.step.rate.limit == int(data["inputFields"]["max_throughput"])


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("invalid-no-callback.json", "callbackId"),
        ("invalid-throughput.json", "inputFields.max_throughput"),
        ("invalid-unit.json", "inputFields.time_unit"),
    ],
)
def test_invalid_variants_name_the_field(path, field):
    with pytest.raises(InvalidInput) as info:
        parse_enrollment((WEBHOOKS / path).read_bytes())
    assert info.value.field == field


def test_without_action_id_the_step_comes_from_the_callback_id():
    # documented.json: ap-4455667-56776413549-7-0 = ap-{portal}-{enrollment}-{actionId}-{index}
    enrollment = parse_enrollment((WEBHOOKS / "documented.json").read_bytes())
    assert (enrollment.action_id, enrollment.step_source) == (7, "callbackId")
    assert str(enrollment.queue_id) == "queue:4455667:192814114:7:0"


def _step_body(callback_id: str, limit: str, unit: str, **context) -> bytes:
    """Portal 1001, workflow 700, definition 777, no context.actionId (HubSpot's documented sample)."""
    return json.dumps({"callbackId": callback_id, "origin": {"portalId": 1001, "actionDefinitionId": 777},
                       "context": {"source": "WORKFLOWS", "workflowId": 700, **context},
                       "inputFields": {"max_throughput": limit, "time_period": "1", "time_unit": unit}}).encode()


def test_two_steps_of_one_workflow_without_action_id_get_two_queues():
    # The field-faults input: 1 per hour, then 100 per second, then 1 per hour again — keyed on
    # the definition id alone these were one queue whose rate flipped with each webhook.
    by_callback = [parse_enrollment(_step_body(f"ap-1001-5550{n}-{step}-0", limit, unit))
                   for n, (step, limit, unit) in enumerate([(3, "1", "hours"), (4, "100", "seconds"), (3, "1", "hours")])]
    assert [str(e.queue_id) for e in by_callback] == ["queue:1001:700:3:0", "queue:1001:700:4:0", "queue:1001:700:3:0"]
    by_settings = [parse_enrollment(_step_body(f"cb-{n}", limit, unit))
                   for n, (limit, unit) in enumerate([("1", "hours"), ("100", "seconds"), ("1", "hours")])]
    queues = [str(e.queue_id) for e in by_settings]
    assert queues[0] == queues[2] != queues[1] and {e.step_source for e in by_settings} == {"settings"}
    assert all(q.startswith("queue:1001:700:777:") and not q.endswith(":0") for q in queues)


def test_a_callback_id_of_another_portal_or_shape_does_not_name_the_step():
    assert parse_enrollment(_step_body("ap-999-1-3-0", "1", "hours")).step_source == "settings"
    assert parse_enrollment(_step_body("ap-1001-1-3", "1", "hours")).step_source == "settings"
    assert parse_enrollment(_step_body("ap-1001-1-99999999999999999999-0", "1", "hours")).step_source == "settings"
    with_action = parse_enrollment(_step_body("ap-1001-1-3-0", "1", "hours", actionId=12))
    assert (with_action.action_id, with_action.step_source) == (12, "actionId")


def test_per_record_inputs_do_not_split_a_step():
    # priority and release_after differ per record: the settings lane must not follow them
    a = json.loads(_step_body("cb-a", "5", "minutes"))
    b = json.loads(_step_body("cb-b", "5", "minutes"))
    a["inputFields"] |= {"priority": "9", "release_after": "1767225600000"}
    b["inputFields"] |= {"priority": "1", "max_throughput": 5}
    assert parse_enrollment(json.dumps(a).encode()).queue_id == parse_enrollment(json.dumps(b).encode()).queue_id


def test_context_action_id_wins():
    enrollment = parse_enrollment((WEBHOOKS / "with-action-id.json").read_bytes())
    assert str(enrollment.queue_id) == "queue:4455667:192814114:2:0"


def _body(**inputs):
    base = {"max_throughput": "10", "time_period": "1", "time_unit": "hours"}
    base.update(inputs)
    return json.dumps(
        {"callbackId": "ap-1-2-3", "origin": {"portalId": 1, "actionDefinitionId": 9},
         "context": {"workflowId": 5}, "inputFields": base}
    ).encode()


@pytest.mark.parametrize(
    ("inputs", "field"),
    [
        ({"max_throughput": "ten"}, "inputFields.max_throughput"),
        ({"max_throughput": True}, "inputFields.max_throughput"),
        ({"max_throughput": 1.5}, "inputFields.max_throughput"),
        ({"max_throughput": "-3"}, "inputFields.max_throughput"),
        ({"time_period": "0"}, "inputFields.time_period"),
        ({"time_period": None}, "inputFields.time_period"),
        ({"time_period": "400", "time_unit": "days"}, "inputFields.time_period"),
        ({"time_unit": "fortnights"}, "inputFields.time_unit"),
        ({"time_unit": 3}, "inputFields.time_unit"),
    ],
)
def test_bad_inputs(inputs, field):
    with pytest.raises(InvalidInput) as info:
        parse_enrollment(_body(**inputs))
    assert info.value.field == field


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"[]", b"\xff\xfe", b'"x"', b"null", _body(note="a\u0000b"), b"[" * 100_000,
     _body().replace(b'"hours"}', b'"hours", "x": NaN}'), _body().replace(b'"hours"}', b'"hours", "x": -Infinity}'),
     _body().replace(b'"hours"}', b'"hours", "x": ' + b"9" * 5000 + b"}"),
     # Parses to infinity, which jsonb refuses: once a 500 for every retry (a new-user trial).
     _body().replace(b'"hours"}', b'"hours", "partition_key": 1e999}'), _body().replace(b'"hours"}', b'"hours", "x": -1E400}')],
)
def test_bad_bodies(body):
    with pytest.raises(InvalidInput) as info:
        parse_enrollment(body)
    assert info.value.field == "body"


def test_numbers_as_strings_with_spaces_and_case():
    enrollment = parse_enrollment(_body(max_throughput=" 7 ", time_unit="Minutes", time_period=2.0))
    step = enrollment.step
    assert (step.max_throughput, step.time_period, step.time_unit) == (7, 2, "minutes")
    assert step.rate.period.total_seconds() == 120
