"""The send policy (``throttled/hubspot/send_policy.py``) driven by hand, row by row: no server,
no database, no clock. Each test plays HubSpot — the answers a scripted driver gives to the
policy's commands — and checks the commands the policy yields."""

from __future__ import annotations

from collections.abc import Callable

from throttled.hubspot.answers import Endpoint, classify, transport_failure
from throttled.hubspot.send_policy import (
    Call,
    Ended,
    Failing,
    GiveUp,
    HoldPortal,
    Pause,
    Refresh,
    Released,
    Reply,
    Token,
    send_flow,
)

OK = classify(Endpoint.COMPLETE_BATCH, 204)
UNAUTHORIZED = classify(Endpoint.COMPLETE_BATCH, 401)
SCOPES = classify(Endpoint.COMPLETE_BATCH, 403, {"category": "MISSING_SCOPES",
                                                 "errors": [{"context": {"requiredScopes": ["automation"]}}]})
BATCH_404 = classify(Endpoint.COMPLETE_BATCH, 404, {"category": "OBJECT_NOT_FOUND", "message": "Not found"})
SLOW_DOWN = classify(Endpoint.COMPLETE_BATCH, 429, {"policyName": "TEN_SECONDLY_ROLLING"}, {"Retry-After": "2"})
DAILY = classify(Endpoint.COMPLETE_BATCH, 429, {"policyName": "DAILY"})
DOWN = classify(Endpoint.COMPLETE_BATCH, 503)
TOKEN_OK = classify(Endpoint.TOKEN, 200)
TOKEN_SLOW_DOWN = classify(Endpoint.TOKEN, 429, {"errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"})
TOKEN_REVOKED = classify(Endpoint.TOKEN, 400, {"status": "BAD_REFRESH_TOKEN"})

Hubspot = Callable[[tuple[str, ...]], object]  # ids of a call -> its answer


def refused(bad: set[str]) -> Hubspot:
    """HubSpot refusing any request that holds one of ``bad`` (400), completing the rest."""
    def answer(ids):
        if not bad & set(ids):
            return OK
        endpoint = Endpoint.COMPLETE_ONE if len(ids) == 1 else Endpoint.COMPLETE_BATCH
        return classify(endpoint, 400, {"category": "VALIDATION_ERROR", "message": f"Callback {ids[0]} could not be completed"},
                        callback_ids=ids)
    return answer


def drive(ids, calls, token=(TOKEN_OK,), refresh=(TOKEN_OK,), lapsed=(), retry_delays=(1.0, 2.0, 4.0)) -> list:
    """Run the policy; ``calls`` is a list of answers (one per Call, in order) or a function
    of the call's ids. Pauses keep every id except ``lapsed``. Returns every command."""
    flow = send_flow(ids, retry_delays)
    answers, tokens, refreshes = (iter(calls) if isinstance(calls, list) else None), iter(token), iter(refresh)
    commands, reply = [], None

    def next_of(script, what):
        value = next(script, None)
        assert value is not None, f"the policy asked for more {what} than the test scripted: {commands}"
        return value

    try:
        while True:
            command = flow.send(reply)
            commands.append(command)
            if isinstance(command, Token):
                reply = next_of(tokens, "tokens")
            elif isinstance(command, Refresh):
                reply = next_of(refreshes, "refreshes")
            elif isinstance(command, Call):
                sent = tuple(i for i in command.ids if i not in lapsed)
                reply = Reply(sent, (next_of(answers, "calls") if answers else calls(sent)) if sent else None)
            elif isinstance(command, Pause):
                reply = tuple(i for i in command.ids if i not in lapsed)
            else:
                reply = None
            assert len(commands) < 200, "the policy does not end"
    except StopIteration:
        return commands


def of(kind, commands) -> list:
    return [c for c in commands if isinstance(c, kind)]


IDS = tuple(f"cb-{i}" for i in range(8))


def test_success_releases_the_batch_in_one_call():
    commands = drive(IDS, [OK])
    assert commands == [Token(), Call(IDS), Released(IDS)]


def test_a_poisoned_callback_is_found_by_halving_and_fails_alone():
    commands = drive(IDS, refused({"cb-6"}))
    assert [len(c.ids) for c in of(Call, commands)] == [8, 4, 4, 2, 2, 1, 1]  # 7 calls, not 8 singles
    assert [e.ids for e in of(Ended, commands)] == [("cb-6",)] and of(Ended, commands)[0].answer.action == "failed"
    assert sorted(i for r in of(Released, commands) for i in r.ids) == sorted(set(IDS) - {"cb-6"})


def test_missing_scopes_holds_the_portal_in_one_call_with_nothing_ended():
    commands = drive(IDS, [SCOPES])
    assert commands == [Token(), Call(IDS), HoldPortal(IDS, SCOPES)]


def test_a_batch_404_is_one_fact_about_the_endpoint_not_eight_expiries():
    commands = drive(IDS, [BATCH_404])
    assert commands == [Token(), Call(IDS), HoldPortal(IDS, BATCH_404)] and not of(Ended, commands)


def test_a_hold_mid_split_holds_everything_not_yet_settled():
    def answer(ids):
        return SCOPES if "cb-5" in ids and len(ids) < 8 else refused({"cb-1"})(ids)
    commands = drive(IDS, answer)
    hold = of(HoldPortal, commands)[0]
    released = {i for r in of(Released, commands) for i in r.ids}
    ended = {i for e in of(Ended, commands) for i in e.ids}
    assert set(hold.ids) | released | ended == set(IDS) and not set(hold.ids) & (released | ended)


def test_401_refreshes_once_then_succeeds():
    commands = drive(IDS, [UNAUTHORIZED, OK])
    assert commands == [Token(), Call(IDS), Refresh(), Call(IDS), Released(IDS)]


def test_401_right_after_a_refresh_gives_up():
    commands = drive(IDS, [UNAUTHORIZED, UNAUTHORIZED])
    assert commands[-1] == GiveUp(IDS, UNAUTHORIZED) and len(of(Refresh, commands)) == 1


def test_a_wait_starts_a_new_run_of_401s():
    # 401 -> refresh -> 429 -> wait -> 401 -> refresh again (the token died during the wait)
    commands = drive(IDS, [UNAUTHORIZED, SLOW_DOWN, UNAUTHORIZED, OK], refresh=(TOKEN_OK, TOKEN_OK))
    assert len(of(Refresh, commands)) == 2 and commands[-1] == Released(IDS)


def test_429_waits_its_retry_after_and_spends_no_attempt():
    commands = drive(IDS, [SLOW_DOWN, SLOW_DOWN, OK])
    assert [p.seconds for p in of(Pause, commands)] == [2.0, 2.0]
    assert not of(Failing, commands) and commands[-1] == Released(IDS)


def test_daily_limit_holds_the_portal():
    commands = drive(IDS, [DAILY])
    assert commands[-1] == HoldPortal(IDS, DAILY) and DAILY.until_next_day


def test_transient_failures_are_retried_after_each_delay_then_given_up():
    commands = drive(IDS, [DOWN] * 4)
    assert [p.seconds for p in of(Pause, commands)] == [1.0, 2.0, 4.0]
    assert len(of(Failing, commands)) == 3 and commands[-1] == GiveUp(IDS, DOWN)
    timeout = transport_failure("timed out")
    assert drive(IDS, [timeout, OK])[-1] == Released(IDS)


def test_leases_lost_during_a_wait_are_not_sent():
    commands = drive(IDS, [SLOW_DOWN, OK], lapsed={"cb-0", "cb-1"})
    assert of(Call, commands)[-1].ids == IDS[2:] and commands[-1] == Released(IDS[2:])


def test_nothing_leased_any_more_ends_quietly():
    assert drive(IDS, [], lapsed=set(IDS)) == [Token(), Call(IDS)]


def test_the_token_endpoint_saying_slow_down_is_waited_out_not_held_for_a_day():
    commands = drive(IDS, [OK], token=(TOKEN_SLOW_DOWN, TOKEN_OK))
    assert commands == [Token(), Pause(10.0, IDS), Token(), Call(IDS), Released(IDS)]


def test_a_refresh_answered_429_waits_then_refreshes_again():
    commands = drive(IDS, [UNAUTHORIZED, OK], refresh=(TOKEN_SLOW_DOWN, TOKEN_OK))
    assert commands == [Token(), Call(IDS), Refresh(), Pause(10.0, IDS), Refresh(), Call(IDS), Released(IDS)]


def test_a_revoked_refresh_token_stops_the_batch_for_the_portal():
    commands = drive(IDS, [UNAUTHORIZED], refresh=(TOKEN_REVOKED,))
    assert commands[-1] == HoldPortal(IDS, TOKEN_REVOKED)


def test_an_already_completed_callback_ends_as_done():
    already = classify(Endpoint.COMPLETE_ONE, 400, {"message": "Callback cb-0 has already been completed"},
                       callback_ids=["cb-0"])
    commands = drive(("cb-0",), [already])
    assert commands[-1] == Ended(("cb-0",), already) and already.action == "already_done"
