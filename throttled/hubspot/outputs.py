"""What we tell HubSpot about an execution: the one owner of the output fields.

Protocol notes §2 and §5: a completion (and a synchronous answer to the webhook) carries
``outputFields``, a map of strings whose ``hs_execution_state`` says how the action ended
(``SUCCESS``, ``FAIL_CONTINUE``) or that it is held (``BLOCK``, with
``hs_expiration_duration``, ISO-8601). A completion also needs ``typedOutputs`` (send ``{}``).
"""

from __future__ import annotations

from typing import Any


def completion() -> dict[str, Any]:
    """The body of one callback completion: released, the workflow goes on."""
    return {"outputFields": {"hs_execution_state": "SUCCESS"}, "typedOutputs": {}}


def block(expiration: str) -> dict[str, Any]:
    """The answer to a webhook whose record we hold: ``BLOCK`` for up to ``expiration``."""
    return {"outputFields": {"hs_execution_state": "BLOCK", "hs_expiration_duration": expiration}}


def already_completed() -> dict[str, Any]:
    """The answer to a webhook HubSpot sent again after we completed its callback: what the
    completion said (the execution is done), not a second hold."""
    return {"outputFields": dict(completion()["outputFields"])}


def ended_unreleased(state: str) -> dict[str, Any]:
    """The answer to a webhook HubSpot sent again for an execution that ended without a
    release (``failed``: HubSpot refused its completion; ``expired``: its block ran out): the
    action failed and the workflow goes on — a new hold would never be released."""
    return {"outputFields": {"hs_execution_state": "FAIL_CONTINUE", "throttle_outcome": state}}
