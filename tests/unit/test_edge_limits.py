"""The listener's connection cap and body budget (pure), and the stdlib log routing."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from throttled import logs
from throttled.web.body_budget import announced_body_size
from throttled.web.edge_limits import BodyBudget, ConnectionTable, default_max_connections


def test_the_cap_evicts_the_longest_idle_connection_first():
    table, evicted = ConnectionTable(3), []
    for key, t in (("a", 0.0), ("b", 1.0), ("c", 2.0)):
        assert table.admit(key, lambda k=key: evicted.append(k), t)
    table.busy("a")  # inside a request: never evicted
    assert table.admit("d", lambda: evicted.append("d"), 3.0)
    assert evicted == ["b"] and len(table) == 3
    table.idle("a", 4.0)  # its answer went out; now idle, but since after c and d
    assert table.admit("e", lambda: evicted.append("e"), 5.0)
    assert evicted == ["b", "c"] and (table.evicted, table.refused) == (2, 0)


def test_at_the_cap_with_every_connection_busy_a_new_one_is_refused():
    table = ConnectionTable(2)
    for key in ("a", "b"):
        assert table.admit(key, lambda: None, 0.0)
        table.busy(key)
    assert not table.admit("c", lambda: None, 1.0)
    assert table.refused == 1 and len(table) == 2
    table.close("a")
    assert table.admit("c", lambda: None, 2.0)


def test_the_peak_resets_to_what_is_open():
    table = ConnectionTable(10)
    for key in range(5):
        table.admit(key, lambda: None, 0.0)
    for key in range(4):
        table.close(key)
    assert table.reset_peak() == 5
    assert table.reset_peak() == 1


def test_the_body_budget_admits_what_fits_and_gets_it_back():
    budget = BodyBudget(100)
    assert budget.reserve(60) and budget.reserve(40)
    assert not budget.reserve(1) and budget.refused == 1
    budget.release(60)
    assert budget.reserve(50) and budget.reserved == 90
    assert not BodyBudget(10).reserve(11)


def test_the_cap_comes_from_the_open_file_limit():
    assert default_max_connections(1024) == 576
    assert default_max_connections(256) == 32  # never below
    assert default_max_connections(1 << 20) == 4096  # never above


@pytest.mark.parametrize(("headers", "size"), [
    ([], 0), ([(b"content-length", b"0")], 0), ([(b"Content-Length", b"1500")], 1500),
    ([(b"content-length", b"999999")], 65536), ([(b"transfer-encoding", b"chunked")], 65536),
    ([(b"content-length", b"x")], 65536),
])
def test_a_request_reserves_what_it_announces_up_to_the_body_limit(headers, size):
    assert announced_body_size({"type": "http", "headers": headers}, 65536) == size  # type: ignore[typeddict-item]


def test_standard_library_errors_become_one_json_line_per_template_per_minute(capsys):
    logs.configure("INFO", json=True)
    try:
        trio_log = logging.getLogger("trio.serve_listeners")
        for _ in range(5):
            try:
                raise OSError(24, "Too many open files")
            except OSError:
                trio_log.error("accept returned %s; retrying", "EMFILE", exc_info=True)
        logging.getLogger("httpx").info("HTTP Request: GET /")  # below WARNING: dropped
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    finally:  # the renderer holds capsys' stream: put structlog and the root logger back
        structlog.reset_defaults()
        logging.getLogger().handlers[:] = [h for h in logging.getLogger().handlers if h.get_name() != "throttled"]
        logging.getLogger().setLevel(logging.WARNING)
    assert len(lines) == 1, lines
    event = json.loads(lines[0])
    assert event["event"] == "accept returned EMFILE; retrying" and event["level"] == "error"
    assert event["logger"] == "trio.serve_listeners" and "Too many open files" in event["exception"]
    assert event["not_logged_since"] == 0
