"""Fault injection for the sandbox: HubSpot's bad days, on demand and reproducible.

Each fault imitates a documented HubSpot behaviour (``shared/docs/hubspot-protocol.md``): 5xx
answers the client must retry after a pause (§7, error handling), slow or stalled callback
answers (§5), 429 bursts with policy ``TEN_SECONDLY_ROLLING`` and the ``DAILY`` limit (§7), a
callback id HubSpot refuses (§5: a 4xx fails the whole batch), access tokens that die before
their ``expires_in`` (§6). Pure: no trio, no clock; random draws come from a ``random.Random``
seeded with :attr:`Faults.seed`, so a run is repeatable. Delays are returned, never slept here.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import (
    CALLBACK_REFUSALS,
    INFO_REFUSALS,
    TOKEN_REFUSALS,
    RatePolicy,
    invalid,
)

MAX_DELAY_S = 3600.0  # latency_s / stall_s above this are refused as typos


@dataclass
class Faults:
    """The faults in force; all off by default.

    - ``seed``: seeds the draws of ``error_rate``; every new :class:`Faults` (each
      :meth:`merged`) restarts the draws from it.
    - ``error_rate`` (0..1) share of callback completions (single and batch) answered
      ``error_status`` (a 5xx) with nothing recorded.
    - ``latency_s`` / ``stall_s``: seconds to wait before answering a callback completion;
      ``stall_s`` is meant to exceed the client's timeout. Both add up.
    - ``rate_limit_storm``: the next N authenticated API requests get 429
      ``TEN_SECONDLY_ROLLING``; counts down to 0.
    - ``daily_limit``: every authenticated API request gets 429 ``DAILY`` while true.
    - ``poison_callback_ids``: completing any of them is a 400 (a batch fails whole).
    - ``token_lifetime_s``: access tokens issued from now on really live this many seconds
      (their ``expires_in`` still announces the configured lifetime); None = normal.
    - ``callbacks_refusal``: every callback completion is refused this way while set (one of
      :data:`CALLBACK_REFUSALS`: HubSpot's answers that refer to the portal, the app or a
      callback rather than to a bad input; see ``errors.refusal``).
    - ``token_rate_limit_storm``: the next N token-endpoint calls get 429
      ``TEN_SECONDLY_ROLLING`` with no ``Retry-After``; counts down to 0.
    - ``token_refusal``: every token-endpoint call is refused this way while set (one of
      :data:`TOKEN_REFUSALS`).
    - ``token_latency_s``: seconds the token endpoint waits before answering.
    - ``token_info_refusal``: every token-info lookup is refused this way (one of
      :data:`INFO_REFUSALS`).
    """

    seed: int = 0
    error_rate: float = 0.0
    error_status: int = 503
    latency_s: float = 0.0
    stall_s: float = 0.0
    rate_limit_storm: int = 0
    daily_limit: bool = False
    poison_callback_ids: set[str] = field(default_factory=set)
    token_lifetime_s: float | None = None
    callbacks_refusal: str | None = None
    token_rate_limit_storm: int = 0
    token_refusal: str | None = None
    token_latency_s: float = 0.0
    token_info_refusal: str | None = None
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def merged(self, changes: Mapping[str, Any]) -> Faults:
        """A new :class:`Faults` with ``changes`` (JSON values by field name) applied.

        Lists become sets for ``poison_callback_ids``. Raises a 400 :class:`SandboxError` naming
        the first unknown field or badly typed value; ``self`` is left unchanged.
        """
        if not isinstance(changes, Mapping):
            raise invalid("faults: expected a JSON object")
        values: dict[str, Any] = {}
        for name, value in changes.items():
            rule = _RULES.get(name)
            if rule is None:
                raise invalid(f"{name}: unknown fault; known: {', '.join(sorted(_RULES))}")
            accepts, what, convert = rule
            if not accepts(value):
                raise invalid(f"{name}: expected {what}")
            values[name] = convert(value)
        return replace(self, **values)

    def to_json(self) -> dict[str, Any]:
        """The faults as JSON (``poison_callback_ids`` a sorted list)."""
        body = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        body["poison_callback_ids"] = sorted(self.poison_callback_ids)
        return body

    def rate_limit_policy(self) -> RatePolicy | None:
        """The 429 policy an authenticated API request meets now, or None.

        ``DAILY`` while ``daily_limit`` (the storm does not count down meanwhile); else one step
        of the storm (``TEN_SECONDLY_ROLLING``, counting ``rate_limit_storm`` down by one).
        """
        if self.daily_limit:
            return "DAILY"
        if self.rate_limit_storm > 0:
            self.rate_limit_storm -= 1
            return "TEN_SECONDLY_ROLLING"
        return None

    def token_refusal_now(self) -> str | None:
        """The refusal a token-endpoint call meets now: ``token_refusal``, else one step of
        the token storm (``"rate_limited"``, counting ``token_rate_limit_storm`` down), else None."""
        if self.token_refusal:
            return self.token_refusal
        if self.token_rate_limit_storm > 0:
            self.token_rate_limit_storm -= 1
            return "rate_limited"
        return None

    def draw_server_error(self) -> bool:
        """One draw: True for a request to answer ``error_status``. Draws only if ``error_rate > 0``."""
        return self.error_rate > 0 and self._rng.random() < self.error_rate

    def poisoned(self, callback_ids: Iterable[str]) -> list[str]:
        """The poison ids among ``callback_ids``, sorted, each once."""
        return sorted(self.poison_callback_ids.intersection(callback_ids))

    def delay_s(self) -> float:
        """Seconds to wait before answering a callback completion (``latency_s + stall_s``)."""
        return self.latency_s + self.stall_s


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ids(value: Any) -> bool:
    return isinstance(value, list | tuple | set | frozenset) and all(isinstance(v, str) and v for v in value)


def _seconds(value: Any) -> bool:
    return _number(value) and 0 <= value <= MAX_DELAY_S


# field -> (accepts the JSON value?, what it must be, conversion)
_RULES: dict[str, tuple[Callable[[Any], bool], str, Callable[[Any], Any]]] = {
    "seed": (_integer, "an integer", int),
    "error_rate": (lambda v: _number(v) and 0 <= v <= 1, "a number from 0 to 1", float),
    "error_status": (lambda v: _integer(v) and 500 <= v <= 599, "an integer from 500 to 599", int),
    "latency_s": (_seconds, f"seconds from 0 to {MAX_DELAY_S:g}", float),
    "stall_s": (_seconds, f"seconds from 0 to {MAX_DELAY_S:g}", float),
    "rate_limit_storm": (lambda v: _integer(v) and v >= 0, "a non-negative integer", int),
    "daily_limit": (lambda v: isinstance(v, bool), "true or false", bool),
    "poison_callback_ids": (_ids, "a list of non-empty callback id strings", set),
    "token_lifetime_s": (lambda v: v is None or (_number(v) and v > 0), "null or seconds > 0",
                         lambda v: None if v is None else float(v)),
    "callbacks_refusal": (lambda v: v is None or v in CALLBACK_REFUSALS, f"null or one of {', '.join(CALLBACK_REFUSALS)}",
                          lambda v: v),
    "token_rate_limit_storm": (lambda v: _integer(v) and v >= 0, "a non-negative integer", int),
    "token_refusal": (lambda v: v is None or v in TOKEN_REFUSALS, f"null or one of {', '.join(TOKEN_REFUSALS)}",
                      lambda v: v),
    "token_latency_s": (_seconds, f"seconds from 0 to {MAX_DELAY_S:g}", float),
    "token_info_refusal": (lambda v: v is None or v in INFO_REFUSALS, f"null or one of {', '.join(INFO_REFUSALS)}",
                           lambda v: v),
}
