"""Scenario 6: after every other scenario, no OAuth token, client secret, encryption key or
admin token appears in any daemon's log (DEBUG level), any error body, admin API or CLI
output, and tokens are stored encrypted. Runs last (see conftest); it also makes traffic of
its own that touches every secret, so it checks something when run alone."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import trio

from throttled.testing import Step

from .harness import SESSION_SECRETS, Load, Secrets, drain, reliability_stack

STEP = Step(workflow_id=61, action_id=1, limit=50, period=1, unit="seconds")


async def _admin_texts(stack) -> list[str]:
    """Every admin route's answer, with the token and without it."""
    http, daemon = stack.hubspot.http, stack.daemons[0]
    queue = STEP.queue_id(stack.portal_id)
    paths = ["/api/admin/queues", f"/api/admin/queues/{queue}", "/api/admin/jobs?limit=500", "/api/admin/portals"]
    auth = {"Authorization": f"Bearer {stack.admin_token}"}
    texts = []
    for path in paths:
        texts.append((await http.get(daemon.admin_url + path, headers=auth)).text)
        texts.append((await http.get(daemon.admin_url + path, headers={"Authorization": "Bearer wrong-token-123456"})).text)
    texts.append((await http.get(daemon.admin_url + "/admin")).text)
    texts.append((await http.get(daemon.admin_url + "/metrics")).text)
    config = f"{daemon.admin_url}/api/config/{stack.portal_id}/{STEP.action_id}"
    texts.append((await http.put(config, headers=auth, json={"max_throughput": "x"})).text)  # a 400
    texts.append((await http.get(config, headers={"Authorization": "Bearer nope"})).text)  # a 401
    return texts


def _cli_texts(env: dict[str, str]) -> list[str]:
    """What an operator sees from the CLI with the daemon's settings."""
    texts = []
    for args in (["portals", "list", "--json"], ["queues", "list", "--json"], ["jobs", "list", "--json"],
                 ["config", "check", "--database"]):
        done = subprocess.run([sys.executable, "-m", "throttled", *args], env=env, capture_output=True, text=True, timeout=60)
        texts += [done.stdout, done.stderr]
    return texts


async def test_no_secret_in_logs_errors_or_admin_answers(reliability_database, log_dir, report):
    async with reliability_stack(reliability_database, log_dir) as stack:
        state = stack.sandbox.state
        await stack.set_faults(token_lifetime_s=1.0, error_rate=0.2, seed=3)  # refreshes and retries
        expired = await stack.hubspot.http.post(f"{stack.sandbox.url}/_sandbox/tokens/expire",
                                                json={"portal_id": stack.portal_id})
        expired.raise_for_status()
        load = Load(stack, [STEP], rate=30, prefix="secrets")
        await load.run(4)
        await drain(stack, load.acked, timeout_s=60)
        forged = await stack.hubspot.http.post(stack.daemons[0].url + "/api/hubspot/action", content=b"{}",
                                               headers={"X-HubSpot-Signature-v3": "forged", "Content-Type": "application/json"})
        stack.record_response(forged.text)
        for text in await _admin_texts(stack):
            stack.record_response(text)
        for text in await trio.to_thread.run_sync(_cli_texts, stack.daemons[0].env):
            stack.record_response(text)
        SESSION_SECRETS.values.update(state.issued_tokens())
        with psycopg.connect(reliability_database) as conn:
            stored = b"".join(bytes(a or b"") + bytes(r or b"") for a, r in
                              conn.execute("SELECT access_token, refresh_token FROM portals").fetchall())
        refreshes = sum(state.token_calls.values())

    leaks = SESSION_SECRETS.leaks()
    at_rest = [v[:6] + "…" for v in state.issued_tokens() if v.encode() in stored]
    report.add("6. secrets", {
        "secrets checked (tokens issued, client secrets, keys, admin tokens)": len(SESSION_SECRETS.values),
        "daemon log files scanned (all scenarios, DEBUG)": len(SESSION_SECRETS.logs),
        "bytes scanned (logs, error bodies, admin API, CLI)": SESSION_SECRETS.scanned_bytes(),
        "token calls in this scenario": refreshes,
        "secrets found": len(leaks),
        "plaintext tokens in the database": len(at_rest),
    })
    assert refreshes >= 3 and len(SESSION_SECRETS.values) >= 8
    assert SESSION_SECRETS.scanned_bytes() > 10_000
    assert leaks == []
    assert at_rest == []


def test_the_scan_finds_a_planted_secret(tmp_path):
    # The scan itself must be able to fail: a secret written to a log or a body is reported.
    scan = Secrets()
    scan.values.add("planted-secret-0123456789")
    (tmp_path / "daemon.log").write_text('{"event": "x", "token": "planted-secret-0123456789"}\n')
    scan.logs.append(tmp_path / "daemon.log")
    assert scan.leaks() == [(str(tmp_path / "daemon.log"), "plante…")]
    scan.logs.clear()
    scan.texts.append("error: planted-secret-0123456789")
    assert scan.leaks() == [("responses", "plante…")]
