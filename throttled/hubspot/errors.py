"""Typed HubSpot API failures, so callers decide by what an answer means, not by status code."""

from __future__ import annotations

from throttled.hubspot.answers import Answer


class HubSpotError(Exception):
    """Base of every HubSpot call failure. Messages never contain tokens or secrets."""


class HubSpotRefused(HubSpotError):
    """A token or token-info call did not give what was asked; ``answer`` says what the
    answer refers to and what to do (``throttled.hubspot.answers``)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.reason or answer.kind)
        self.answer = answer


class HubSpotUnavailable(HubSpotError):
    """Developer API (action definitions): 5xx, timeout or connection failure; retry later."""


class HubSpotRejected(HubSpotError):
    """Developer API (action definitions): a 4xx; retrying it unchanged will not help.

    ``status`` is the HTTP status, ``category`` and ``message`` come from HubSpot's error body.
    """

    def __init__(self, status: int, category: str | None, message: str) -> None:
        super().__init__(f"HTTP {status} {category or ''}: {message}".strip())
        self.status = status
        self.category = category
        self.message = message
