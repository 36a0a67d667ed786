"""The customer page (``/app``) in a real headless Chromium, driven over the DevTools
protocol (``tests/support/cdp.py``), against a real daemon, PostgreSQL and the sandbox HubSpot.

Two installed accounts: A (the stack's own, which the sandbox's authorize page grants by
default — so the browser signs in exactly as a user would, with no portal chosen by us) and
B (installed through the real OAuth redirects; signed in with httpx, the sandbox's
``portal_id`` choice standing for the user picking that account on HubSpot's page). The
browser, signed in as A, sees only A's throttles, steers A's queues and named throttles
through the page's own forms (CSRF token included), and gets ``404`` for each of B's queue
ids and slugs, in URLs and in forms, and ``403`` for a POST without or with a wrong token —
the database shows every change, and no change otherwise. Screenshots at 390 px (a phone)
and 1,400 px go to ``test-artefacts/customer-page/``.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from urllib.parse import quote

import httpx
import trio

from tests.support.cdp import Page, chromium, chromium_page
from tests.support.seed import seed_queues
from throttled.db import named_throttles as named_sql
from throttled.db import portals as portals_sql
from throttled.db import queues as queues_sql
from throttled.testing import Step, local_stack

ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artefacts" / "customer-page"
B = 880002
NOT_INSTALLED = 880404
B_STEP = Step(workflow_id=909, action_id=99, limit=1, period=1, unit="days")
B_SLUG = "bravo-only"
PHONE, DESKTOP = (390, 844), (1400, 900)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    length, chunk = struct.unpack(">I4s", data[8:16])
    assert (length, chunk) == (13, b"IHDR")
    return struct.unpack(">II", data[16:24])


def _form(action: str) -> str:
    """JavaScript finding the form that posts to ``action``."""
    return f"document.querySelector('form[action=\"{action}\"]')"


def _q(queue_id: str) -> str:
    return "/app/queues/" + quote(queue_id, safe="")


async def _sign_in_with_httpx(http: httpx.AsyncClient, daemon: str, portal_id: int) -> httpx.Response:
    """Sign in through the real redirects, the sandbox granting ``portal_id``; the callback's answer."""
    started = await http.get(f"{daemon}/app/login")
    assert started.status_code == 302, started.text
    approved = await http.get(started.headers["Location"] + f"&portal_id={portal_id}")
    assert approved.status_code == 302, approved.text
    return await http.get(approved.headers["Location"])


async def _csrf(http: httpx.AsyncClient, url: str) -> str:
    page = await http.get(url)
    assert page.status_code == 200, page.text[:300]
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, "no CSRF field on the page"
    return found.group(1)


NAMED_FORM = {"display_name": "Newsletter sends", "max_throughput": "50", "time_period": "1", "time_unit": "hours",
              "mode": "smooth", "release_days": "mon-fri", "release_hours": "08:00-18:00", "time_zone": "Europe/Berlin"}


def _fill(fields: dict[str, str]) -> str:
    """JavaScript setting the named-throttle form's fields."""
    return "; ".join(f"document.getElementById({name!r}).value = {value!r}" for name, value in fields.items())


async def test_a_customer_sees_and_steers_only_their_own_throttles_in_chromium(empty_database, tmp_path):
    chromium()  # fail under CI, skip elsewhere, before starting anything
    with trio.fail_after(110):
        async with local_stack(empty_database) as stack, httpx.AsyncClient(timeout=30) as bravo:
            daemon, db = stack.daemons[0].url, stack.daemons[0].db
            a = stack.portal_id
            ids = await seed_queues(stack)  # A: slow (1 per hour, 2 held), fast, shared "promo"
            assert await stack.hubspot.install(daemon, portal_id=B) == B
            for i in range(3):
                assert (await stack.hubspot.enroll(daemon, f"bravo-{i}", B, B_STEP)).status_code == 200
            b_queue = B_STEP.queue_id(B)
            # B signs in (httpx) and makes a named throttle through its own page.
            assert (await _sign_in_with_httpx(bravo, daemon, B)).status_code == 303
            made = await bravo.post(f"{daemon}/app/throttles", data={
                "csrf": await _csrf(bravo, f"{daemon}/app/throttles/new"), "slug": B_SLUG,
                **NAMED_FORM, "display_name": "Bravo secret list"})
            assert made.status_code == 303, made.text[:300]
            portal_before = await db.transaction(portals_sql.get_portal, a)

            async with chromium_page(tmp_path / "chromium") as page:
                assert await page.navigate(f"{daemon}/app") == 200
                assert "Sign in with HubSpot" in await page.html()
                # The link: our authorize redirect, the sandbox's approval, our callback, 303 to /app.
                assert await page.navigate(f"{daemon}/app/login") == 200
                assert page.url == f"{daemon}/app", page.url
                await _sees_only_its_own(page, ids, b_queue, a)
                await _manages_named_throttles(page, db, a)
                await _screenshots(page, daemon)  # the slow queue still holds 2: a forecast in the picture
                await _steers_its_queue(page, db, daemon, ids["slow"])
                await _cannot_reach_the_other_account(page, db, daemon, ids["slow"], b_queue)

            # Signing in changed nothing of the portal (no tokens stored, no row touched).
            portal_after = await db.transaction(portals_sql.get_portal, a)
            assert (portal_after.access_token, portal_after.updated_at) == (portal_before.access_token,
                                                                             portal_before.updated_at)


async def _sees_only_its_own(page: Page, ids: dict[str, str], b_queue: str, a: int) -> None:
    html = await page.html()
    for queue_id in ids.values():
        assert f'id="{queue_id}"' in html, f"A's queue {queue_id} is missing"
    assert b_queue not in html and str(B) not in html and "Bravo" not in html and B_SLUG not in html
    assert f"HubSpot account {a}" in html
    slow = await page.evaluate(f"document.getElementById({ids['slow']!r}).outerHTML")
    assert "<svg" in slow and "<rect" in slow, "no bars in the slow queue's charts"
    assert "1 released in the last hour" in slow and "1 released in the last day" in slow
    assert "1 per hour, burst" in slow and ">2</dd>" in slow  # its rate and the 2 held
    assert re.search(r"the last of the 2 held records is forecast to go by \d{4}-\d\d-\d\d \d\d:\d\d UTC", slow), slow
    shared = await page.evaluate(f"document.getElementById({ids['shared']!r}).outerHTML")
    assert "Shared throttle “promo”" in shared  # a shared queue without a named throttle, in words


async def _steers_its_queue(page: Page, db, daemon: str, slow: str) -> None:
    async def state() -> str:
        return (await db.transaction(queues_sql.get_queue, slow)).state

    assert await page.submit(_form(f"{_q(slow)}/pause")) == 200
    assert page.url == f"{daemon}{_q(slow)}" and await state() == "paused"
    assert "Paused" in await page.html()
    # A POST without the token, then with a wrong one: 403, and the queue stays paused.
    resume = _form(f"{_q(slow)}/resume")
    assert await page.submit(resume, before="f.querySelector('[name=csrf]').remove()") == 403
    assert await state() == "paused"
    await page.navigate(f"{daemon}{_q(slow)}")
    assert await page.submit(resume, before="f.querySelector('[name=csrf]').value = 'forged'") == 403
    assert await state() == "paused"
    await page.navigate(f"{daemon}{_q(slow)}")
    assert await page.submit(resume) == 200 and await state() == "active"
    assert await page.submit(_form(f"{_q(slow)}/drain")) == 200
    with trio.fail_after(20):  # drained: both held records released at HubSpot, the queue active again
        while (await db.transaction(queues_sql.get_queue, slow)).state != "active" or \
                "Nothing is held" not in (await _reload(page, f"{daemon}{_q(slow)}")):
            await trio.sleep(0.1)


async def _reload(page: Page, url: str) -> str:
    await page.navigate(url)
    return await page.html()


async def _cannot_reach_the_other_account(page: Page, db, daemon: str, slow: str, b_queue: str) -> None:
    assert await page.navigate(f"{daemon}{_q(b_queue)}") == 404
    other = await page.evaluate("document.querySelector('main').innerText")
    assert await page.navigate(f"{daemon}{_q(f'queue:{B}:1:1:0')}") == 404
    assert await page.evaluate("document.querySelector('main').innerText") == other  # unknown reads the same
    for action in ("pause", "drain"):  # A's own form (valid token) aimed at B's queue
        await page.navigate(f"{daemon}{_q(slow)}")
        form = _form(f"{_q(slow)}/pause")
        assert await page.submit(form, before=f"f.action = '{_q(b_queue)}/{action}'") == 404
    b_row = await db.transaction(queues_sql.get_queue, b_queue)
    assert b_row.state == "active", "B's queue changed"
    # B's named throttle: its page, its update and its state changes are all 404 to A.
    assert await page.navigate(f"{daemon}/app/throttles/{B_SLUG}") == 404
    for target in (f"/app/throttles/{B_SLUG}/deactivate", f"/app/throttles/{B_SLUG}/delete", f"/app/throttles/{B_SLUG}"):
        await page.navigate(f"{daemon}{_q(slow)}")
        form = _form(f"{_q(slow)}/pause")
        filled = f"f.action = '{target}'; " + "; ".join(
            f"{{ const i = document.createElement('input'); i.name = {k!r}; i.value = {v!r}; f.appendChild(i) }}"
            for k, v in {**NAMED_FORM, "display_name": "Taken over"}.items())
        assert await page.submit(form, before=filled) == 404, target
    b_named = await db.transaction(named_sql.get_named, B, B_SLUG)
    assert (b_named.state, b_named.display_name) == ("active", "Bravo secret list"), "B's named throttle changed"


async def _manages_named_throttles(page: Page, db, a: int) -> None:
    base = page.url.split("/app")[0]
    await page.navigate(f"{base}/app/throttles/new")
    form = _form("/app/throttles")
    # A bad field is shown at its place with the parser's words (400), and nothing is made.
    assert await page.submit(form, before=_fill({"slug": "newsletter", **NAMED_FORM, "time_zone": "Mars/Olympus"})) == 400
    assert "must be an IANA time zone" in await page.html()
    assert await db.transaction(named_sql.get_named, a, "newsletter") is None
    assert await page.submit(form, before=_fill({"slug": "newsletter", **NAMED_FORM})) == 200
    made = await db.transaction(named_sql.get_named, a, "newsletter")
    assert (made.display_name, made.max_throughput, made.mode, made.time_zone, made.state) == (
        "Newsletter sends", 50, "smooth", "Europe/Berlin", "active")
    assert "Newsletter sends" in await page.html() and "50 per hour, smooth, mon-fri 08:00-18:00 Europe/Berlin" in \
        await page.html()
    await page.navigate(f"{base}/app/throttles/new")  # the same identifier again: 409
    assert await page.submit(form, before=_fill({"slug": "newsletter", **NAMED_FORM})) == 409
    # Edit: the form comes filled with the stored values.
    await page.navigate(f"{base}/app/throttles/newsletter")
    assert await page.evaluate("document.getElementById('release_hours').value") == "08:00-18:00"
    assert await page.submit(_form("/app/throttles/newsletter"), before=_fill({"max_throughput": "75"})) == 200
    assert (await db.transaction(named_sql.get_named, a, "newsletter")).max_throughput == 75
    assert await page.submit(_form("/app/throttles/newsletter/deactivate")) == 200
    assert (await db.transaction(named_sql.get_named, a, "newsletter")).state == "inactive"
    assert await page.submit(_form("/app/throttles/newsletter/activate")) == 200
    assert (await db.transaction(named_sql.get_named, a, "newsletter")).state == "active"


async def _screenshots(page: Page, daemon: str) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    await page.navigate(f"{daemon}/app")
    for name, (width, height), mobile in (("phone", PHONE, True), ("desktop", DESKTOP, False)):
        data = await page.screenshot(width, height, mobile=mobile)
        (ARTEFACTS / f"{name}.png").write_bytes(data)
        assert _png_size(data) == (width, height), name
        assert len(data) > 15_000, f"{name} screenshot of {len(data)} bytes looks blank"
        overflow = await page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= width, f"{name}: the page is {overflow} px wide in a {width} px window"


async def test_sign_in_refuses_an_account_without_the_app_and_has_no_side_effects(empty_database):
    with trio.fail_after(60):
        async with local_stack(empty_database) as stack, httpx.AsyncClient(timeout=30) as browser:
            daemon, db = stack.daemons[0].url, stack.daemons[0].db
            refused = await _sign_in_with_httpx(browser, daemon, NOT_INSTALLED)
            assert refused.status_code == 403 and "has not installed the app" in refused.text
            assert "throttled_app" not in refused.headers.get("set-cookie", "")
            assert await db.transaction(portals_sql.availability, NOT_INSTALLED) is None

            started = await browser.get(f"{daemon}/app/login")
            callback = (await browser.get(started.headers["Location"])).headers["Location"]
            signed = await browser.get(callback)
            assert signed.status_code == 303 and signed.headers["Location"] == "/app"
            cookie = signed.headers.get_list("set-cookie")
            session = next(c for c in cookie if c.startswith("throttled_app="))
            assert "HttpOnly" in session and "Path=/app" in session and "SameSite=Lax" in session
            assert "Max-Age=43200" in session and "Secure" not in session  # http public URL
            replayed = await browser.get(callback, headers={"Cookie": started.headers["set-cookie"].split(";")[0]})
            assert replayed.status_code == 400 and replayed.json()["reason"] == "spent"

            assert f"HubSpot account {stack.portal_id}" in (await browser.get(f"{daemon}/app")).text
            csrf = await _csrf(browser, f"{daemon}/app")
            assert (await browser.post(f"{daemon}/app/logout", data={})).status_code == 403  # no token
            out = await browser.post(f"{daemon}/app/logout", data={"csrf": csrf})
            assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
            assert "Sign in with HubSpot" in (await browser.get(f"{daemon}/app")).text
            # No session: pages send to the sign-in, posts are refused before anything happens.
            assert (await browser.get(f"{daemon}/app/throttles/new")).status_code == 303
            assert (await browser.post(f"{daemon}/app/throttles", data={"csrf": csrf, "slug": "x"})).status_code == 403
