"""Parse and validate a HubSpot action-execution request body — pure.

Shapes from ``../shared/docs/hubspot-protocol.md`` §1: numbers in ``inputFields`` may arrive
as strings or JSON numbers; unknown fields are ignored. Every rejection is an
:class:`InvalidInput` naming the field, which the web layer turns into a 400.

Which workflow step an enrollment belongs to (its queue) — in this order:

1. ``context.actionId``, the step's id, when HubSpot sends it (seen live and in the spec's
   ``WorkflowsRequestContext``, but not in the documented sample).
2. Else the callback id: documented as ``ap-<portal>-<n>-<n>-<n>``; the completion API's
   ``requestContext`` names an ``actionId``, an ``enrollmentId`` and an
   ``actionExecutionIndex``, and the documented samples (``ap-102670506-56777914962-11-0`` and
   ``ap-102670506-56776413549-7-0``, one workflow, two steps) differ in the second number per
   execution and in the third per step: so ``ap-{portal}-{enrollment}-{actionId}-{index}``
   [inferred, not stated by HubSpot]. The third number is the step when the first is the
   portal.
3. Else nothing identifies the step: the queue is keyed on the action definition plus a hash
   of the step's settings (rate, mode, business hours), so two steps with different settings
   never share a queue (steps with the same settings do — the one case that cannot be told
   apart). :attr:`Enrollment.step_source` says which rule applied; the web layer logs the
   third once per workflow.

The original app fell back to ``origin.actionDefinitionId`` alone — the same for every use of
our action — so two throttle steps of one workflow shared a queue whose rate flipped with
each webhook.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from throttled.ids import MAX_ID
from throttled.ingest.inputs import InvalidInput, parse_inputs, parse_int
from throttled.throttle.queue_ids import QueueId, shared_queue, step_queue
from throttled.throttle.step import StepSettings

MAX_CALLBACK_ID_LENGTH = 255
_NOT_IN_A_PATH = frozenset("/\\?#")
#: ``ap-{portal}-{enrollment}-{actionId}-{index}`` (see the module docstring).
_CALLBACK_ID = re.compile(r"^ap-(\d{1,19})-(\d{1,19})-(\d{1,19})-(\d{1,19})$")

__all__ = ["Enrollment", "InvalidInput", "parse_enrollment"]


@dataclass(frozen=True, slots=True)
class Enrollment:
    """One enrolled record to hold: what the batcher stores.

    ``input_fields`` keeps the step's inputs as sent (for later steps and operators).
    """

    callback_id: str
    portal_id: int
    workflow_id: int
    action_id: int
    object_type: str | None
    object_id: str | None
    step: StepSettings | None  # None: the named throttle of shared_name must supply it
    shared_name: str | None
    priority: int
    not_before: dt.datetime | None
    input_fields: dict[str, Any]
    lane: int = 0                  # 0, or the settings hash of a step nothing identifies
    step_source: str = "actionId"  # actionId, callbackId or settings (module docstring)
    partition_key: str | None = None  # the limit holds per distinct value (None: the one partition)

    @property
    def queue_id(self) -> QueueId:
        """The queue this enrollment waits in: its step's, or the shared one it names — or,
        with a partition key, that queue's partition (``throttle/queue_ids.py``)."""
        if self.shared_name is not None:
            base = shared_queue(self.portal_id, self.shared_name)
        else:
            base = step_queue(self.portal_id, self.workflow_id, self.action_id, self.lane)
        return base.partitioned(self.partition_key)


def parse_enrollment(body: bytes) -> Enrollment:
    """Parse a raw request body into an :class:`Enrollment`.

    Raises:
        InvalidInput: bad JSON, or a missing or invalid field (named in ``field``).
    """
    try:
        data = json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InvalidInput("body", "not valid JSON") from None
    except ValueError:  # NaN/Infinity, or an integer too long to convert (Python's digit limit)
        raise InvalidInput("body", "not valid JSON (NaN, Infinity or an over-long number)") from None
    if not isinstance(data, dict):
        raise InvalidInput("body", "must be a JSON object")
    problem = _unstorable(data)  # checked here, so one bad body cannot fail a whole batch
    if problem:
        raise InvalidInput("body", problem)
    callback_id = _callback_id(data.get("callbackId"))
    origin = _object(data, "origin")
    context = _object(data, "context", required=False)
    obj = _object(data, "object", required=False)
    inputs = data.get("inputFields")
    if inputs is None:
        inputs = data.get("fields")  # live captures carry a copy under "fields"
    if not isinstance(inputs, dict):
        raise InvalidInput("inputFields", "must be an object")
    portal_id = parse_int(origin.get("portalId"), "origin.portalId", minimum=1)
    parsed = parse_inputs(inputs)
    action_id, lane, source = _step(callback_id, portal_id, context, origin, parsed.step)
    return Enrollment(
        callback_id=callback_id,
        portal_id=portal_id,
        workflow_id=parse_int(context.get("workflowId", 0), "context.workflowId", minimum=0),
        action_id=action_id,
        lane=lane,
        step_source=source,
        object_type=_optional_str(obj.get("objectType")),
        object_id=_optional_str(obj.get("objectId")),
        step=parsed.step,
        shared_name=parsed.shared_name,
        priority=parsed.priority,
        not_before=parsed.not_before,
        input_fields=inputs,
        partition_key=parsed.partition_key,
    )


def _step(callback_id: str, portal_id: int, context: dict[str, Any], origin: dict[str, Any],
          step: StepSettings | None) -> tuple[int, int, str]:
    """``(action_id, lane, source)`` of the step (module docstring)."""
    if context.get("actionId") is not None:
        return parse_int(context["actionId"], "context.actionId", minimum=0), 0, "actionId"
    match = _CALLBACK_ID.match(callback_id)
    if match and int(match[1]) == portal_id and int(match[3]) <= MAX_ID:
        return int(match[3]), 0, "callbackId"
    definition = parse_int(origin.get("actionDefinitionId"), "origin.actionDefinitionId", minimum=0)
    return definition, settings_lane(step) if step else 0, "settings"


def settings_lane(step: StepSettings) -> int:
    """A stable number in 1..2^31-1 for a step's settings (rate, mode, business hours), so steps
    nothing else tells apart get different queues when their settings differ."""
    window = step.hours
    key = json.dumps([step.max_throughput, step.time_period, step.time_unit, step.mode,
                      sorted(window.days) if window else None, window.start_minute if window else None,
                      window.end_minute if window else None, window.time_zone if window else None])
    return 1 + int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % (2**31 - 2)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # PostgreSQL jsonb refuses NaN and Infinity


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent; ``1e999`` overflows to infinity, which
    jsonb refuses (a trial found it failing the group commit with a 500, retried for days)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number too large for a float is not storable")
    return value


def _unstorable(value: Any) -> str | None:
    """Why PostgreSQL could not store ``value`` as text or jsonb — a NUL character, or an
    unpaired UTF-16 surrogate (``"\\ud800"`` parses in Python but is not UTF-8) — or None.

    Iterative, so any nesting the JSON parser accepted is walked without a RecursionError.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "must not contain the NUL character"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "must not contain unpaired Unicode surrogates"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _callback_id(value: Any) -> str:
    if value is None:
        raise InvalidInput("callbackId", "is required")
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("callbackId", "must be a non-empty string")
    if len(value) > MAX_CALLBACK_ID_LENGTH or not value.isprintable():
        raise InvalidInput("callbackId", "must be at most 255 printable characters")
    if any(c in _NOT_IN_A_PATH for c in value):
        # A lone callback is completed at …/callbacks/{callbackId}/complete: an id with a slash
        # (or a backslash, a ?, a #) cannot travel in that path — routers decode %2F — and
        # HubSpot's ids (ap-<portal>-<n>-<n>-<n>) never hold one (a new-user trial: such an id
        # got a 404 that read as "API path retired" and held the whole portal).
        raise InvalidInput("callbackId", "must not contain '/', '\\', '?' or '#'")
    return value


def _object(data: dict[str, Any], name: str, required: bool = True) -> dict[str, Any]:
    value = data.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(name, "must be an object")
    return value


def _optional_str(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)[:255]
