"""``local_stack`` picks a daemon's port before the daemon binds it; anything else on the
machine may take the port in between (an outgoing connection gets its local port from the
same ephemeral range). The stack then picks another instead of failing the test."""

from __future__ import annotations

import socket

import httpx

from throttled.testing import local_stack
from throttled.testing import stack as stack_module


async def test_a_port_taken_between_picking_and_binding_is_picked_again(empty_database, monkeypatch):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    taken_port = taken.getsockname()[1]
    picks = [taken_port]
    real_free_port = stack_module.free_port

    def pick() -> int:
        return picks.pop(0) if picks else real_free_port()

    monkeypatch.setattr(stack_module, "free_port", pick)
    try:
        async with local_stack(empty_database) as stack:
            url = stack.daemons[0].url
            assert not url.endswith(f":{taken_port}"), url
            async with httpx.AsyncClient() as http:
                assert (await http.get(f"{url}/healthz", timeout=10)).status_code == 200
    finally:
        taken.close()
    assert not picks, "the taken port was never offered: this test tested nothing"
