"""Configuration of the sandbox: the one app it knows and its limits.

Defaults are HubSpot's (``shared/docs/hubspot-protocol.md``): access tokens live 30 minutes (§6),
OAuth apps get 110 requests per 10 s per portal (§7), action definitions are managed with the
app's developer key (``hapikey``, §8).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SandboxConfig:
    """The one app the sandbox knows, and its limits.

    ``token_lifetime_s``: access-token lifetime in seconds (§6: 1800). ``rate_limit_max`` per
    ``rate_limit_interval_s`` seconds per portal (§7: 110 per 10 s for OAuth apps).
    ``developer_api_key``: the ``hapikey`` of the action-definition endpoints (§8). Secrets are
    hidden from the repr.
    """

    client_id: str
    client_secret: str = field(repr=False)
    app_id: int
    default_portal_id: int = 62515
    token_lifetime_s: float = 1800.0
    rate_limit_max: int = 110
    rate_limit_interval_s: float = 10.0
    scopes: list[str] = field(default_factory=lambda: ["automation", "oauth"])
    developer_api_key: str = field(default="sandbox-dev-key", repr=False)
