"""The step's optional inputs and operator overrides (pure)."""

import datetime as dt

import pytest

from throttled.ingest.inputs import InvalidInput, parse_inputs, parse_override

BASE = {"max_throughput": "10", "time_period": "1", "time_unit": "hours"}


def test_defaults():
    parsed = parse_inputs(BASE)
    assert (parsed.step.mode, parsed.step.hours, parsed.shared_name, parsed.priority, parsed.not_before) == (
        "burst", None, None, 0, None)


def test_all_optional_inputs():
    parsed = parse_inputs({**BASE, "mode": "Smooth", "shared_queue": "sales-handoff", "priority": "7",
                           "release_days": "mon-fri", "release_hours": "09:00-17:30", "time_zone": "Europe/Berlin",
                           "release_after": "2026-05-01T09:00:00+02:00", "time_unit": "weeks"})
    assert parsed.step.mode == "smooth" and parsed.shared_name == "sales-handoff" and parsed.priority == 7
    assert parsed.step.hours.time_zone == "Europe/Berlin" and parsed.step.rate.period == dt.timedelta(weeks=1)
    assert parsed.not_before == dt.datetime(2026, 5, 1, 7, tzinfo=dt.UTC)


def test_release_after_as_epoch_milliseconds():
    parsed = parse_inputs({**BASE, "release_after": "1767225600000"})
    assert parsed.not_before == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"mode": "turbo"}, "inputFields.mode"),
        ({"priority": "10"}, "inputFields.priority"),
        ({"priority": "highest"}, "inputFields.priority"),
        ({"shared_queue": "a b"}, "inputFields.shared_queue"),
        ({"release_after": "tomorrow"}, "inputFields.release_after"),
        ({"release_after": "2026-05-01T09:00:00"}, "inputFields.release_after"),
        ({"time_zone": "Nowhere/City", "release_days": "mon"}, "inputFields.time_zone"),
        ({"time_period": "60", "time_unit": "weeks"}, "inputFields.time_period"),
    ],
)
def test_bad_optional_inputs(extra, field):
    with pytest.raises(InvalidInput) as info:
        parse_inputs({**BASE, **extra})
    assert info.value.field == field


def test_override_rate_and_mode():
    override = parse_override({"max_throughput": 5, "time_period": "2", "time_unit": "minutes", "mode": "smooth"})
    assert (override.max_throughput, override.time_period, override.time_unit, override.mode) == (5, 2, "minutes", "smooth")
    assert parse_override({"mode": "burst"}).max_throughput is None


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "body"), ({"max_throughput": 5}, "time_period"), ({"speed": 1}, "speed"), ({"mode": "x"}, "mode"),
     ({"max_throughput": 0, "time_period": 1, "time_unit": "hours"}, "max_throughput")],
)
def test_bad_overrides(body, field):
    with pytest.raises(InvalidInput) as info:
        parse_override(body)
    assert info.value.field == field


def test_priority_in_hubspots_words_maps_onto_the_scale():
    for word, expected in (("HIGH", 7), ("high", 7), (" Medium ", 5), ("LOW", 2), ("NONE", 0), ("URGENT", 9)):
        assert parse_inputs({**BASE, "priority": word}).priority == expected, word
    assert parse_inputs({**BASE, "priority": 8}).priority == 8  # numbers as before
