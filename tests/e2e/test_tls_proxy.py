"""Signed webhooks through the shipped nginx configuration (``deploy/nginx/throttled.conf``)
over TLS, run by Debian's nginx in front of a real daemon.

HubSpot calls only ``https://`` URLs and signs the URL it called: the daemon, told its public
URL is nginx's, must verify signatures over exactly what nginx passed on — a query string
and percent-encoded characters included. The install's OAuth redirects go through nginx too.
The upstream keep-alive ordering: nginx closes an idle connection to the daemon before the
daemon would (here 1 s against the daemon's 2 s), so webhooks after idle gaps longer than
either still get 200, never nginx's 502 for a connection closed under it.
"""

from __future__ import annotations

import ssl
import time

import trio

from tests.support.completions import settled_completions
from tests.support.nginx import running_nginx
from throttled.hubspot.signatures import SignedRequest, signed_headers
from throttled.testing import ACTION_PATH, Step, enrollment_body, free_port, local_stack

STEP = Step(workflow_id=92, action_id=4, limit=50, period=1, unit="seconds")
ODD_QUERIES = ["?source=workflows", "?a=1&b=%2Fpath%2Fto&c=%C3%A9t%C3%A9+2026&d=x%20y", "?empty=&flag"]


async def test_signed_webhooks_verify_through_nginx_over_tls(empty_database):
    daemon_port, proxy_port = free_port(), free_port()
    public = f"https://127.0.0.1:{proxy_port}"
    with running_nginx(daemon_port, proxy_port, upstream_keepalive="1s") as cert:
        verify = ssl.create_default_context(cafile=str(cert))
        overrides = {"bind": f"127.0.0.1:{daemon_port}", "public_url": public, "read_timeout_s": 2.0}
        async with local_stack(empty_database, overrides=overrides, verify=verify) as stack:
            portal, hubspot = stack.portal_id, stack.hubspot
            ids = []
            for n, query in enumerate(ODD_QUERIES):
                callback_id = f"ap-{portal}-92-{n}-0"
                body = enrollment_body(callback_id, portal, STEP)
                uri = public + ACTION_PATH + query
                headers = signed_headers(hubspot.client_secret, SignedRequest("POST", uri, body), int(time.time() * 1000))
                response = await hubspot.http.post(uri, content=body, headers=headers)
                assert response.status_code == 200, (query, response.status_code, response.text)
                assert response.json()["outputFields"]["hs_execution_state"] == "BLOCK"
                ids.append(callback_id)
            # A signature over another URL than the one nginx received is refused.
            body = enrollment_body(f"ap-{portal}-92-9-0", portal, STEP)
            wrong = signed_headers(hubspot.client_secret, SignedRequest("POST", public + ACTION_PATH + "?x=1", body),
                                   int(time.time() * 1000))
            refused = await hubspot.http.post(public + ACTION_PATH + "?x=2", content=body, headers=wrong)
            assert refused.status_code == 401
            for n, gap_s in enumerate((1.5, 2.5)):  # idle longer than nginx's 1 s, then than the daemon's 2 s
                await trio.sleep(gap_s)
                callback_id = f"ap-{portal}-92-{n}-1"
                response = await hubspot.enroll(public, callback_id, portal, STEP)
                assert response.status_code == 200, (gap_s, response.status_code, response.text)
                ids.append(callback_id)
            done = await settled_completions(stack, ids=ids, timeout_s=20)
            assert response.http_version == "HTTP/1.1" and response.url.scheme == "https"
    assert sorted(c["callbackId"] for c in done) == sorted(ids)
