"""What we tell HubSpot about an execution: the one owner of the output fields.

Protocol notes §2 and §5: a completion (and a synchronous answer to the webhook) carries
``outputFields``, a map of strings whose ``hs_execution_state`` says how the action ended
(``SUCCESS``, ``FAIL_CONTINUE``) or that it is held (``BLOCK``, with
``hs_expiration_duration``, ISO-8601). A completion also needs ``typedOutputs`` (send ``{}``).

An action that ends without a release also says why, in two outputs the action definition
declares (``action_definition.json``, §8): ``throttle_outcome`` for later workflow steps to
branch on, and ``errorCode``, which the definition's ``executionRules`` match to show a
sentence in the record's workflow history.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

#: ``throttle_outcome`` → ``errorCode`` of an action that ended without a release; the
#: action definition declares both fields and one execution rule per code.
ERROR_CODES = {"failed": "COMPLETION_REFUSED", "expired": "BLOCK_EXPIRED", "queue_too_long": "QUEUE_TOO_LONG",
               "release_after_too_late": "RELEASE_AFTER_TOO_LATE"}


def completion() -> dict[str, Any]:
    """The body of one callback completion: released, the workflow goes on."""
    return {"outputFields": {"hs_execution_state": "SUCCESS"}, "typedOutputs": {}}


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


def already_completed() -> dict[str, Any]:
    """The answer to a webhook HubSpot sent again after we completed its callback: what the
    completion said (the execution is done), not a second hold."""
    return {"outputFields": dict(completion()["outputFields"])}


def ended_unreleased(state: str) -> dict[str, Any]:
    """The answer to a webhook HubSpot sent again for an execution that ended without a
    release (``failed``: HubSpot refused its completion; ``expired``: its block ran out): the
    action failed and the workflow goes on — a new hold would never be released."""
    return _ended(state)


def not_held(reason: str) -> dict[str, Any]:
    """The answer to a webhook whose record no block up to the longest could hold until its
    forecast release — ``reason`` ``queue_too_long`` (the queue's backlog and rate) or
    ``release_after_too_late`` (its "release no earlier than"): the action fails and the
    workflow goes on, and the history says why (``errorCode``) — rather than a hold that
    could only expire.

    Raises:
        KeyError: an unknown reason.
    """
    return _ended(reason)


def _ended(outcome: str) -> dict[str, Any]:
    return {"outputFields": {"hs_execution_state": "FAIL_CONTINUE", "throttle_outcome": outcome,
                             "errorCode": ERROR_CODES[outcome]}}
