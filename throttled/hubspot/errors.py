"""Typed HubSpot API failures, so callers decide by type, not by status code."""

from __future__ import annotations


class HubSpotError(Exception):
    """Base of every HubSpot call failure. Messages never contain tokens or secrets."""


class HubSpotUnavailable(HubSpotError):
    """5xx, timeout or connection failure: retry later with backoff."""


class HubSpotUnauthorized(HubSpotError):
    """401: the access token is missing, expired or revoked; refresh and retry once."""


class HubSpotRateLimited(HubSpotError):
    """429: wait ``retry_after_s`` seconds; spends no attempt. ``policy`` is HubSpot's
    ``policyName`` (``TEN_SECONDLY_ROLLING``, ``DAILY``, …) when given."""

    def __init__(self, retry_after_s: float, policy: str | None) -> None:
        super().__init__(f"rate limited ({policy or 'unknown policy'}), retry after {retry_after_s:.1f}s")
        self.retry_after_s = retry_after_s
        self.policy = policy


class HubSpotRejected(HubSpotError):
    """Another 4xx: HubSpot refused the request as such; retrying it unchanged will not help.

    ``status`` is the HTTP status, ``category`` and ``message`` come from HubSpot's error body.
    """

    def __init__(self, status: int, category: str | None, message: str) -> None:
        super().__init__(f"HTTP {status} {category or ''}: {message}".strip())
        self.status = status
        self.category = category
        self.message = message


class BadRefreshToken(HubSpotError):
    """400 ``BAD_REFRESH_TOKEN`` / ``invalid_grant``: the app was uninstalled or the token revoked."""
