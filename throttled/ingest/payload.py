"""Parse and validate a HubSpot action-execution request body — pure.

Shapes from ``../shared/docs/hubspot-protocol.md`` §1: numbers in ``inputFields`` may arrive
as strings or JSON numbers; ``context.actionId`` may be missing (then the step falls back
to ``origin.actionDefinitionId``); unknown fields are ignored. Every rejection is an
:class:`InvalidInput` naming the field, which the web layer turns into a 400.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from throttled.ingest.inputs import InvalidInput, StepSettings, parse_inputs, parse_int
from throttled.throttle.queue_ids import QueueId, shared_queue, step_queue

MAX_CALLBACK_ID_LENGTH = 255

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
    step: StepSettings
    shared_name: str | None
    priority: int
    not_before: dt.datetime | None
    input_fields: dict[str, Any]

    @property
    def queue_id(self) -> QueueId:
        """The queue this enrollment waits in: its step's, or the shared one it names."""
        if self.shared_name is not None:
            return shared_queue(self.portal_id, self.shared_name)
        return step_queue(self.portal_id, self.workflow_id, self.action_id)


def parse_enrollment(body: bytes) -> Enrollment:
    """Parse a raw request body into an :class:`Enrollment`.

    Raises:
        InvalidInput: bad JSON, or a missing or invalid field (named in ``field``).
    """
    try:
        data = json.loads(body, parse_constant=_reject_constant)
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
    action_id = context.get("actionId")
    if action_id is None:
        action_id = origin.get("actionDefinitionId")
        action_field = "origin.actionDefinitionId"
    else:
        action_field = "context.actionId"
    parsed = parse_inputs(inputs)
    return Enrollment(
        callback_id=callback_id,
        portal_id=portal_id,
        workflow_id=parse_int(context.get("workflowId", 0), "context.workflowId", minimum=0),
        action_id=parse_int(action_id, action_field, minimum=0),
        object_type=_optional_str(obj.get("objectType")),
        object_id=_optional_str(obj.get("objectId")),
        step=parsed.step,
        shared_name=parsed.shared_name,
        priority=parsed.priority,
        not_before=parsed.not_before,
        input_fields=inputs,
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # PostgreSQL jsonb refuses NaN and Infinity


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
    return value


def _object(data: dict, name: str, required: bool = True) -> dict:
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
