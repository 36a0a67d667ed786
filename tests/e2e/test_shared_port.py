"""Several daemons on one host share the public port (``THROTTLED_REUSE_PORT``, the
``systemd/throttled@.service`` template): each binds it with ``SO_REUSEPORT`` and the kernel
spreads new connections over them. Without the setting a second daemon cannot bind."""

from __future__ import annotations

import httpx
import pytest

from throttled.testing import Step, enrollment_body, free_port, local_stack

STEP = Step(workflow_id=9700, action_id=1, limit=1000, period=1, unit="seconds")


async def test_two_daemons_share_the_port_and_both_serve_webhooks(empty_database):
    port = free_port()
    shared = {"bind": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}", "reuse_port": True}
    async with local_stack(empty_database, daemons=2, overrides=shared) as stack:
        first, second = stack.daemons
        assert first.url == second.url == f"http://127.0.0.1:{port}"
        for n in range(60):  # a fresh connection each: the kernel picks a daemon per connection
            body = enrollment_body(f"ap-{stack.portal_id}-9700-1-{n}", stack.portal_id, STEP)
            response = await stack.hubspot.post(first.url, body, headers={"Connection": "close"})
            assert response.status_code == 200, response.text
        served = [d.metrics.webhooks.labels("accepted")._value.get() for d in stack.daemons]

    assert sum(served) == 60
    assert min(served) > 0, f"one daemon served every connection: {served}"  # 2 in 2^60 runs by chance


async def test_without_reuse_port_a_second_daemon_cannot_bind(empty_database):
    port = free_port()
    alone = {"bind": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}"}
    with pytest.RaisesGroup(pytest.RaisesExc(OSError, match=r"cannot listen on .*\(THROTTLED_BIND\)"), flatten_subgroups=True):
        async with local_stack(empty_database, daemons=2, overrides=alone):
            pass
    async with httpx.AsyncClient() as http:  # nothing is left listening (a stopped server's socket was)
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/healthz")
