"""Queue ids in the original app's text form — pure.

``queue:{portal}:{workflow}:{action}:{index}`` for a workflow step (``index`` is 0 unless a
step is split into lanes), ``queue:{portal}:shared:{name}`` for a throttle shared by several
steps (see ``../shared/docs/design.md``, Data).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SHARED_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


@dataclass(frozen=True, slots=True)
class QueueId:
    """A parsed queue id. Exactly one of ``shared_name`` or (workflow, action) is set."""

    portal_id: int
    workflow_id: int | None = None
    action_id: int | None = None
    index: int = 0
    shared_name: str | None = None

    def __str__(self) -> str:
        if self.shared_name is not None:
            return f"queue:{self.portal_id}:shared:{self.shared_name}"
        return f"queue:{self.portal_id}:{self.workflow_id}:{self.action_id}:{self.index}"


def step_queue(portal_id: int, workflow_id: int, action_id: int, index: int = 0) -> QueueId:
    """The queue of one workflow step."""
    return QueueId(portal_id, workflow_id, action_id, index)


def shared_queue(portal_id: int, name: str) -> QueueId:
    """The queue shared by every step of ``portal_id`` that names ``name``.

    Raises:
        ValueError: ``name`` is not 1–64 characters of letters, digits, ``_ . -``.
    """
    if not _SHARED_NAME.match(name):
        raise ValueError("shared queue names are 1-64 letters, digits, '_', '.' or '-'")
    return QueueId(portal_id, shared_name=name)


def parse_queue_id(text: str) -> QueueId:
    """Parse either form back into a :class:`QueueId`.

    Raises:
        ValueError: not a queue id.
    """
    parts = text.split(":")
    try:
        if len(parts) == 4 and parts[0] == "queue" and parts[2] == "shared":
            return shared_queue(int(parts[1]), parts[3])
        if len(parts) == 5 and parts[0] == "queue":
            return step_queue(int(parts[1]), int(parts[2]), int(parts[3]), int(parts[4]))
    except ValueError:
        pass
    raise ValueError(f"not a queue id: {text!r}")
