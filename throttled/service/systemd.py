"""The systemd notify protocol (sd_notify(3)) over ``NOTIFY_SOCKET``, in the few lines it needs.

A datagram per message to the unix socket systemd names (``@…`` is the abstract namespace).
Without ``NOTIFY_SOCKET`` (not under systemd) every call does nothing. The watchdog pings
(``WATCHDOG=1``) at half of ``WATCHDOG_USEC`` — but only while the daemon shows signs of
life, so a stuck scheduler lets systemd restart the service.
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from collections.abc import Callable

import structlog
import trio

log = structlog.get_logger("throttled.systemd")


class SystemdNotifier:
    """Sends sd_notify messages; a no-op when ``socket_path`` is ``None``.

    Args:
        socket_path: ``NOTIFY_SOCKET``'s value (default: read from the environment).
    """

    def __init__(self, socket_path: str | None = None) -> None:
        path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET")
        self.address = ("\0" + path[1:]) if path and path.startswith("@") else path
        # Counts by message, not the messages: a long-lived daemon pings the watchdog forever
        # (a list of every message sent grew for the life of the process).
        self.sent: Counter[str] = Counter()

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, message: str) -> None:
        """Send ``message`` (e.g. ``"READY=1"``) without blocking; errors (a full socket
        queue included) are logged, never raised."""
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)  # never stall the event loop on a full socket queue
                sock.sendto(message.encode(), self.address)
            self.sent[message.partition("=")[0] if message.startswith("STATUS=") else message] += 1
        except OSError as exc:
            log.warning("systemd.notify_failed", error=str(exc))

    def status(self, text: str) -> None:
        """A ``STATUS=`` line for ``systemctl status`` (one line)."""
        self.notify("STATUS=" + text.replace("\n", " ")[:200])


def watchdog_interval_s(environ: dict[str, str] | None = None) -> float | None:
    """Half of ``WATCHDOG_USEC`` in seconds, or ``None`` when systemd asked for no watchdog
    (or asked another process: ``WATCHDOG_PID`` names someone else)."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1_000_000 / 2
    except ValueError:
        return None


async def watchdog(notifier: SystemdNotifier, interval_s: float, alive: Callable[[], bool]) -> None:
    """Ping every ``interval_s`` seconds while ``alive()`` says the daemon makes progress."""
    while True:
        await trio.sleep(interval_s)
        if alive():
            notifier.notify("WATCHDOG=1")
        else:
            log.error("systemd.watchdog_withheld", reason="no progress since the last ping")
