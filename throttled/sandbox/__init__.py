"""A local stand-in for the HubSpot API, served over real loopback HTTP.

Not a mock of our code: a small HubSpot look-alike (OAuth install and tokens, callback
completion, per-portal rate limits; see ``shared/docs/hubspot-protocol.md`` §5–§7) that the
daemon, the tests and the demo talk to. ``state`` holds the pure rules, ``app`` the HTTP
mapping, ``server`` the trio entry point.
"""

from .app import create_app
from .server import RunningSandbox, serve_sandbox
from .state import SandboxConfig, SandboxError, SandboxState

__all__ = ["RunningSandbox", "SandboxConfig", "SandboxError", "SandboxState", "create_app", "serve_sandbox"]
