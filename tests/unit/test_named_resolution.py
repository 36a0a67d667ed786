"""Which settings a record naming a throttle waits under, and the customer's form (pure)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from throttled.db.named_throttles import NamedThrottle
from throttled.ingest.inputs import InvalidInput, parse_inputs, parse_named_throttle
from throttled.ingest.named import THROTTLE_DELETED, THROTTLE_INACTIVE, THROTTLE_UNKNOWN, resolve
from throttled.ingest.payload import parse_enrollment
from throttled.testing import Step, enrollment_body
from throttled.throttle.policy import stored_columns
from throttled.throttle.step import StepSettings

T0 = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
NAMED = StepSettings(20, 1, "days", "smooth")


def _named(state: str) -> NamedThrottle:
    return NamedThrottle(7, "leads", "New leads", **stored_columns(NAMED), state=state, created_at=T0, updated_at=T0)


def _enrollment(**inputs: str):
    data = json.loads(enrollment_body("ap-7-1-2-0", 7, Step(1, 2, 100, 1, "hours", shared="leads")))
    data["inputFields"] = inputs
    return parse_enrollment(json.dumps(data).encode())


@pytest.mark.parametrize(("inputs", "named", "expected"), [
    # A named throttle's own settings win over the step's, whether or not the step gave any.
    ({"shared_queue": "leads", "max_throughput": "100", "time_period": "1", "time_unit": "hours"}, "active", NAMED),
    ({"shared_queue": "leads"}, "active", NAMED),
    # Switched off or deleted: a clear outcome, never the step's inputs as a silent default.
    ({"shared_queue": "leads", "max_throughput": "100", "time_period": "1", "time_unit": "hours"}, "inactive",
     THROTTLE_INACTIVE),
    ({"shared_queue": "leads"}, "deleted", THROTTLE_DELETED),
    # Never named: an ad-hoc shared throttle at the step's rate, or refused without one.
    ({"shared_queue": "leads", "max_throughput": "100", "time_period": "1", "time_unit": "hours"}, None,
     StepSettings(100, 1, "hours")),
    ({"shared_queue": "leads"}, None, THROTTLE_UNKNOWN),
])
def test_a_named_throttle_decides_or_the_step_explains(inputs, named, expected):
    outcome = resolve(_enrollment(**inputs), _named(named) if named else None)
    if isinstance(expected, str):
        assert outcome == expected
    else:
        assert not isinstance(outcome, str)
        assert outcome.step == expected and str(outcome.queue_id) == "queue:7:shared:leads"


def test_a_rate_is_required_without_a_throttle_name_and_checked_with_one():
    with pytest.raises(InvalidInput) as no_rate:
        parse_inputs({"mode": "burst"})
    assert no_rate.value.field == "inputFields.max_throughput"
    with pytest.raises(InvalidInput) as half:  # a rate given with a name must still be whole
        parse_inputs({"shared_queue": "leads", "max_throughput": "5"})
    assert half.value.field == "inputFields.time_period"
    assert parse_inputs({"shared_queue": "leads"}).step is None


def test_the_named_throttle_form_is_validated_field_by_field():
    form = {"slug": "leads", "display_name": " New leads ", "max_throughput": "20", "time_period": "1",
            "time_unit": "days", "mode": "smooth", "release_days": "mon-fri", "release_hours": "09:00-17:00",
            "time_zone": "Europe/Berlin"}
    item = parse_named_throttle(form)
    assert (item.slug, item.display_name) == ("leads", "New leads")
    assert item.settings.describe() == "20 per day, smooth, mon-fri 09:00-17:00 Europe/Berlin"
    assert parse_named_throttle({**form, "slug": "ignored"}, slug="leads").slug == "leads"  # an edit keeps its slug
    for bad, field in [({"slug": "has space"}, "slug"), ({"slug": ""}, "slug"), ({"slug": "."}, "slug"),
                       ({"slug": ".."}, "slug"), ({"slug": "-x"}, "slug"), ({"display_name": ""}, "display_name"),
                       ({"display_name": "x" * 101}, "display_name"), ({"max_throughput": "0"}, "max_throughput"),
                       ({"time_unit": "fortnights"}, "time_unit"), ({"release_hours": "9-5"}, "release_hours"),
                       ({"time_zone": "Mars/Olympus"}, "time_zone"),
                       ({"release_days": "", "release_hours": "", "time_zone": "../../etc/passwd"}, "time_zone")]:
        with pytest.raises(InvalidInput) as exc:
            parse_named_throttle({**form, **bad})
        assert exc.value.field == field, bad


def test_a_partition_key_gives_each_value_its_own_queue_under_the_steps():
    from throttled.throttle.queue_ids import parse_queue_id

    owner_a = _enrollment(shared_queue="leads", partition_key=" 4711 ")
    owner_b = _enrollment(shared_queue="leads", partition_key="4712")
    nobody = _enrollment(shared_queue="leads", partition_key="  ")
    a, b = owner_a.queue_id, owner_b.queue_id
    assert owner_a.partition_key == "4711" and nobody.partition_key is None
    assert str(nobody.queue_id) == "queue:7:shared:leads" == str(a.parent) == str(b.parent)
    assert a != b and str(a).startswith("queue:7:shared:leads#") and len(a.partition or "") == 16
    assert parse_queue_id(str(a)) == a and parse_queue_id(str(nobody.queue_id)) == nobody.queue_id
    assert a == _enrollment(shared_queue="leads", partition_key="4711").queue_id  # stable across webhooks
    # Any property value is a key (a 400 would fail the record's step with no reason shown).
    long, odd = "x" * 300, "tab\there\u200b"
    assert parse_inputs({"shared_queue": "leads", "partition_key": long}).partition_key == long
    assert parse_inputs({"shared_queue": "leads", "partition_key": odd}).partition_key == odd
    assert _enrollment(shared_queue="leads", partition_key=long).queue_id != \
        _enrollment(shared_queue="leads", partition_key=long[:-1]).queue_id  # the whole value counts
    for bad in ({"owner": 1}, [1], True):
        with pytest.raises(InvalidInput) as exc:
            parse_inputs({"shared_queue": "leads", "partition_key": bad})
        assert exc.value.field == "inputFields.partition_key"
    assert parse_inputs({"shared_queue": "leads", "partition_key": 4711}).partition_key == "4711"  # a JSON number
    with pytest.raises(ValueError, match="not a queue id"):
        parse_queue_id("queue:7:shared:leads#not-a-digest")
