"""What we tell HubSpot about an execution: the one owner of the output fields.

Protocol notes §2 and §5: a completion (and a synchronous answer to the webhook) carries
``outputFields``, a map of strings whose ``hs_execution_state`` says how the action ended
(``SUCCESS``, ``FAIL_CONTINUE``) or that it is held (``BLOCK``, with
``hs_expiration_duration``, ISO-8601). A completion also needs ``typedOutputs`` (send ``{}``).

A release also tells later steps how it went, in outputs the action definition declares:
``held_seconds`` (whole seconds from our receipt of the webhook to the completion call),
``released_at`` (when the completion call started, ISO-8601 UTC, e.g.
``2026-11-30T19:10:00Z``) and ``position_on_arrival`` (the record's place in its queue when it
arrived, 1 = next to go; left out for records stored before it was kept). A workflow can
branch on them ("held more than a day"). Values are strings, as ``outputFields`` requires.

An action that ends without a release also says why, in two outputs the action definition
declares (``action_definition.json``, §8): ``throttle_outcome`` for later workflow steps to
branch on, and ``errorCode``, which the definition's ``executionRules`` match to show a
sentence in the record's workflow history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

#: ``throttle_outcome`` → ``errorCode`` of an action that ended without a release; the
#: action definition declares both fields and one execution rule per code.
ERROR_CODES = {"failed": "COMPLETION_REFUSED", "expired": "BLOCK_EXPIRED", "queue_too_long": "QUEUE_TOO_LONG",
               "release_after_too_late": "RELEASE_AFTER_TOO_LATE", "throttle_inactive": "THROTTLE_INACTIVE",
               "throttle_deleted": "THROTTLE_DELETED", "throttle_unknown": "THROTTLE_UNKNOWN"}


#: The outputs of a release, as the action definition declares them.
RELEASE_OUTPUTS = ("held_seconds", "released_at", "position_on_arrival")


def completion(fields: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The body of one callback completion: released, the workflow goes on; ``fields`` are
    the release's outputs (:func:`release_fields`)."""
    return {"outputFields": {"hs_execution_state": "SUCCESS", **(fields or {})}, "typedOutputs": {}}


def release_fields(received_at: dt.datetime | None, released_at: dt.datetime,
                   arrival_position: int | None) -> dict[str, str]:
    """The outputs of a release sent at ``released_at`` (aware) for a record received at
    ``received_at`` (aware; ``None``: unknown, only ``released_at`` is given) that stood
    ``arrival_position`` in line on arrival: ``{"held_seconds", "released_at",
    "position_on_arrival"}`` as strings."""
    fields = {"released_at": released_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if received_at is not None:
        fields["held_seconds"] = str(max(0, int((released_at - received_at).total_seconds())))
    if arrival_position is not None:
        fields["position_on_arrival"] = str(arrival_position)
    return fields


def block(expires_in: dt.timedelta) -> dict[str, Any]:
    """The answer to a webhook whose record we hold: ``BLOCK`` for up to ``expires_in``
    (whole seconds, rounded up)."""
    return {"outputFields": {"hs_execution_state": "BLOCK", "hs_expiration_duration": iso_duration(expires_in)}}


def iso_duration(span: dt.timedelta) -> str:
    """``span`` as an ISO-8601 duration of days, hours, minutes and seconds, e.g. ``P14DT2H5S``
    (rounded up to the second; at least ``PT1S``). Days and clock units only: the form
    ``java.time.Duration`` also parses (weeks, months and years are not fixed or not taken
    everywhere)."""
    total = max(1, -(-span // dt.timedelta(seconds=1)))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    return "P" + (f"{days}D" if days else "") + (f"T{clock}" if clock else "")


def already_completed(fields: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The answer to a webhook HubSpot sent again after we completed its callback: what the
    completion said (the execution is done, with the same ``fields``), not a second hold."""
    return {"outputFields": dict(completion(fields)["outputFields"])}


def ended_unreleased(state: str) -> dict[str, Any]:
    """The answer to a webhook HubSpot sent again for an execution that ended without a
    release (``failed``: HubSpot refused its completion; ``expired``: its block ran out): the
    action failed and the workflow goes on — a new hold would never be released."""
    return _ended(state)


def not_held(reason: str) -> dict[str, Any]:
    """The answer to a webhook whose record is not held: no block up to the longest could hold
    it until its forecast release — ``reason`` ``queue_too_long`` (the queue's backlog and
    rate) or ``release_after_too_late`` (its "release no earlier than") — rather than a hold
    that could only expire; or the named throttle its step picked is ``throttle_inactive``,
    ``throttle_deleted``, or unknown with no rate of the step's own (``throttle_unknown``).
    The action fails, the workflow goes on, and the history says why (``errorCode``).

    Raises:
        KeyError: an unknown reason.
    """
    return _ended(reason)


def _ended(outcome: str) -> dict[str, Any]:
    return {"outputFields": {"hs_execution_state": "FAIL_CONTINUE", "throttle_outcome": outcome,
                             "errorCode": ERROR_CODES[outcome]}}
