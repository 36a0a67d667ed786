"""The sd_notify protocol against a real unix datagram socket, and the watchdog's rule."""

import socket

import trio
from trio.testing import MockClock

from throttled.service.systemd import SystemdNotifier, watchdog, watchdog_interval_s


def test_messages_arrive_on_the_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(1)
        notifier = SystemdNotifier(path)
        notifier.notify("READY=1")
        notifier.status("pending 3\nreleased 4")
        assert server.recv(1024) == b"READY=1"
        assert server.recv(1024) == b"STATUS=pending 3 released 4"


def test_no_socket_no_op():
    notifier = SystemdNotifier("")
    notifier.notify("READY=1")
    assert not notifier.enabled and not notifier.sent


def test_watchdog_interval_is_half_of_watchdog_usec():
    assert watchdog_interval_s({"WATCHDOG_USEC": "60000000"}) == 30.0
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}) is None  # someone else's


def test_watchdog_pings_only_while_alive(tmp_path):
    path = str(tmp_path / "notify.sock")
    alive = {"value": True}

    async def main():
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
            server.bind(path)
            notifier = SystemdNotifier(path)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watchdog, notifier, 10.0, lambda: alive["value"])
                await trio.sleep(35)  # three pings
                alive["value"] = False  # the scheduler is stuck
                await trio.sleep(40)  # four intervals without a ping
                nursery.cancel_scope.cancel()
            return notifier.sent

    sent = trio.run(main, clock=MockClock(autojump_threshold=0))
    assert sent == {"WATCHDOG=1": 3}


def test_what_was_sent_stays_bounded_however_long_the_daemon_runs(tmp_path):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(1)
        notifier = SystemdNotifier(path)
        for n in range(5000):  # read each at once: a unix datagram queue holds only a few
            notifier.notify("WATCHDOG=1")
            assert server.recv(1024) == b"WATCHDOG=1"
            notifier.status(f"pending {n}")
            assert server.recv(1024) == f"STATUS=pending {n}".encode()
    assert notifier.sent == {"WATCHDOG=1": 5000, "STATUS": 5000}  # two counters, not 10,000 strings
