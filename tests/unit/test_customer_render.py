"""The customer page's HTML (pure: views in, HTML out): every value escaped, state and
forecast in words, a warning when the forecast passes the blocks' end, CSRF in every form."""

from __future__ import annotations

import datetime as dt
import re

from throttled.control import QueueOverview
from throttled.db.named_throttles import NamedThrottle
from throttled.db.queues import QueueRow
from throttled.web.charts import per_hour
from throttled.web.customer import named_forms, render
from throttled.web.customer.views import Forecast, PortalPage, QueueView, title_of

NOW = dt.datetime(2026, 3, 2, 9, 30, 15, tzinfo=dt.UTC)
HOSTILE = '<script>alert("x")</script>&'
CSRF = "token-" + "t" * 40


def _named(slug: str = "promo", name: str = HOSTILE, state: str = "active") -> NamedThrottle:
    return NamedThrottle(1, slug, name, 10, 1, "hours", "burst", 0b11111, 540, 1050, "Europe/Berlin", state, NOW, NOW)


def _view(state: str = "active", forecast: Forecast | None = None, **row: object) -> QueueView:
    q = QueueRow("queue:1:shared:promo", 1, None, 10, 1, "hours", "burst", state=state, **row)  # type: ignore[arg-type]
    named = _named()
    minutes = [0] * 58 + [2, 1]
    return QueueView(QueueOverview(q, {"pending": 7, "releasing": 1}, None, at=NOW), title_of(q.queue_id, named), named,
                     minutes, per_hour([0] * (24 * 60 - 2) + [2, 1]),
                     forecast or Forecast.of(7, NOW + dt.timedelta(hours=1), NOW + dt.timedelta(days=27),
                                          NOW + dt.timedelta(days=7)))


def test_everything_is_escaped_and_every_form_carries_the_token():
    page = PortalPage(1, NOW, ("active", None), [_view(last_failure_reason=HOSTILE)], [_named()])
    html = render.portal_page(page, CSRF, named_forms.named_section(page, CSRF))
    assert "<script" not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in html
    forms = re.findall(r"<form .*?</form>", html, re.S)
    assert len(forms) == 5  # sign out; pause and drain (resume is hidden while active); deactivate, delete
    assert all(f'name="csrf" value="{CSRF}"' in f for f in forms)
    assert 'action="/app/queues/queue%3A1%3Ashared%3Apromo/pause"' in html
    assert "Last failure: &lt;script" in html and "<svg" in html and "3 released in the last hour" in html
    assert "10 per hour, burst" in html and "mon-fri 09:00-17:30 Europe/Berlin" in html


def test_state_and_forecast_in_words():
    assert "forecast to go by 2026-03-02 10:30 UTC (in 60 min)" in render.queue_card(_view(), NOW, CSRF)
    paused = render.queue_card(_view("paused"), NOW, CSRF)
    assert "Paused" in paused and "If resumed now, at this rate" in paused and "/resume" in paused
    assert "/pause" not in paused
    held = render.queue_card(_view("on_hold", on_hold_until=NOW + dt.timedelta(minutes=30), consecutive_failures=3),
                             NOW, CSRF)
    assert "HubSpot failed 3 times in a row, so releases wait until 2026-03-02 10:00 UTC" in held
    parts = Forecast(12, NOW + dt.timedelta(hours=2), NOW, NOW + dt.timedelta(days=7), partitions=3, complete=False)
    assert "the last of the 12 held records (in the fullest 3 partitions, each with its own limit) is forecast" in \
        render.queue_card(_view(forecast=parts), NOW, CSRF)
    draining = Forecast.of(7, NOW, NOW, NOW + dt.timedelta(days=7), draining=True)
    assert "Draining: the last of the 7 held records goes now." in render.queue_card(_view("draining", draining), NOW, CSRF)


def test_a_forecast_past_the_blocks_end_is_a_warning():
    late = Forecast.of(7, NOW + dt.timedelta(days=9), NOW + dt.timedelta(days=27), NOW + dt.timedelta(days=7))
    assert late.too_late and "HubSpot holds these records only until 2026-03-09 09:30 UTC" in \
        render.queue_card(_view(forecast=late), NOW, CSRF)
    never = Forecast.of(7, None, NOW + dt.timedelta(days=27), NOW + dt.timedelta(days=7))
    card = render.queue_card(_view(forecast=never), NOW, CSRF)
    assert never.too_late and "would not be released before 2026-03-29 09:30 UTC" in card
    assert not Forecast.of(0, None, NOW, None).too_late
    assert "Nothing is held" in render.queue_card(_view(forecast=Forecast(0, None, NOW, None)), NOW, CSRF)


def test_the_form_shows_the_bad_field_and_keeps_the_values():
    values = {"slug": "x", "display_name": HOSTILE, "time_zone": "Mars/Olympus", "time_unit": "days"}
    form = named_forms.named_form(CSRF, values, error=("time_zone", "must be an IANA time zone"))
    assert '<div class="field error"><label for="time_zone">' in form and "must be an IANA time zone" in form
    assert 'value="Mars/Olympus"' in form and '<option value="days" selected>' in form and "<script" not in form
    edit = named_forms.named_form(CSRF, named_forms.form_values(_named()), slug="promo")
    assert 'action="/app/throttles/promo"' in edit and 'id="slug"' not in edit
    assert 'value="mon,tue,wed,thu,fri"' in edit and 'value="09:00-17:30"' in edit


def test_titles_in_words():
    assert title_of("queue:1:101:7:0", None) == "Workflow 101, step 7"
    assert title_of("queue:1:shared:promo", None) == "Shared throttle “promo”"
    assert title_of("queue:1:shared:promo", _named(name="Promo")) == "Promo"
    assert title_of("odd", None) == "odd"
