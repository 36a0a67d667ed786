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


def test_action_id_falls_back_to_definition_id():
    enrollment = parse_enrollment((WEBHOOKS / "documented.json").read_bytes())
    assert enrollment.action_id == 10646377
    assert str(enrollment.queue_id) == "queue:4455667:192814114:10646377:0"


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
     _body().replace(b'"hours"}', b'"hours", "x": ' + b"9" * 5000 + b"}")],
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
