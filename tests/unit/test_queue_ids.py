import pytest

from throttled.throttle.queue_ids import parse_queue_id, shared_queue, step_queue


def test_step_queue_text_form_round_trips():
    queue = step_queue(4455667, 192814114, 2)
    assert str(queue) == "queue:4455667:192814114:2:0"
    assert parse_queue_id(str(queue)) == queue


def test_shared_queue_text_form_round_trips():
    queue = shared_queue(4455667, "sales-handoff")
    assert str(queue) == "queue:4455667:shared:sales-handoff"
    assert parse_queue_id(str(queue)) == queue


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "é", "a:b"])
def test_shared_queue_names_are_restricted(name):
    with pytest.raises(ValueError, match="shared queue names are 1-64"):
        shared_queue(1, name)


@pytest.mark.parametrize("text", ["", "queue:1:2:3", "queue:a:2:3:0", "job:1:2:3:0", "queue:1:shared:"])
def test_parse_rejects(text):
    with pytest.raises(ValueError, match="not a queue id"):
        parse_queue_id(text)
