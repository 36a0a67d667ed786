"""The status page's rendering (pure: a snapshot in, HTML out): every value escaped, holds,
overrides and token states shown, one SVG bar per minute scaled to the busiest minute."""

from __future__ import annotations

import datetime as dt
import re

from throttled.control import PortalOverview, QueueOverview
from throttled.db.queues import ConfigRow, QueueRow
from throttled.throttle.outlook import Expiring
from throttled.web.status_page import (
    HISTORY_MINUTES,
    StatusSnapshot,
    release_chart,
    render_status_page,
)

NOW = dt.datetime(2026, 3, 2, 9, 30, 15, tzinfo=dt.UTC)
HOSTILE = '<script>alert("x")</script>&'


def _snapshot() -> StatusSnapshot:
    held = QueueRow("queue:1:2:3:0", 1, 3, 10, 1, "minutes", "burst", state="on_hold",
                    on_hold_until=NOW + dt.timedelta(minutes=5), consecutive_failures=3, holds=2,
                    last_failure_reason=HOSTILE, refused=5, refused_at=NOW - dt.timedelta(minutes=3))
    overridden = QueueRow("queue:1:shared:promo", 1, 4, 5, 1, "hours", "burst", state="paused")
    override = ConfigRow(1, 4, 50, 2, "hours", "smooth", NOW)
    portals = [PortalOverview(1, "active", "expired", NOW - dt.timedelta(minutes=1), ["automation"], "k1", None, None,
                              NOW, NOW),
               PortalOverview(2, "revoked", "missing", None, [HOSTILE], None, NOW + dt.timedelta(hours=1),
                              f"missing scopes {HOSTILE}", NOW, NOW)]
    history = [0] * (HISTORY_MINUTES - 2) + [4, 2]
    # the hold's reason quotes HubSpot: escaped like everything else (it once was not)
    portal_hold = (NOW + dt.timedelta(hours=1), f"HubSpot refuses the app: missing scopes (automation) {HOSTILE}")
    return StatusSnapshot(NOW, [QueueOverview(held, {"pending": 7, "releasing": 3}, None, portal_hold,
                                              Expiring(3, 7, True, NOW + dt.timedelta(days=2)), NOW),
                                QueueOverview(overridden, {"released": 9}, override)],
                          {"queue:1:2:3:0": history}, portals)


def test_every_value_is_escaped_and_holds_are_shown():
    page = render_status_page(_snapshot())
    assert "<script" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page
    assert "on hold" in page and "until 2026-03-02 09:35:15 UTC" in page
    assert "3 failures in a row" in page and "held 2×" in page
    assert "10 per minute" in page and "50 per 2 hours (override)" in page and "smooth" in page
    assert "backlog 10" in page and "6 released in the last hour" in page and "2 portals" in page
    assert "expired 2026-03-02 09:29:15 UTC (refreshed on next use)" in page and "missing" in page
    assert "until 2026-03-02 10:30:15 UTC: missing scopes &lt;script" in page  # the portal's hold and why
    assert "portal held until 2026-03-02 10:30:15Z: HubSpot refuses the app: missing scopes (automation)" in page
    assert page.count("<svg") == 2  # a queue without releases still gets its (empty) chart
    assert "3 held will expire before their turn" in page and "5 refused as too long so far, last 2026-03-02 09:27Z" in page
    assert "stopped: the first held block ends 2026-03-04 09:30Z" in page  # on hold: the countdown runs


def test_chart_has_a_bar_per_minute_scaled_to_the_busiest():
    chart = release_chart([0] * 57 + [1, 8, 4], NOW)
    heights = [int(h) for h in re.findall(r'height="(\d+)"><title>', chart)]
    assert heights == [4, 32, 16]  # empty minutes draw nothing
    assert re.findall(r'<rect x="(\d+)"', chart) == ["228", "232", "236"]  # at their minute's place
    assert "<title>09:30 UTC: 4 released</title>" in chart and "<title>09:29 UTC: 8 released</title>" in chart


def test_empty_page():
    page = render_status_page(StatusSnapshot(NOW, [], {}, []))
    assert "No queues yet" in page and "No portal installed yet" in page and "0 queues" in page
