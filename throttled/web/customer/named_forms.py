"""The named throttles on the customer page — pure HTML: the table of the portal's named
throttles with their actions, and the create/edit form (re-shown with the submitted values
and the first bad field's message when ``ingest/inputs.py: parse_named_throttle`` refuses it).

Form fields are those the parser reads: ``slug`` (create only), ``display_name``,
``max_throughput``, ``time_period``, ``time_unit``, ``mode``, ``release_days``,
``release_hours``, ``time_zone``.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from urllib.parse import quote

from throttled.db.named_throttles import NamedThrottle
from throttled.throttle.business_hours import DAY_NAMES
from throttled.throttle.policy import hours_of, step_of
from throttled.throttle.rate import UNIT_SECONDS
from throttled.throttle.step import MODES
from throttled.web.customer.render import csrf_field, post_button, queue_url
from throttled.web.customer.views import PortalPage

#: The state changes a customer may make to a named throttle, with the button's words.
STATE_ACTIONS = {"activate": "Activate", "deactivate": "Deactivate", "delete": "Delete"}
#: Defaults of a new named throttle's form.
NEW_VALUES = {"time_period": "1", "time_unit": "hours", "mode": "burst"}
_FIELDS = [
    ("display_name", "Name", "text", "What your workflows' editors see in the step's dropdown."),
    ("max_throughput", "Records", "number", "How many records may go on per period."),
    ("time_period", "Per", "number", ""),
    ("time_unit", "Unit", "select", ""),
    ("mode", "Mode", "select", "burst: up to the limit at once; smooth: spread over the period."),
    ("release_days", "Release days", "text", "Optional, e.g. mon-fri or mon,wed,fri."),
    ("release_hours", "Release hours", "text", "Optional, e.g. 09:00-17:30."),
    ("time_zone", "Time zone", "text", "For the release window, e.g. Europe/Berlin (default UTC)."),
]
_SLUG = ("slug", "Identifier", "text", "1-64 letters, digits, _ . or -; fixed once created.")


def named_section(page: PortalPage, csrf: str) -> str:
    """The named-throttles section of ``GET /app``."""
    rows = "".join(_row(n, page, csrf) for n in page.named)
    table = (f"<table><thead><tr><th>Name</th><th>Settings</th><th>State</th><th>Held</th><th>Actions</th></tr></thead>"
             f"<tbody>{rows}</tbody></table>") if rows else (
        '<p class="muted">No named throttle yet. Steps that pick the same named throttle share one limit.</p>')
    return ('<section id="named"><h1>Named throttles</h1><p class="muted">Shared limits your workflows\' Throttle '
            'steps can pick by name; a change applies at once, also to records already held.</p>'
            f'{table}<p><a class="button" href="/app/throttles/new">New named throttle</a></p></section>')


def named_form(csrf: str, values: Mapping[str, str], *, slug: str | None = None,
               error: tuple[str, str] | None = None) -> str:
    """The create (``slug`` ``None``) or edit form's body, filled with ``values``; ``error``:
    ``(field, message)`` shown at that field (or above the form for an unknown field)."""
    fields = ([] if slug is not None else [_SLUG]) + _FIELDS
    known = {f[0] for f in fields}
    top = (f'<p class="error-text">{escape(error[0])}: {escape(error[1])}</p>'
           if error is not None and error[0] not in known else "")
    inputs = "".join(_field(f, values.get(f[0], ""), error) for f in fields)
    action = "/app/throttles" if slug is None else f"/app/throttles/{quote(slug, safe='')}"
    title = "New named throttle" if slug is None else f"Edit “{values.get('display_name') or slug}”"
    fixed = f'<p class="id">identifier: {escape(slug)}</p>' if slug is not None else ""
    return (f'<p><a href="/app#named">← All throttles</a></p><section class="card narrow"><h1>{escape(title)}</h1>{fixed}'
            f'{top}<form method="post" action="{escape(action)}" class="named">{csrf_field(csrf)}{inputs}'
            f'<button type="submit" class="primary">{"Create" if slug is None else "Save"}</button></form></section>')


def form_values(named: NamedThrottle) -> dict[str, str]:
    """A stored named throttle as the form's field values."""
    hours = hours_of(named)
    values = {"slug": named.slug, "display_name": named.display_name, "max_throughput": str(named.max_throughput),
              "time_period": str(named.time_period), "time_unit": named.time_unit, "mode": named.mode}
    if hours is not None:
        values |= {"release_days": ",".join(DAY_NAMES[d] for d in sorted(hours.days)),
                   "release_hours": f"{_clock(hours.start_minute)}-{_clock(hours.end_minute)}",
                   "time_zone": hours.time_zone}
    return values


def _row(n: NamedThrottle, page: PortalPage, csrf: str) -> str:
    slug_url = f"/app/throttles/{quote(n.slug, safe='')}"
    queue = page.queue_of(n.slug)
    held = f'<a href="{queue_url(queue.queue_id)}">{queue.overview.backlog}</a>' if queue is not None else "0"
    toggle = "deactivate" if n.active else "activate"
    buttons = (f'<a class="button" href="{escape(slug_url)}">Edit</a>'
               f"{post_button(f'{slug_url}/{toggle}', STATE_ACTIONS[toggle], csrf)}"
               f"{post_button(f'{slug_url}/delete', STATE_ACTIONS['delete'], csrf, kind='danger')}")
    state = "active" if n.active else "inactive"
    return (f'<tr data-slug="{escape(n.slug)}"><td data-label="Name"><strong>{escape(n.display_name)}</strong>'
            f'<div class="id">{escape(n.slug)}</div></td>'
            f'<td data-label="Settings">{escape(step_of(n).describe())}</td>'
            f'<td data-label="State"><span class="badge {state}">{state}</span></td>'
            f'<td data-label="Held">{held}</td><td data-label="Actions"><div class="actions">{buttons}</div></td></tr>')


def _field(spec: tuple[str, str, str, str], value: str, error: tuple[str, str] | None) -> str:
    name, label, kind, hint = spec
    wrong = error is not None and error[0] == name
    if kind == "select":
        options = tuple(UNIT_SECONDS) if name == "time_unit" else MODES
        choices = "".join(f'<option value="{escape(o)}"{" selected" if o == value else ""}>{escape(o)}</option>'
                          for o in options)
        control = f'<select id="{name}" name="{name}">{choices}</select>'
    else:
        extra = ' min="1" inputmode="numeric"' if kind == "number" else ""
        control = f'<input id="{name}" name="{name}" type="{kind}" value="{escape(value)}"{extra}>'
    message = f'<div class="error-text">{escape(error[1])}</div>' if wrong and error is not None else ""
    note = f'<div class="hint">{escape(hint)}</div>' if hint else ""
    label_html = f'<label for="{name}">{escape(label)}</label>'
    return f'<div class="field{" error" if wrong else ""}">{label_html}{control}{message}{note}</div>'


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"
