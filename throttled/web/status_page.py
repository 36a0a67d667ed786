"""The read-only status page of the admin listener (``GET /admin``), rendered on the server.

One HTML document, no scripts and no external assets (inline CSS and SVG only), every value
escaped. Facts come from one transaction (:func:`status_snapshot`): the queues with their
backlog and state (``admin.control.list_queues``), releases per minute over the last hour
(``action_executions.released_at``) and the portals without their tokens.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from html import escape

from sqlalchemy.engine import Connection

from throttled import control
from throttled.control import PortalOverview, QueueOverview
from throttled.states import QueueState
from throttled.web.charts import minute_chart

HISTORY_MINUTES = 60
REFRESH_S = 30


@dataclass(frozen=True)
class StatusSnapshot:
    """What the page shows. ``releases``: queue id → releases per minute, oldest first,
    ``HISTORY_MINUTES`` entries ending with the current minute (UTC)."""

    now: dt.datetime
    queues: list[QueueOverview]
    releases: dict[str, list[int]]
    portals: list[PortalOverview]


def status_snapshot(conn: Connection, now: dt.datetime) -> StatusSnapshot:
    """Read everything the page shows in one transaction."""
    queues = control.list_queues(conn, None, now)
    releases = control.release_history(conn, [o.queue.queue_id for o in queues], now, HISTORY_MINUTES)
    return StatusSnapshot(now, queues, releases, control.list_portals(conn, now))


def render_status_page(snap: StatusSnapshot) -> str:
    """The whole HTML document for ``snap``."""
    backlog = sum(o.backlog for o in snap.queues)
    released = sum(sum(r) for r in snap.releases.values())
    summary = (f"{_plural(len(snap.queues), 'queue')} · backlog {backlog} · {released} released in the last hour · "
               f"{_plural(len(snap.portals), 'portal')}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{REFRESH_S}">
<title>throttled · status</title>
<style>{_CSS}</style></head>
<body>
<header><h1>throttled</h1><p>{escape(summary)}</p>
<p class="muted">as of {_time(snap.now)} · refreshes every {REFRESH_S} s · read-only</p></header>
<section><h2>Queues</h2>{_queues_table(snap)}</section>
<section><h2>Portals</h2>{_portals_table(snap)}</section>
</body></html>
"""


def release_chart(counts: list[int], end: dt.datetime) -> str:
    """An inline SVG bar chart of per-minute ``counts`` (oldest first) whose last bar is the
    minute containing ``end``; each bar has a ``<title>`` tooltip (``web/charts.py``)."""
    return minute_chart(counts, end)


def _queues_table(snap: StatusSnapshot) -> str:
    if not snap.queues:
        return '<p class="muted">No queues yet: one appears with the first enrollment of a step.</p>'
    rows = []
    for o in snap.queues:
        q = o.queue
        limit, period, unit, overridden = o.rate
        rate = f"{limit} per {unit.removesuffix('s') if period == 1 else f'{period} {unit}'}"
        rate += " (override)" if overridden else ""
        history = snap.releases.get(q.queue_id, [0] * HISTORY_MINUTES)
        rows.append(
            f'<tr><td class="id">{escape(q.queue_id)}</td><td>{escape(rate)}</td><td>{escape(o.mode)}</td>'
            f"<td>{_queue_state(o)}</td>"
            f'<td class="num">{o.counts.get("pending", 0)}</td><td class="num">{o.counts.get("releasing", 0)}</td>'
            f'<td class="chart-cell">{release_chart(history, snap.now)}<span class="num">{sum(history)}</span></td>'
            f'<td class="failure">{escape(q.last_failure_reason or "")}</td></tr>')
    return ('<table><thead><tr><th>queue</th><th>rate</th><th>mode</th><th>state</th><th class="num">pending</th>'
            '<th class="num">in flight</th><th>released, last hour</th><th>last failure</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _queue_state(o: QueueOverview) -> str:
    q = o.queue
    details = []
    if q.on_hold_until is not None and q.state == QueueState.ON_HOLD:
        details.append(f"until {_time(q.on_hold_until)}")
    if q.consecutive_failures:
        details.append(f"{q.consecutive_failures} failures in a row")
    if q.holds:
        details.append(f"held {q.holds}×")
    if o.portal_held:
        details.append(o.portal_held)
    badge = f'<span class="badge {escape(q.state)}">{escape(q.state.replace("_", " "))}</span>'
    warnings = "".join(f'<div class="warn">{escape(w)}</div>' for w in o.warnings)
    return badge + (f'<div class="muted">{escape(" · ".join(details))}</div>' if details else "") + warnings


def _portals_table(snap: StatusSnapshot) -> str:
    if not snap.portals:
        return '<p class="muted">No portal installed yet.</p>'
    rows = []
    for p in snap.portals:
        token = {"valid": f"valid until {_time(p.expires_at)}",
                 "expired": f"expired {_time(p.expires_at)} (refreshed on next use)",
                 "missing": ""}[p.token_status]
        held = f"until {_time(p.held_until)}: {escape(p.hold_reason or '')}" if p.held_until else ""
        rows.append(
            f'<tr><td class="id">{p.portal_id}</td><td><span class="badge {escape(p.status)}">{escape(p.status)}</span></td>'
            f'<td><span class="badge {escape(p.token_status)}">{escape(p.token_status)}</span> '
            f'<span class="muted">{escape(token)}</span></td><td>{escape(" ".join(p.scopes))}</td>'
            f'<td>{escape(p.key_id or "")}</td><td class="failure">{held}</td><td>{_time(p.installed_at)}</td></tr>')
    return ('<table><thead><tr><th>portal</th><th>status</th><th>access token</th><th>scopes</th><th>key id</th>'
            '<th>held (HubSpot refused the portal)</th><th>installed</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _time(t: dt.datetime | None) -> str:
    return escape(f"{t.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC") if t else ""


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px 32px;color:#1f2933;background:#f7f8fa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}header p{margin:2px 0}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0001;border-radius:6px;overflow:hidden}
th,td{padding:6px 10px;border-bottom:1px solid #e4e7eb;text-align:left;vertical-align:middle}
th{background:#eef1f4;font-weight:600;font-size:12px;text-transform:uppercase;letter-spacing:.03em;color:#52606d}
.num{text-align:right;font-variant-numeric:tabular-nums}.id{font-family:ui-monospace,Menlo,monospace;font-size:13px}
.muted{color:#7b8794;font-size:12px}.warn{color:#8a4b00;font-size:12px;font-weight:600}.failure{color:#ab091e;font-size:12px;max-width:260px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;background:#e4e7eb}
.active,.valid{background:#d6f5e3;color:#0e6027}.paused,.expired{background:#fff3c4;color:#8d5b00}
.on_hold,.revoked,.missing,.suspended{background:#ffe3e3;color:#ab091e}.draining{background:#dceefb;color:#0b4f8a}
.chart-cell{white-space:nowrap}.chart-cell svg,.chart-cell .num{vertical-align:middle}.chart-cell .num{margin-left:8px}
svg.chart rect{fill:#3e7bfa}svg.chart line{stroke:#cbd2d9;stroke-width:1}
"""
