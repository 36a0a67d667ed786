"""The OAuth install against the sandbox: single-use states bound to the starting browser,
rate-limited callbacks, every failure logged once (finding 2 of the edge review: one
``state`` installed two portals, and 300 replayed callbacks drove 300 code exchanges —
each carrying the client secret — with nothing logged)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import sqlalchemy as sa
from structlog.testing import capture_logs

from throttled.db.engine import Database
from throttled.hubspot.oauth import COOKIE
from throttled.testing import local_stack
from throttled.web.oauth_routes import FAILURES_LOGGED_PER_MINUTE

OTHER_PORTAL = 777001


async def _start(http: httpx.AsyncClient, daemon_url: str, portal_id: int | None = None) -> tuple[str, str]:
    """Start an install in ``http`` (its cookie jar is the browser); return the callback URL
    the sandbox redirects to, and the install cookie."""
    started = await http.get(f"{daemon_url}/api/oauth/install")
    assert started.status_code == 302, started.text
    authorize = started.headers["Location"] + (f"&portal_id={portal_id}" if portal_id else "")
    approved = await http.get(authorize)
    assert approved.status_code == 302, approved.text
    return approved.headers["Location"], started.cookies[COOKIE]


async def _code_exchanges(stack) -> int:
    stats = (await stack.hubspot.http.get(f"{stack.hubspot.sandbox_url}/_sandbox/stats")).json()
    return sum(n for key, n in stats["paths"].items() if key.startswith("POST /oauth/") and "/token" in key)


async def _portal_ids(database_url: str) -> set[int]:
    db = Database(database_url, pool_size=1)
    try:
        return set(await db.transaction(lambda conn: conn.execute(sa.text("SELECT portal_id FROM portals")).scalars().all()))
    finally:
        db.dispose()


async def test_a_state_installs_once_and_only_from_the_browser_that_started_it(empty_database):
    async with local_stack(empty_database) as stack, httpx.AsyncClient(timeout=30) as browser, \
            httpx.AsyncClient(timeout=30) as stranger:
        daemon = stack.daemons[0].url
        callback, cookie = await _start(browser, daemon)
        state = parse_qs(urlsplit(callback).query)["state"][0]
        before = await _code_exchanges(stack)
        with capture_logs() as logs:
            from_stranger = await stranger.get(callback)  # the state alone, no cookie
            wrong_cookie = await stranger.get(callback, headers={"Cookie": f"{COOKIE}=not-the-nonce"})
            done = await browser.get(callback)
            # A second approval for another portal, carrying the same state and the same cookie.
            second = (await browser.get(f"{stack.hubspot.sandbox_url}/oauth/authorize?client_id=demo-client"
                                        f"&redirect_uri={callback.split('?')[0]}&state={state}"
                                        f"&portal_id={OTHER_PORTAL}")).headers["Location"]
            replayed = await browser.get(second, headers={"Cookie": f"{COOKIE}={cookie}"})
            again = await browser.get(callback, headers={"Cookie": f"{COOKIE}={cookie}"})
        after = await _code_exchanges(stack)
        portals = await _portal_ids(empty_database)

    assert done.status_code == 200 and "is connected" in done.text
    assert f'href="https://app.hubspot.com/workflows/{stack.portal_id}"' in done.text  # the way back
    assert "Max-Age=0" in done.headers["set-cookie"] or "expires=" in done.headers["set-cookie"].lower()
    reasons = [(r.status_code, r.json().get("reason")) for r in (from_stranger, wrong_cookie, replayed, again)]
    assert reasons == [(400, "no_cookie"), (400, "other_browser"), (400, "spent"), (400, "spent")]
    assert "set-cookie" not in from_stranger.headers  # a foreign callback never clears the install cookie
    assert after - before == 1, "only the first callback reached HubSpot"
    assert OTHER_PORTAL not in portals and stack.portal_id in portals
    failures = [e for e in logs if e["event"] == "oauth.install_failed"]
    assert [e["reason"] for e in failures] == ["no_cookie", "other_browser", "spent", "spent"]
    secrets_seen = [state, cookie, parse_qs(urlsplit(second).query)["code"][0]]
    assert not [s for s in secrets_seen for e in logs if s in repr(e)], "a state, nonce or code was logged"


async def test_callbacks_beyond_the_limit_are_refused_before_hubspot_and_counted_in_one_line(empty_database):
    limit = 5
    async with local_stack(empty_database, overrides={"oauth_callbacks_per_minute": limit}) as stack, \
            httpx.AsyncClient(timeout=30) as browser:
        daemon = stack.daemons[0].url
        before = await _code_exchanges(stack)  # the stack's own install spent one of the five
        with capture_logs() as logs:
            # Junk callbacks (no state, a forged one) never count against the limit: before,
            # five of them locked the next real install out (a new-user trial).
            for query in ("", "?state=forged&code=x") * 15:
                assert (await browser.get(f"{daemon}/api/oauth/callback{query}")).status_code == 400
            statuses = []
            for _ in range(20):
                callback, _cookie = await _start(browser, daemon)
                response = await browser.get(callback)
                statuses.append(response.status_code)
                if response.status_code == 429:
                    assert int(response.headers["Retry-After"]) >= 1
        exchanges = await _code_exchanges(stack) - before

    assert statuses.count(200) == limit - 1 and statuses.count(429) == 20 - (limit - 1), statuses
    assert exchanges == limit - 1
    failed = [e for e in logs if e["event"] == "oauth.install_failed"]
    limited = [e for e in failed if e["reason"] == "rate_limited"]
    assert len(limited) == FAILURES_LOGGED_PER_MINUTE  # 16 refused: 10 lines, the rest counted
    assert len([e for e in failed if e["reason"] == "missing"]) == FAILURES_LOGGED_PER_MINUTE  # 15 junk
