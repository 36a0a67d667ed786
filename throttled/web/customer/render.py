"""The customer page's HTML — pure: views in, one document out.

One small inline stylesheet (:data:`CSS`), no scripts, no external assets; every value goes
through :func:`html.escape`. Mobile first: queue cards in a grid that is one column on a
phone (390 px) and three or four at 1,400 px; the named-throttle table becomes one card per
row below 700 px. Every form posts the session's CSRF token in the hidden
:data:`~throttled.web.customer.session.CSRF_FIELD`. Times are shown in UTC.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from urllib.parse import quote

from throttled.states import QueueState
from throttled.throttle.policy import hours_of
from throttled.web.charts import bar_chart, minute_chart
from throttled.web.customer.session import CSRF_FIELD
from throttled.web.customer.views import Forecast, PortalPage, QueueView

#: The queue actions a customer may take, with the button's words and its explanation.
ACTIONS = {
    "pause": ("Pause", "Stop releasing; held records keep their place (their blocks keep running)."),
    "resume": ("Resume", "Release again at the throttle's rate."),
    "drain": ("Drain", "Release everything held now, ignoring the rate and the release window."),
}


def document(title: str, body: str, *, portal_id: int | None = None, csrf: str | None = None) -> str:
    """A whole page: ``title``, a header (with the account and a sign-out button when signed
    in) and ``body`` (HTML, already escaped)."""
    account = ""
    if portal_id is not None and csrf is not None:
        account = (f'<span class="muted">HubSpot account {portal_id}</span>'
                   f'{post_button("/app/logout", "Sign out", csrf, kind="link")}')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · Throttle</title>
<style>{CSS}</style></head>
<body><header><a class="brand" href="/app">Throttle</a><div class="account">{account}</div></header>
<main>{body}</main></body></html>
"""


def sign_in_page() -> str:
    """``GET /app`` without a session."""
    return document("Sign in", '<section class="card narrow"><h1>Your throttles</h1>'
                    "<p>See and steer the throttles of your HubSpot account: what is held, when it goes, "
                    "pause, resume or drain a queue, and manage your named throttles.</p>"
                    '<p><a class="button" href="/app/login">Sign in with HubSpot</a></p>'
                    '<p class="muted">You will be asked to choose the HubSpot account. Nothing is changed by '
                    "signing in.</p></section>")


def message_page(title: str, text: str, *, portal_id: int | None = None, csrf: str | None = None) -> str:
    """A short page saying ``title`` and ``text`` (a 403, a 404), with the way back."""
    return document(title, f'<section class="card narrow"><h1>{escape(title)}</h1><p>{escape(text)}</p>'
                    '<p><a href="/app">Back to your throttles</a></p></section>', portal_id=portal_id, csrf=csrf)


def portal_page(page: PortalPage, csrf: str, named_section: str) -> str:
    """``GET /app``: the account's state, a card per queue, then ``named_section`` (HTML)."""
    banner = ""
    if page.availability is not None and page.availability[0] != "active":
        banner = (f'<p class="warn card">The app is {escape(page.availability[0])} on this account: nothing is '
                  'released until it is <a href="/api/oauth/install">installed again</a>.</p>')
    held = sum(v.overview.backlog for v in page.queues)
    cards = "".join(queue_card(v, page.now, csrf) for v in page.queues) or (
        '<p class="muted">No throttle has held a record yet: a queue appears with the first record a '
        "workflow's Throttle step enrolls.</p>")
    summary = f"{len(page.queues)} throttle queue{'' if len(page.queues) == 1 else 's'} · {held} held now"
    return document("Your throttles", f"{banner}<h1>Your throttles</h1>"
                    f'<p class="muted">{escape(summary)} · as of {_time(page.now)}</p>'
                    f'<div class="cards">{cards}</div>{named_section}', portal_id=page.portal_id, csrf=csrf)


def queue_page(view: QueueView, now: dt.datetime, csrf: str) -> str:
    """``GET /app/queues/<id>``: the queue's card and every state's count."""
    counts = view.overview.counts
    rows = "".join(f"<dt>{escape(state)}</dt><dd>{n}</dd>" for state, n in sorted(counts.items()))
    body = (f'<p><a href="/app">← All throttles</a></p>{queue_card(view, now, csrf, detail=True)}'
            f'<section class="card"><h2>Records by state</h2><dl>{rows or "<dt>none</dt><dd>0</dd>"}</dl>'
            '<p class="muted">Finished records are kept for a week.</p></section>')
    return document(view.title, body, portal_id=view.overview.queue.portal_id, csrf=csrf)


def queue_card(view: QueueView, now: dt.datetime, csrf: str, *, detail: bool = False) -> str:
    """One queue: name, rate, window, state in words, backlog, charts, forecast, last failure,
    actions (and a link to its page unless ``detail``)."""
    o = view.overview
    q = o.queue
    limit, period, unit, overridden = o.rate
    rate = f"{limit} per {unit.removesuffix('s') if period == 1 else f'{period} {unit}'}, {o.mode}"
    rate += " (set by the operator)" if overridden else ""
    hours = hours_of(q)
    window = hours.describe() if hours else "any time"
    label, words = state_words(view, now)
    link = "" if detail else f'<a class="more" href="{queue_url(q.queue_id)}">Details</a>'
    failure = (f'<p class="failure">Last failure: {escape(q.last_failure_reason)}</p>'
               if q.last_failure_reason else "")
    warnings = "".join(f'<p class="warn">{escape(w)}</p>' for w in o.warnings)
    return f"""<article class="card queue" id="{escape(q.queue_id)}">
<h2>{escape(view.title)}</h2><p class="id">{escape(q.queue_id)}</p>
<p><span class="badge {escape(q.state)}">{escape(label)}</span> {escape(words)}</p>
<dl><dt>Rate</dt><dd>{escape(rate)}</dd><dt>Releases</dt><dd>{escape(window)}</dd>
<dt>Held</dt><dd class="held">{o.counts.get("pending", 0)}</dd><dt>Being sent</dt><dd>{o.counts.get("releasing", 0)}</dd></dl>
{charts(view, now)}
<p class="forecast">{escape(forecast_words(view.forecast, o.stopped, now))}</p>{_too_late(view.forecast)}
{warnings}{failure}<div class="actions">{actions(view, csrf)}{link}</div></article>"""


def charts(view: QueueView, now: dt.datetime) -> str:
    """Releases over the last hour (per minute) and the last day (per hour)."""
    # The day's last bar is the last 60 minutes (``views.per_hour``), ending with the current minute.
    day_first = now.astimezone(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=60 * len(view.hours) - 1)
    day = bar_chart(view.hours, day_first, dt.timedelta(hours=1), unit="hour", bar_w=10)
    return (f'<div class="charts"><figure>{minute_chart(view.minutes, now)}'
            f"<figcaption>{sum(view.minutes)} released in the last hour</figcaption></figure>"
            f"<figure>{day}<figcaption>{sum(view.hours)} released in the last day</figcaption></figure></div>")


def state_words(view: QueueView, now: dt.datetime) -> tuple[str, str]:
    """The queue's state as a badge label and a sentence."""
    o = view.overview
    q = o.queue
    if o.portal_held:
        return "Stopped", f"HubSpot refuses this account for now — {o.portal_held}."
    if q.state == QueueState.PAUSED:
        return "Paused", "Nothing is released until you resume it."
    if q.state == QueueState.DRAINING:
        return "Draining", "Everything held is being released now, ignoring the rate."
    if q.state == QueueState.ON_HOLD:
        until = f" until {_when(q.on_hold_until)}" if q.on_hold_until else ""
        return "On hold", (f"HubSpot failed {q.consecutive_failures} times in a row, so releases wait{until}; "
                           "resume to try at once.")
    hours = hours_of(q)
    if hours is not None and not hours.is_open(now):
        return "Active", f"Outside its release hours: releasing again from {_when(hours.next_open(now))}."
    return "Active", "Releasing at its rate."


def forecast_words(f: Forecast, stopped: bool, now: dt.datetime) -> str:
    """The forecast as one sentence."""
    if not f.held:
        return "Nothing is held: a new record goes at the next free slot."
    records = "the one held record" if f.held == 1 else f"the last of the {f.held} held records"
    if f.partitions > 1:
        some = "" if f.complete else "the fullest "
        records += f" (in {some}{f.partitions} partitions, each with its own limit)"
    if f.draining:
        return f"Draining: {records} goes now."
    lead = "If resumed now, at" if stopped else "At"
    if f.last_release is None:
        return f"{lead} this rate {records} would not be released before {_when(f.until)}."
    return (f"{lead} this rate and release window, {records} is forecast to go by {_when(f.last_release)} "
            f"({_in(f.last_release - now)}).")


def actions(view: QueueView, csrf: str) -> str:
    """Pause / resume / drain buttons, those that change something in the queue's state."""
    state = view.overview.queue.state
    offered = [a for a, hidden in (("pause", state == QueueState.PAUSED), ("resume", state == QueueState.ACTIVE),
                                   ("drain", state == QueueState.DRAINING)) if not hidden]
    return "".join(post_button(f"{queue_url(view.queue_id)}/{a}", ACTIONS[a][0], csrf, title=ACTIONS[a][1])
                   for a in offered)


def post_button(action: str, label: str, csrf: str, *, title: str = "", kind: str = "") -> str:
    """A one-button form posting the CSRF token to ``action``."""
    tip = f' title="{escape(title)}"' if title else ""
    return (f'<form method="post" action="{escape(action)}" class="inline">{csrf_field(csrf)}'
            f'<button type="submit" class="{escape(kind)}"{tip}>{escape(label)}</button></form>')


def csrf_field(csrf: str) -> str:
    """The hidden input carrying the session's CSRF token."""
    return f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf)}">'


def queue_url(queue_id: str) -> str:
    """The queue's page, ``/app/queues/<id>`` (the id percent-encoded)."""
    return "/app/queues/" + quote(queue_id, safe="")


def _too_late(f: Forecast) -> str:
    if not f.too_late or f.blocks_end is None:
        return ""
    if f.partitions > 1:
        return ("<p class=\"warn\">In some partitions, records will still be held when HubSpot's hold on them ends: "
                "they go on through the workflow without being throttled. Raise the rate or drain the queue.</p>")
    return (f'<p class="warn">HubSpot holds these records only until {_when(f.blocks_end)}: any still held then '
            "goes on through the workflow without being throttled. Raise the rate or drain the queue.</p>")


def _when(t: dt.datetime | None) -> str:
    return f"{t.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC" if t else ""


def _time(t: dt.datetime) -> str:
    return escape(f"{t.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC")


def _in(delta: dt.timedelta) -> str:
    minutes = max(0, round(delta.total_seconds() / 60))
    if minutes < 1:
        return "now"
    if minutes < 120:
        return f"in {minutes} min"
    hours = minutes // 60
    return f"in {hours} h" if hours < 48 else f"in {hours // 24} days"


CSS = """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2933;background:#f5f7fa}
header{display:flex;flex-wrap:wrap;gap:8px;align-items:center;justify-content:space-between;padding:10px 16px;
background:#fff;border-bottom:1px solid #e4e7eb}
.brand{font-weight:700;font-size:18px;color:#1f2933;text-decoration:none}.account{display:flex;gap:10px;align-items:center}
main{max-width:1400px;margin:0 auto;padding:16px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:17px;margin:0 0 2px;overflow-wrap:anywhere}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(330px,100%),1fr));gap:16px;margin:16px 0 28px}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px #0002;padding:14px 16px;min-width:0}
.narrow{max-width:560px;margin:24px auto}
.id{font:12px ui-monospace,Menlo,monospace;color:#7b8794;margin:0 0 8px;overflow-wrap:anywhere}
dl{display:grid;grid-template-columns:auto 1fr;gap:2px 12px;margin:8px 0}dt{color:#52606d}dd{margin:0;overflow-wrap:anywhere}
.muted{color:#7b8794;font-size:13px}.warn{color:#8a4b00;font-weight:600;font-size:14px}
.failure{color:#ab091e;font-size:14px;overflow-wrap:anywhere}.forecast{margin:8px 0}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-size:13px;font-weight:600;background:#e4e7eb}
.active{background:#d6f5e3;color:#0e6027}.paused,.inactive{background:#fff3c4;color:#8d5b00}
.on_hold{background:#ffe3e3;color:#ab091e}.draining{background:#dceefb;color:#0b4f8a}
.charts{display:flex;flex-wrap:wrap;gap:8px 20px}figure{margin:4px 0}figcaption{font-size:12px;color:#7b8794}
svg.chart rect{fill:#3e7bfa}svg.chart line{stroke:#cbd2d9;stroke-width:1}
.actions{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin-top:10px}.more{margin-left:auto}
form.inline{display:inline;margin:0}
button,.button{font:inherit;font-size:14px;padding:6px 14px;border-radius:6px;border:1px solid #3e7bfa;background:#fff;
color:#1d4ed8;cursor:pointer;text-decoration:none;display:inline-block}
button.primary,.button{background:#3e7bfa;color:#fff}button.link{border:0;padding:0;background:none;text-decoration:underline}
button.danger{border-color:#ab091e;color:#ab091e}
table{border-collapse:collapse;width:100%;background:#fff;border-radius:8px;box-shadow:0 1px 3px #0002}
th,td{padding:8px 10px;border-bottom:1px solid #e4e7eb;text-align:left;vertical-align:top}
th{background:#eef1f4;font-size:12px;text-transform:uppercase;letter-spacing:.03em;color:#52606d}
td .actions{margin:0}
.field{margin:0 0 12px}.field label{display:block;font-weight:600;font-size:14px;margin-bottom:2px}
.field input,.field select{font:inherit;width:100%;max-width:420px;padding:6px 8px;border:1px solid #cbd2d9;border-radius:6px}
.field .hint{font-size:12px;color:#7b8794}.field.error input,.field.error select{border-color:#ab091e}
.error-text{color:#ab091e;font-size:13px;font-weight:600}
@media (max-width:700px){
 main{padding:12px}table,thead,tbody,tr,td{display:block}thead{display:none}
 tr{margin:0 0 12px;border-radius:8px;box-shadow:0 1px 3px #0002;background:#fff}
 td{border:0;padding:4px 12px}td:first-child{padding-top:10px}td:last-child{padding-bottom:12px}
 td[data-label]::before{content:attr(data-label);display:block;font-size:11px;text-transform:uppercase;color:#7b8794}
 table{box-shadow:none;background:none}
}
"""
