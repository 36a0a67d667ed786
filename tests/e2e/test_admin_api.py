"""The operator API of a running daemon's admin listener, over real HTTP: ``/api/admin/…``.

Seeded through signed webhooks (``tests.support.seed``). Every route once; bad parameters are
a 400 naming the field; unknown queues and jobs a JSON 404; access needs the bearer token
(401 without it or with a wrong one, 404 everywhere when none is configured); the portal
listing carries no token bytes, in any encoding.
"""

from __future__ import annotations

import base64
import secrets

import trio

from tests.support.seed import seed_queues
from throttled.db import portals as portals_sql
from throttled.testing import local_stack

TOKEN = "admin-" + secrets.token_hex(16)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SOME_QUEUE = "queue:62515:101:7:0"
ROUTES = [("GET", "/api/admin/queues"), ("GET", f"/api/admin/queues/{SOME_QUEUE}"),
          *[("POST", f"/api/admin/queues/{SOME_QUEUE}/{a}") for a in ("pause", "resume", "drain", "purge")],
          ("GET", "/api/admin/jobs"), ("POST", "/api/admin/jobs/1/retry"), ("POST", "/api/admin/jobs/1/cancel"),
          ("GET", "/api/admin/portals")]


async def test_queue_routes(empty_database):
    async with local_stack(empty_database, overrides={"admin_token": TOKEN}) as stack:
        ids = await seed_queues(stack)
        http, api = stack.hubspot.http, stack.daemons[0].admin_url + "/api/admin"

        listed = await http.get(f"{api}/queues", headers=AUTH)
        assert listed.status_code == 200
        by_id = {q["queue_id"]: q for q in listed.json()["queues"]}
        assert set(by_id) == set(ids.values())
        slow = by_id[ids["slow"]]
        # a list counts the backlog and the last hour's releases (never every finished row)
        assert (slow["backlog"], slow["counts"], slow["state"]) == (2, {"pending": 2, "released_last_hour": 1}, "active")
        assert (slow["max_throughput"], slow["time_period"], slow["time_unit"]) == (1, 1, "hours")
        assert "last_failure_reason" in slow and by_id[ids["fast"]]["mode"] == "smooth"

        shown = await http.get(f"{api}/queues/{ids['shared']}", headers=AUTH)  # ':' in the path
        assert shown.status_code == 200 and shown.json()["queue_id"] == "queue:62515:shared:promo"
        for method, path in (("GET", "queue:62515:404:1:0"), ("POST", "queue:62515:404:1:0/pause"),
                             ("POST", "queue:62515:404:1:0/purge"), ("POST", "nope/drain")):
            missing = await http.request(method, f"{api}/queues/{path}", headers=AUTH)
            assert missing.status_code == 404 and missing.json()["error"] == "not_found", (path, missing.text)

        paused = await http.post(f"{api}/queues/{ids['slow']}/pause", headers=AUTH)
        assert paused.status_code == 200 and paused.json()["state"] == "paused"
        resumed = await http.post(f"{api}/queues/{ids['slow']}/resume", headers=AUTH)
        assert resumed.status_code == 200 and resumed.json()["state"] == "active"

        drained = await http.post(f"{api}/queues/{ids['shared']}/drain", headers=AUTH)
        assert drained.status_code == 200 and drained.json()["state"] == "draining"
        with trio.fail_after(10):  # the held enrollment goes despite 1 per day; active again once empty
            while (q := (await http.get(f"{api}/queues/{ids['shared']}", headers=AUTH)).json())["counts"] != {"released": 2} \
                    or q["state"] != "active":
                await trio.sleep(0.05)

        purged = await http.post(f"{api}/queues/{ids['slow']}/purge", headers=AUTH)
        assert purged.status_code == 200
        assert purged.json()["cancelled"] == 2
        assert purged.json()["queue"]["counts"] == {"cancelled": 2, "released": 1}
        assert purged.json()["queue"]["backlog"] == 0
    assert len(stack.hubspot.sent) == 7


async def test_job_routes(empty_database):
    async with local_stack(empty_database, overrides={"admin_token": TOKEN}) as stack:
        ids = await seed_queues(stack)
        http, api = stack.hubspot.http, stack.daemons[0].admin_url + "/api/admin"

        all_jobs = (await http.get(f"{api}/jobs", headers=AUTH)).json()["jobs"]
        assert [j["id"] for j in all_jobs] == sorted((j["id"] for j in all_jobs), reverse=True)  # newest first
        throttle = (await http.get(f"{api}/jobs", params={"kind": "throttle"}, headers=AUTH)).json()["jobs"]
        assert {j["args"]["queue_id"] for j in throttle} == set(ids.values())
        assert {j["kind"] for j in throttle} == {"throttle"}
        one = (await http.get(f"{api}/jobs", params={"kind": "throttle", "limit": "1"}, headers=AUTH)).json()["jobs"]
        assert len(one) == 1 and one[0]["id"] == max(j["id"] for j in throttle)

        with trio.fail_after(10):  # the fast queue's job finishes once its backlog is gone
            while not (done := (await http.get(f"{api}/jobs", params={"state": "completed", "kind": "throttle"},
                                               headers=AUTH)).json()["jobs"]):
                await trio.sleep(0.05)
        assert done[0]["args"]["queue_id"] == ids["fast"] and done[0]["state"] == "completed"
        with trio.fail_after(10):  # the slow queue's job waits for its window to open again
            while (slow := next(j for j in (await http.get(f"{api}/jobs", params={"kind": "throttle"}, headers=AUTH))
                                .json()["jobs"] if j["args"]["queue_id"] == ids["slow"]))["state"] != "scheduled":
                await trio.sleep(0.05)

        cancelled = await http.post(f"{api}/jobs/{slow['id']}/cancel", headers=AUTH)
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        assert cancelled.json()["errors"][-1]["error"] == "cancelled by operator"
        again = await http.post(f"{api}/jobs/{slow['id']}/cancel", headers=AUTH)
        assert again.status_code == 409 and again.json()["error"] == "conflict"
        retried = await http.post(f"{api}/jobs/{slow['id']}/retry", headers=AUTH)
        assert retried.status_code == 200 and retried.json()["state"] == "available"
        completed = await http.post(f"{api}/jobs/{done[0]['id']}/retry", headers=AUTH)
        assert completed.status_code == 409 and "completed" in completed.json()["message"]

        for path in ("999999/retry", "999999/cancel", f"{2**63}/retry", "-1/cancel", "abc/retry"):
            missing = await http.post(f"{api}/jobs/{path}", headers=AUTH)
            assert missing.status_code == 404 and missing.json()["error"] == "not_found", (path, missing.text)
        for params, field in (({"limit": "0"}, "limit"), ({"limit": "501"}, "limit"), ({"limit": "ten"}, "limit"),
                              ({"state": "sleeping"}, "state"), ({"kind": "k" * 101}, "kind")):
            bad = await http.get(f"{api}/jobs", params=params, headers=AUTH)
            assert bad.status_code == 400, (params, bad.text)
            assert (bad.json()["error"], bad.json()["field"]) == ("invalid_input", field)


async def test_portals_show_status_and_expiry_but_never_tokens(empty_database):
    async with local_stack(empty_database, overrides={"admin_token": TOKEN}) as stack:
        http, admin = stack.hubspot.http, stack.daemons[0].admin_url
        response = await http.get(f"{admin}/api/admin/portals", headers=AUTH)
        assert response.status_code == 200
        [portal] = response.json()["portals"]
        assert set(portal) == {"portal_id", "status", "token_status", "expires_at", "scopes", "key_id",
                               "held_until", "hold_reason", "installed_at", "updated_at"}
        assert (portal["portal_id"], portal["status"], portal["token_status"]) == (stack.portal_id, "active", "valid")
        assert portal["scopes"] and portal["key_id"] and portal["expires_at"] and portal["held_until"] is None

        row = await stack.daemons[0].db.transaction(portals_sql.get_portal, stack.portal_id)
        secrets_seen = [*stack.sandbox_state._access, *stack.sandbox_state._refresh]  # plaintext, at HubSpot
        assert secrets_seen
        for stored in (row.access_token, row.refresh_token):
            secrets_seen += [stored.hex(), base64.b64encode(stored).decode(), base64.urlsafe_b64encode(stored).decode()]
        for page in (response.text, (await http.get(f"{admin}/admin")).text):
            for secret in secrets_seen:
                assert secret not in page and secret[:16] not in page


async def test_missing_or_wrong_token_is_401(empty_database):
    async with local_stack(empty_database, overrides={"admin_token": TOKEN}) as stack:
        http, admin = stack.hubspot.http, stack.daemons[0].admin_url
        bad_headers = ({}, {"Authorization": "Bearer"}, {"Authorization": f"Bearer {TOKEN}x"},
                       {"Authorization": TOKEN}, {"Authorization": f"bearer-{TOKEN}"})
        for method, path in ROUTES:
            for headers in bad_headers:
                response = await http.request(method, admin + path, headers=headers)
                assert response.status_code == 401, (method, path, headers, response.text)
                assert response.json()["error"] == "unauthorized" and TOKEN not in response.text
                assert response.headers["WWW-Authenticate"] == "Bearer"
        page = await http.get(f"{admin}/admin")  # the read-only page needs no token
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")


async def test_without_an_admin_token_the_api_is_absent(empty_database):
    async with local_stack(empty_database) as stack:
        http, admin = stack.hubspot.http, stack.daemons[0].admin_url
        for method, path in ROUTES:
            for headers in ({}, AUTH):
                response = await http.request(method, admin + path, headers=headers)
                assert response.status_code == 404, (method, path, headers, response.text)
        assert (await http.get(f"{admin}/admin")).status_code == 200
        assert (await http.get(f"{admin}/metrics")).status_code == 200
