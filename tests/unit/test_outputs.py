"""What we answer HubSpot, and the action definition that declares it (pure)."""

import datetime as dt

import pytest

from throttled.hubspot import outputs
from throttled.hubspot.registration import action_definition

DEFINITION = action_definition("https://throttle.example.com")


@pytest.mark.parametrize(("span", "text"), [
    (dt.timedelta(days=7), "P7D"),
    (dt.timedelta(days=16, hours=8, seconds=5), "P16DT8H5S"),
    (dt.timedelta(hours=1, minutes=30), "PT1H30M"),
    (dt.timedelta(seconds=0.2), "PT1S"),  # rounded up, never zero
    (dt.timedelta(days=13, hours=23, minutes=59, seconds=59, microseconds=999_000), "P14D"),
])
def test_block_durations_are_days_and_clock_units(span, text):
    assert outputs.iso_duration(span) == text
    assert outputs.block(span) == {"outputFields": {"hs_execution_state": "BLOCK", "hs_expiration_duration": text}}


def _declared_outputs() -> dict[str, set[str] | None]:
    """Output name → its options (``None``: a free value, e.g. a number)."""
    return {f["typeDefinition"]["name"]: ({o["value"] for o in f["typeDefinition"]["options"]}
                                          if "options" in f["typeDefinition"] else None)
            for f in DEFINITION["outputFields"]}


@pytest.mark.parametrize("answer", [
    outputs.not_held("queue_too_long"), outputs.not_held("release_after_too_late"),
    outputs.ended_unreleased("failed"), outputs.ended_unreleased("expired"),
])
def test_every_output_we_send_is_declared_with_its_value(answer):
    declared = _declared_outputs()
    fields = answer["outputFields"]
    assert fields["hs_execution_state"] == "FAIL_CONTINUE"
    for name, value in fields.items():
        if not name.startswith("hs_"):
            assert name in declared, f"{name} is not an output field of the action definition"
            options = declared[name]
            assert options is not None and value in options, f"{name}={value} is not one of its options"


def test_a_release_says_how_long_it_was_held_when_and_from_where_in_line():
    received = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
    sent = dt.datetime(2026, 12, 1, 10, 30, 5, 900_000, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    fields = outputs.release_fields(received, sent, 42)
    assert fields == {"held_seconds": "91805", "released_at": "2026-12-01T09:30:05Z", "position_on_arrival": "42"}
    body = outputs.completion(fields)
    assert body == {"outputFields": {"hs_execution_state": "SUCCESS", **fields}, "typedOutputs": {}}
    declared = _declared_outputs()
    for name in fields:  # declared as free values (numbers, text): any string of the right shape
        assert name in declared and declared[name] is None, name
    assert set(outputs.RELEASE_OUTPUTS) == set(fields)
    # Records stored before positions were kept, or a clock that stepped back: no lie, no negative.
    assert outputs.release_fields(None, sent, None) == {"released_at": "2026-12-01T09:30:05Z"}
    assert outputs.release_fields(sent, received, None)["held_seconds"] == "0"
    assert outputs.already_completed(fields) == {"outputFields": body["outputFields"]}


def test_every_error_code_has_an_execution_rule_with_an_english_message():
    rules = {r["conditions"]["errorCode"]: r["labelName"] for r in DEFINITION["executionRules"]}
    messages = DEFINITION["labels"]["en"]["executionRules"]
    assert set(rules) == set(outputs.ERROR_CODES.values()) == _declared_outputs()["errorCode"]
    for code, label in rules.items():
        assert len(messages[label]) > 20, f"{code}: the history would show no sentence"
    assert set(DEFINITION["labels"]["en"]["outputFieldLabels"]) == set(_declared_outputs())
