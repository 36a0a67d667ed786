"""Which settings an enrollment naming a throttle waits under — pure.

A step's ``shared_queue`` input names a throttle. When the portal has a named throttle of
that slug (``db/named_throttles.py``, managed on the customer's page), its settings win over
the step's inputs; when that named throttle is inactive or deleted, the record is not held
and the workflow is told why (``hubspot/outputs.py``: ``throttle_inactive``,
``throttle_deleted``) — never a silent fallback to the step's own inputs. A name no named
throttle carries is an ad-hoc shared throttle (steps naming it share one limit at the
settings of the step that enrolled last), which needs the step's rate inputs
(``throttle_unknown`` without them).
"""

from __future__ import annotations

from dataclasses import replace

from throttled.db.named_throttles import NamedThrottle
from throttled.ingest.payload import Enrollment
from throttled.states import NamedThrottleState
from throttled.throttle.policy import step_of

#: Why a record naming a throttle is not held.
THROTTLE_INACTIVE, THROTTLE_DELETED, THROTTLE_UNKNOWN = "throttle_inactive", "throttle_deleted", "throttle_unknown"


def resolve(enrollment: Enrollment, named: NamedThrottle | None) -> Enrollment | str:
    """``enrollment`` with the settings it waits under, or the reason it cannot be held.

    Args:
        enrollment: as parsed; ``step`` is ``None`` when the step gave no rate.
        named: the portal's named throttle of ``enrollment.shared_name`` (any state), or
            ``None``.
    """
    if named is not None:
        if named.state == NamedThrottleState.ACTIVE:
            return replace(enrollment, step=step_of(named))
        return THROTTLE_DELETED if named.state == NamedThrottleState.DELETED else THROTTLE_INACTIVE
    return enrollment if enrollment.step is not None else THROTTLE_UNKNOWN
