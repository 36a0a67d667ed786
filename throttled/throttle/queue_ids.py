"""Queue ids in the original app's text form — pure.

``queue:{portal}:{workflow}:{action}:{index}`` for a workflow step (``index`` is 0 unless a
step is split into lanes), ``queue:{portal}:shared:{name}`` for a throttle shared by several
steps (see ``../shared/docs/design.md``, Data). A partitioned limit ("20 per owner per day",
the step's ``partition_key`` input) gives each distinct key its own queue — the step's queue id
plus ``#`` and the first 16 hex digits of the key's SHA-256 — so every guarantee of a queue
(strict window, crash safety, several daemons) holds per partition; an empty key is the
step's queue itself.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace

_SHARED_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


@dataclass(frozen=True, slots=True)
class QueueId:
    """A parsed queue id. Exactly one of ``shared_name`` or (workflow, action) is set."""

    portal_id: int
    workflow_id: int | None = None
    action_id: int | None = None
    index: int = 0
    shared_name: str | None = None
    partition: str | None = None  # 16 hex digits of the partition key's SHA-256, or None

    def __str__(self) -> str:
        if self.shared_name is not None:
            base = f"queue:{self.portal_id}:shared:{self.shared_name}"
        else:
            base = f"queue:{self.portal_id}:{self.workflow_id}:{self.action_id}:{self.index}"
        return base if self.partition is None else f"{base}#{self.partition}"

    @property
    def parent(self) -> QueueId:
        """The step's (or shared) queue a partition belongs to; itself when not a partition."""
        return replace(self, partition=None)

    def partitioned(self, key: str | None) -> QueueId:
        """The queue of partition ``key`` of this queue (``None`` or blank: this queue)."""
        if key is None or not key.strip():
            return self.parent
        return replace(self, partition=hashlib.sha256(key.strip().encode()).hexdigest()[:16])


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
    text, _, partition = text.partition("#")
    if partition and not re.fullmatch(r"[0-9a-f]{16}", partition):
        raise ValueError(f"not a queue id: {text!r}")
    parts = text.split(":")
    try:
        if len(parts) == 4 and parts[0] == "queue" and parts[2] == "shared":
            return replace(shared_queue(int(parts[1]), parts[3]), partition=partition or None)
        if len(parts) == 5 and parts[0] == "queue":
            return replace(step_queue(int(parts[1]), int(parts[2]), int(parts[3]), int(parts[4])),
                           partition=partition or None)
    except ValueError:
        pass
    raise ValueError(f"not a queue id: {text!r}")
