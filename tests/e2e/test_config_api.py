"""The operator config API of a running daemon, over real HTTP: ``GET/PUT/DELETE
/api/config/{portal}/{action}``.

Access: on the admin listener; on the public one only with ``THROTTLED_PUBLIC_CONFIG_API``. A
bearer token (``THROTTLED_ADMIN_TOKEN``) is required — 401 without it or with a wrong one —
and without that setting the routes answer 404, as if absent. Bodies: a bad one
is a 400 naming the field and changes nothing. Effect: a PUT reaches a live daemon at once
(NOTIFY to the config caches, the queue's job woken), so a queue with a backlog speeds up to
the override's rate within about a second, as the sandbox's completion times show.
"""

from __future__ import annotations

import secrets
import time

import trio

from throttled.testing import Step, local_stack, max_per_window

TOKEN = "admin-" + secrets.token_hex(16)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RATE = {"max_throughput": 20, "time_period": 1, "time_unit": "seconds"}


def _url(stack, portal_id: int, action_id: int, daemon: int = 0) -> str:
    return f"{stack.daemons[daemon].admin_url}/api/config/{portal_id}/{action_id}"


async def test_get_put_delete_round_trip(empty_database):
    async with local_stack(empty_database, overrides={"admin_token": TOKEN}) as stack:
        http, url = stack.hubspot.http, _url(stack, stack.portal_id, 11)
        missing = await http.get(url, headers=AUTH)
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"

        put = await http.put(url, json=RATE, headers=AUTH)
        assert put.status_code == 200, put.text
        assert put.json() | {"updated_at": None} == {
            "portal_id": stack.portal_id, "action_id": 11, **RATE, "mode": None, "updated_at": None, "will_expire": {}}
        assert (await http.get(url, headers=AUTH)).json() | {"will_expire": {}} == put.json()

        replaced = await http.put(url, json={"mode": "smooth"}, headers=AUTH)  # upsert: one row per pair
        assert replaced.status_code == 200
        assert {k: replaced.json()[k] for k in ("max_throughput", "time_unit", "mode")} == {
            "max_throughput": None, "time_unit": None, "mode": "smooth"}
        other = await http.get(_url(stack, stack.portal_id, 12), headers=AUTH)
        assert other.status_code == 404  # keyed on (portal, action)

        deleted = await http.delete(url, headers=AUTH)
        assert deleted.status_code == 204 and deleted.content == b""
        assert (await http.get(url, headers=AUTH)).status_code == 404
        again = await http.delete(url, headers=AUTH)
        assert again.status_code == 404 and again.json()["error"] == "not_found"


async def test_missing_or_wrong_token_is_401_and_changes_nothing(empty_database):
    async with local_stack(empty_database, overrides={"admin_token": TOKEN}) as stack:
        http, url = stack.hubspot.http, _url(stack, stack.portal_id, 21)
        assert (await http.put(url, json=RATE, headers=AUTH)).status_code == 200
        bad_headers = ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer wrong-" + TOKEN},
                       {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"},
                       {"Authorization": f"Bearer {TOKEN[:-1]}"})
        for method in ("GET", "PUT", "DELETE"):
            for headers in bad_headers:
                response = await http.request(method, url, headers=headers,
                                              json={"max_throughput": 1, "time_period": 1, "time_unit": "hours"})
                assert response.status_code == 401, (method, headers, response.text)
                assert response.headers["WWW-Authenticate"] == "Bearer"
                assert response.json()["error"] == "unauthorized"
                assert TOKEN not in response.text
        unchanged = await http.get(url, headers=AUTH)
        assert unchanged.status_code == 200 and unchanged.json()["max_throughput"] == 20


async def test_without_an_admin_token_the_routes_are_absent(empty_database):
    async with local_stack(empty_database) as stack:
        http, url = stack.hubspot.http, _url(stack, stack.portal_id, 31)
        for method in ("GET", "PUT", "DELETE"):
            for headers in ({}, AUTH, {"Authorization": "Bearer"}):
                response = await http.request(method, url, json=RATE, headers=headers)
                assert response.status_code == 404, (method, headers, response.text)


#: Bad override bodies and the field each 400 must name.
BAD_BODIES = [
    (b"not json", "body"),
    (b"[1, 2]", "body"),
    (b"{}", "body"),
    (b'{"max_throughput": "many", "time_period": 1, "time_unit": "seconds"}', "max_throughput"),
    (b'{"max_throughput": 0, "time_period": 1, "time_unit": "seconds"}', "max_throughput"),
    (b'{"max_throughput": 1.5, "time_period": 1, "time_unit": "seconds"}', "max_throughput"),
    (b'{"max_throughput": 5, "time_period": -1, "time_unit": "seconds"}', "time_period"),
    (b'{"max_throughput": 5, "time_unit": "seconds"}', "time_period"),
    (b'{"max_throughput": 5, "time_period": 1}', "time_unit"),
    (b'{"max_throughput": 5, "time_period": 1, "time_unit": "fortnights"}', "time_unit"),
    (b'{"max_throughput": 5, "time_period": 400, "time_unit": "days"}', "time_period"),
    (b'{"mode": "turbo"}', "mode"),
    (b'{"max_throughput": 5, "time_period": 1, "time_unit": "seconds", "rate": 3}', "rate"),
]


async def test_bad_body_is_400_naming_the_field_and_writes_nothing(empty_database):
    async with local_stack(empty_database, overrides={"admin_token": TOKEN}) as stack:
        http, url = stack.hubspot.http, _url(stack, stack.portal_id, 41)
        for body, field in BAD_BODIES:
            response = await http.put(url, content=body, headers={**AUTH, "Content-Type": "application/json"})
            assert response.status_code == 400, (body, response.text)
            assert (response.json()["error"], response.json()["field"]) == ("invalid_input", field), body
        assert (await http.get(url, headers=AUTH)).status_code == 404  # nothing written


async def test_live_daemons_pick_up_a_put_within_about_a_second(empty_database):
    step = Step(workflow_id=5101, action_id=51, limit=1, period=10, unit="seconds")
    async with local_stack(empty_database, daemons=2, overrides={"admin_token": TOKEN}) as stack:
        ids = [f"ap-{stack.portal_id}-5101-{i}" for i in range(40)]
        for cid in ids:  # all to the first daemon; the PUT goes to the second
            assert (await stack.hubspot.enroll(stack.daemons[0].url, cid, stack.portal_id, step)).status_code == 200
        with trio.fail_after(5):
            while not await stack.hubspot.completions():
                await trio.sleep(0.05)
        await trio.sleep(1.5)
        before = await stack.hubspot.completions()
        assert len(before) == 1  # the step's 1 per 10 s holds the backlog

        put_at = time.time()  # the sandbox stamps completions with this clock
        response = await stack.hubspot.http.put(_url(stack, stack.portal_id, step.action_id, daemon=1),
                                                json=RATE, headers=AUTH)
        assert response.status_code == 200
        with trio.fail_after(10):
            while len(done := await stack.hubspot.completions()) < len(ids):
                await trio.sleep(0.1)

    after = sorted(c["completedAt"] for c in done[1:])
    assert sorted(c["callbackId"] for c in done) == sorted(ids)  # each once
    # Picked up within about a second (a worker run, then one flush of the portal sender)...
    assert after[0] - put_at < 1.5, after[0] - put_at
    # ...then the override's 20 per second: 39 in about two seconds, not 390.
    assert max_per_window(after, 1.0) <= 20
    assert after[-1] - put_at < 4.0


async def test_ids_outside_a_bigint_are_404_not_500(empty_database):
    # A second new-user trial: a 20-digit portal id reached the database and gave a 500.
    async with local_stack(empty_database, overrides={"admin_token": TOKEN}) as stack:
        http, base = stack.hubspot.http, stack.daemons[0].admin_url
        answers = [(await http.put(f"{base}/api/config/{portal}/{action}", json=RATE, headers=AUTH)).status_code
                   for portal, action in [(99999999999999999999999, 1), (62515, 9223372036854775808), (0, 1)]]
        stored = await stack.daemons[0].db.transaction(
            lambda conn: conn.exec_driver_sql("SELECT count(*) FROM throttle_configs").scalar_one())
    assert answers == [404, 404, 404] and stored == 0


async def test_the_admin_token_alone_does_not_open_the_config_api_on_the_public_port(empty_database):
    # A security review: setting THROTTLED_ADMIN_TOKEN put the config API on the port HubSpot
    # (and the internet) reaches. It takes a switch of its own now.
    async with local_stack(empty_database, overrides={"admin_token": TOKEN}) as stack:
        daemon, http = stack.daemons[0], stack.hubspot.http
        public = await http.put(f"{daemon.url}/api/config/{stack.portal_id}/11", json=RATE, headers=AUTH)
        admin = await http.put(_url(stack, stack.portal_id, 11), json=RATE, headers=AUTH)
    assert public.status_code == 404 and admin.status_code == 200
    async with local_stack(empty_database, overrides={"admin_token": TOKEN, "public_config_api": True}) as stack:
        opened = await stack.hubspot.http.get(f"{stack.daemons[0].url}/api/config/{stack.portal_id}/11", headers=AUTH)
        refused = await stack.hubspot.http.get(f"{stack.daemons[0].url}/api/config/{stack.portal_id}/11")
    assert opened.status_code == 200 and opened.json()["max_throughput"] == RATE["max_throughput"]
    assert refused.status_code == 401
