"""A local stand-in for the HubSpot API, served over real loopback HTTP.

Not a mock of our code: a small HubSpot look-alike (OAuth install and tokens, callback
completion, per-portal rate limits, action definitions; see ``shared/docs/hubspot-protocol.md``
§5–§8) that the daemon, the tests and the demo talk to, with faults on demand (``faults``: 5xx,
latency, 429 storms, the daily limit, poison callback ids, early token expiry). ``state``
(with ``oauth``, ``ratewindow``, ``actions``, ``errors``, ``config``) holds the pure rules,
``app`` the HTTP mapping, ``server`` the trio entry point.
"""

from .app import create_app
from .config import SandboxConfig
from .errors import SandboxError
from .faults import Faults
from .ratewindow import max_in_window
from .server import RunningSandbox, serve_sandbox
from .state import SandboxState

__all__ = ["Faults", "RunningSandbox", "SandboxConfig", "SandboxError", "SandboxState", "create_app",
           "max_in_window", "serve_sandbox"]
