"""The step's input fields — the throttle's settings — parsed and validated; pure.

Required: ``max_throughput`` (int ≥ 1), ``time_period`` (int ≥ 1), ``time_unit``
(``seconds|minutes|hours|days|weeks``) — unless ``shared_queue`` names a throttle, whose
named settings (``db/named_throttles.py``) then apply; given together with one, they are
checked and then overruled by its settings. Optional (names fixed by the team's payload
samples): ``mode`` (``burst`` | ``smooth``), ``shared_queue`` (a name shared by several
steps of a portal), ``release_days`` / ``release_hours`` / ``time_zone`` (a release
window), ``priority`` (0–9, higher first, or HubSpot's priority words:
:data:`PRIORITY_WORDS`), and ``release_after`` (release no earlier than:
ISO-8601 with an offset, or Unix epoch milliseconds as HubSpot sends datetime values), and
``partition_key`` (typically a record property such as the owner's id: the limit then
holds per distinct value — any text or number, compared after trimming its ends; blank =
the one shared partition; only the first :data:`MAX_PARTITION_KEY` characters are kept for
display, the whole value tells partitions apart).
Numbers may arrive as strings or JSON numbers (protocol notes §1).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, overload

from throttled.ids import MAX_ID
from throttled.throttle.business_hours import HoursError, parse_business_hours
from throttled.throttle.queue_ids import shared_queue
from throttled.throttle.rate import UNIT_SECONDS
from throttled.throttle.step import MODES, StepSettings

TIME_UNITS = tuple(UNIT_SECONDS)
MAX_THROUGHPUT = 1_000_000
MAX_PERIOD_SECONDS = 366 * 86400
MAX_PRIORITY = 9
#: HubSpot's priority property values (tasks' ``hs_task_priority``: NONE, LOW, MEDIUM, HIGH;
#: tickets' ``hs_ticket_priority`` adds URGENT), case-insensitive, so a step can take its
#: priority from a record (``{{task.hs_task_priority}}``). Spread over 0–9 with room between
#: them for numeric priorities to sit in.
PRIORITY_WORDS = {"none": 0, "low": 2, "medium": 5, "high": 7, "urgent": 9}
MAX_PARTITION_KEY = 255


class InvalidInput(Exception):
    """An input is not acceptable. ``field`` is its dotted path (``inputFields.time_unit``)
    or ``body``; the web layer answers 400 naming it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class ExecutionInputs:
    """Everything the inputs say: the step's settings (``None``: none given, the named
    throttle of ``shared_name`` must supply them) plus this execution's own."""

    step: StepSettings | None
    shared_name: str | None
    priority: int
    not_before: dt.datetime | None
    partition_key: str | None = None


def parse_inputs(inputs: Mapping[str, Any]) -> ExecutionInputs:
    """Validate a step's ``inputFields``.

    Raises:
        InvalidInput: naming the first bad field.
    """
    shared_name = _shared_name(inputs.get("shared_queue"))
    rate_given = any(not _blank(inputs.get(k)) for k in _RATE_FIELDS)
    return ExecutionInputs(
        step=parse_settings(inputs, "inputFields.") if rate_given or shared_name is None else None,
        shared_name=shared_name,
        priority=_priority(inputs.get("priority")),
        not_before=_timestamp(inputs.get("release_after"), "inputFields.release_after"),
        partition_key=_partition_key(inputs.get("partition_key")),
    )


def _partition_key(value: Any) -> str | None:
    # Any property value is a key: a 400 would fail the record's step in HubSpot with no
    # reason shown, so long or odd values are accepted (the key is hashed into the queue id).
    if _blank(value):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidInput("inputFields.partition_key", "must be a text or a number (e.g. the record owner's id)")
    return str(value).strip()


_RATE_FIELDS = ("max_throughput", "time_period", "time_unit")


def parse_settings(fields: Mapping[str, Any], prefix: str = "") -> StepSettings:
    """A throttle's settings from ``fields`` (a step's inputs, or the customer page's form):
    ``max_throughput``, ``time_period``, ``time_unit`` (required), ``mode``,
    ``release_days``, ``release_hours``, ``time_zone``; ``prefix`` goes before each field
    name in errors (``inputFields.``).

    Raises:
        InvalidInput: naming the first bad field.
    """
    max_throughput = parse_int(fields.get("max_throughput"), f"{prefix}max_throughput", 1, MAX_THROUGHPUT)
    time_period = parse_int(fields.get("time_period"), f"{prefix}time_period", 1, MAX_PERIOD_SECONDS)
    time_unit = _choice(fields.get("time_unit"), f"{prefix}time_unit", TIME_UNITS, required=True)
    if time_period * UNIT_SECONDS[time_unit] > MAX_PERIOD_SECONDS:
        raise InvalidInput(f"{prefix}time_period", "period longer than 366 days")
    mode = _choice(fields.get("mode"), f"{prefix}mode", MODES) or "burst"
    try:
        window = parse_business_hours(fields.get("release_days"), fields.get("release_hours"), fields.get("time_zone"))
    except HoursError as exc:
        raise InvalidInput(prefix + exc.field.removeprefix("inputFields."), exc.message) from None
    return StepSettings(max_throughput, time_period, time_unit, mode, window)


@dataclass(frozen=True, slots=True)
class NamedThrottleInput:
    """A named throttle as the customer's form gives it: ``slug`` (what steps name),
    ``display_name`` (1-100 printable characters) and its settings."""

    slug: str
    display_name: str
    settings: StepSettings


def parse_named_throttle(form: Mapping[str, Any], slug: str | None = None) -> NamedThrottleInput:
    """Validate the customer page's named-throttle form (``slug``, ``display_name`` and the
    fields of :func:`parse_settings`); ``slug`` given: an edit of that one (the form's is
    ignored).

    Raises:
        InvalidInput: naming the first bad field.
    """
    name = form.get("display_name")
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > 100 or not name.isprintable():
        raise InvalidInput("display_name", "1 to 100 printable characters are required")
    if slug is None:
        slug = _shared_name(form.get("slug"), "slug")
        if slug is None:
            raise InvalidInput("slug", "is required")
        if not slug[0].isalnum():  # "." and ".." made links that resolve to other pages
            raise InvalidInput("slug", "must start with a letter or a digit")
    settings = parse_settings(form)
    if settings.hours is None and not _blank(form.get("time_zone")):
        try:  # checked even without release days or hours: a customer's typo is not silently dropped
            parse_business_hours("mon-sun", None, form.get("time_zone"))
        except HoursError as exc:
            raise InvalidInput("time_zone", exc.message) from None
    return NamedThrottleInput(slug, name, settings)


def _priority(value: Any) -> int:
    if _blank(value):
        return 0
    if isinstance(value, str) and value.strip().lower() in PRIORITY_WORDS:
        return PRIORITY_WORDS[value.strip().lower()]
    try:
        return parse_int(value, "inputFields.priority", 0, MAX_PRIORITY)
    except InvalidInput:
        words = ", ".join(w.upper() for w in PRIORITY_WORDS)
        raise InvalidInput("inputFields.priority", f"must be 0 to {MAX_PRIORITY} or one of {words}") from None


def parse_int(value: Any, field: str, minimum: int, maximum: int = MAX_ID) -> int:
    """An integer given as a JSON number or a decimal string ("100", " 7 ", 100.0).

    Raises:
        InvalidInput: missing, not an integer, or outside ``[minimum, maximum]``.
    """
    if value is None:
        raise InvalidInput(field, "is required")
    if isinstance(value, bool):
        raise InvalidInput(field, "must be an integer")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise InvalidInput(field, "must be an integer")
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.lstrip("-").isdigit()) or len(text) > 20:
            raise InvalidInput(field, "must be an integer")
        number = int(text)
    elif isinstance(value, int):
        number = value
    else:
        raise InvalidInput(field, "must be an integer")
    if not minimum <= number <= maximum:
        raise InvalidInput(field, f"must be between {minimum} and {maximum}")
    return number


@overload
def _choice(value: Any, field: str, allowed: tuple[str, ...], required: Literal[True]) -> str: ...
@overload
def _choice(value: Any, field: str, allowed: tuple[str, ...], required: bool = False) -> str | None: ...
def _choice(value: Any, field: str, allowed: tuple[str, ...], required: bool = False) -> str | None:
    if _blank(value):
        if required:
            raise InvalidInput(field, "is required")
        return None
    choice = value.strip().lower() if isinstance(value, str) else None
    if choice not in allowed:
        raise InvalidInput(field, f"must be one of {', '.join(allowed)}")
    return choice


def _shared_name(value: Any, field: str = "inputFields.shared_queue") -> str | None:
    if _blank(value):
        return None
    try:
        return shared_queue(0, value.strip() if isinstance(value, str) else "").shared_name
    except ValueError as exc:
        raise InvalidInput(field, str(exc)) from None


def _timestamp(value: Any, field: str) -> dt.datetime | None:
    if _blank(value):
        return None
    text = str(value).strip()
    try:
        if text.lstrip("-").isdigit():
            moment = dt.datetime.fromtimestamp(int(text) / 1000, dt.UTC)
        else:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise InvalidInput(field, "must be ISO-8601 with a time zone, or epoch milliseconds") from None
    if moment.tzinfo is None:
        raise InvalidInput(field, "must carry a time zone offset (e.g. 2026-01-05T09:00:00+01:00)")
    return moment.astimezone(dt.UTC)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@dataclass(frozen=True, slots=True)
class Override:
    """A validated operator override: the rate (all three or none) and/or the mode."""

    max_throughput: int | None = None
    time_period: int | None = None
    time_unit: str | None = None
    mode: str | None = None


def parse_override(data: Mapping[str, Any]) -> Override:
    """Validate an override body ``{"max_throughput", "time_period", "time_unit", "mode"}``.

    The rate fields come all together or not at all; at least one setting must be given.
    Raises:
        InvalidInput: naming the field (``max_throughput``, …, or ``body``).
    """
    unknown = set(data) - {"max_throughput", "time_period", "time_unit", "mode"}
    if unknown:
        raise InvalidInput(sorted(unknown)[0], "is not an override setting")
    rate_fields = [data.get(k) for k in ("max_throughput", "time_period", "time_unit")]
    mode = _choice(data.get("mode"), "mode", MODES)
    if all(_blank(v) for v in rate_fields):
        if mode is None:
            raise InvalidInput("body", "give max_throughput, time_period and time_unit, and/or mode")
        return Override(mode=mode)
    max_throughput = parse_int(data.get("max_throughput"), "max_throughput", 1, MAX_THROUGHPUT)
    time_period = parse_int(data.get("time_period"), "time_period", 1, MAX_PERIOD_SECONDS)
    time_unit = _choice(data.get("time_unit"), "time_unit", TIME_UNITS, required=True)
    if time_period * UNIT_SECONDS[time_unit] > MAX_PERIOD_SECONDS:
        raise InvalidInput("time_period", "period longer than 366 days")
    return Override(max_throughput, time_period, time_unit, mode)
