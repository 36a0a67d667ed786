"""Who may use the admin listener, over real HTTP (finding 5 of the edge review): ``/admin``
and ``/metrics`` needed no token and checked no ``Host`` — a page on another site could read
them through an operator's browser by DNS rebinding (a name it controls, resolved to
127.0.0.1, arrives as that name in ``Host``)."""

from __future__ import annotations

import base64
import secrets

from throttled.testing import local_stack

TOKEN = "admin-" + secrets.token_hex(16)
PAGES = "pages-" + secrets.token_hex(16)
EVERY_KIND = ["/admin", "/metrics", "/api/admin/queues", "/api/config/62515/7"]


def _basic(password: str, user: str = "operator") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_a_foreign_host_gets_421_on_every_route_and_listed_hosts_pass(empty_database):
    overrides = {"admin_token": TOKEN, "admin_hosts": "localhost,metrics.internal"}
    async with local_stack(empty_database, overrides=overrides) as stack:
        http, admin = stack.hubspot.http, stack.daemons[0].admin_url
        port = admin.rsplit(":", 1)[1]
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for path in EVERY_KIND:
            rebound = await http.get(admin + path, headers={**auth, "Host": f"attacker.example:{port}"})
            assert rebound.status_code == 421, (path, rebound.status_code, rebound.text)
            assert rebound.json()["error"] == "misdirected_request"
        assert (await http.get(admin + "/admin", headers={"Host": f"127.0.0.1:{port}"})).status_code == 421
        for host in (f"localhost:{port}", f"METRICS.internal.:{port}", "metrics.internal"):
            assert (await http.get(admin + "/metrics", headers={"Host": host})).status_code == 200, host


async def test_by_default_the_listener_answers_loopback_names_only(empty_database):
    async with local_stack(empty_database) as stack:
        http, admin = stack.hubspot.http, stack.daemons[0].admin_url
        port = admin.rsplit(":", 1)[1]
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
            assert (await http.get(admin + "/admin", headers={"Host": host})).status_code == 200, host
        assert (await http.get(admin + "/admin", headers={"Host": f"rebind.example:{port}"})).status_code == 421


async def test_a_pages_token_closes_the_status_page_and_metrics(empty_database):
    async with local_stack(empty_database, overrides={"admin_token": TOKEN, "pages_token": PAGES}) as stack:
        http, admin = stack.hubspot.http, stack.daemons[0].admin_url
        for path in ("/admin", "/metrics"):
            bare = await http.get(admin + path)
            assert bare.status_code == 401 and bare.headers["WWW-Authenticate"].startswith("Basic"), path
            for wrong in (_basic("nope"), {"Authorization": "Bearer nope"}, _basic(PAGES + " ")):
                assert (await http.get(admin + path, headers=wrong)).status_code == 401, (path, wrong)
            for good in (_basic(PAGES), _basic(PAGES, user=""), {"Authorization": f"bearer {PAGES}"},
                         {"Authorization": f"Bearer {TOKEN}"}):
                assert (await http.get(admin + path, headers=good)).status_code == 200, (path, good)
        # the pages token opens only the pages, never the operator API
        api = await http.get(admin + "/api/admin/queues", headers={"Authorization": f"Bearer {PAGES}"})
        assert api.status_code == 401
