"""The send policy: how one batch of callbacks gets completed — pure, sans I/O.

Like ``httpx``'s auth flows, the policy is a generator that *yields* what it wants done and
*receives* what happened; it never touches a socket, a database or a clock. The portal sender
drives it (``senders.py``): it makes the calls, sleeps, refreshes tokens and writes the
outcomes. Every decision about HubSpot's answers is made here, by acting on the
:class:`~throttled.hubspot.answers.Answer` of the one answer table (``answers.py``).

Commands the policy yields, and what the driver sends back:

=====================  ====================================================================
``Token()``            get an access token (refreshing it ahead of expiry): the token
                       endpoint's :class:`Answer` (``done`` when a token is at hand)
``Call(ids)``          complete ``ids`` (one id: single endpoint; more: batch); first drop
                       ids whose lease lapsed: a :class:`Reply` of the ids really sent and
                       HubSpot's answer (no ids left: ``Reply((), None)``)
``Refresh()``          HubSpot refused the token (401): refresh it unless another task
                       already did; the token endpoint's :class:`Answer`
``Pause(s, ids)``      wait ``s`` seconds (429, 5xx backoff): the ids still leased after it
``Released(ids)``      record them released at this moment (HubSpot acknowledged them)
``Ended(ids, a)``      end them: already completed (released), expired or failed, per ``a``
``Failing(ids, a)``    a transient failure: count the attempt; they stay leased
``GiveUp(ids, a)``     stop: they wait for their lease to lapse; their queues count a failure
``HoldPortal(ids, a)`` the portal is refused as a whole: hold it, put ``ids`` back in line
                       unsent (no attempt spent); ``a.until_next_day`` for the DAILY limit
=====================  ====================================================================

Rules: a 401 earns one refresh per run of 401s (a 401 right after a refresh gives up; a
refresh after a wait starts a new run, since a token may expire during a 429 wait); 429s
wait without spending an attempt; transient failures are retried after each delay of
``retry_delays`` (default 1, 2, 4 s), then given up; a refused batch is halved until the bad
callbacks stand alone (about 2·log2(n) calls, not n); an answer about the whole portal or app
stops the batch at once — nothing is ended, nothing bisected.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass

from throttled.hubspot.answers import Action, Answer

#: Pauses before each retry of a transient failure, seconds.
RETRY_DELAYS: tuple[float, ...] = (1.0, 2.0, 4.0)


@dataclass(frozen=True, slots=True)
class Token:
    """Get a usable access token."""


@dataclass(frozen=True, slots=True)
class Call:
    """Complete these callbacks."""

    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Reply:
    """What a :class:`Call` did: the ids sent (those still leased) and HubSpot's answer."""

    sent: tuple[str, ...]
    answer: Answer | None


@dataclass(frozen=True, slots=True)
class Refresh:
    """HubSpot refused the access token: get a new one."""


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait ``seconds`` before going on with ``ids``."""

    seconds: float
    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Released:
    """HubSpot acknowledged these completions now."""

    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Ended:
    """HubSpot refused these callbacks for good (``answer.action``: already done, expired, failed)."""

    ids: tuple[str, ...]
    answer: Answer


@dataclass(frozen=True, slots=True)
class Failing:
    """A transient failure on these callbacks; they will be tried again."""

    ids: tuple[str, ...]
    answer: Answer


@dataclass(frozen=True, slots=True)
class GiveUp:
    """These callbacks could not be sent; their leases will lapse."""

    ids: tuple[str, ...]
    answer: Answer


@dataclass(frozen=True, slots=True)
class HoldPortal:
    """The portal is refused as a whole: hold it and put these callbacks back in line."""

    ids: tuple[str, ...]
    answer: Answer


Command = Token | Call | Refresh | Pause | Released | Ended | Failing | GiveUp | HoldPortal
SendFlow = Generator[Command, object, None]


def send_flow(ids: Sequence[str], retry_delays: Sequence[float] = RETRY_DELAYS) -> SendFlow:
    """The policy for one batch of callback ids (≤ 100, one portal). Drive it with
    ``send()``: see the module docstring for each command and its reply."""
    flow = _Flow(list(ids), iter(retry_delays))
    token = yield Token()
    assert isinstance(token, Answer)
    if not (yield from flow.token_ready(token, Token())):
        return
    while flow.parts:
        part = flow.parts.pop(0)
        reply = yield Call(tuple(part))
        assert isinstance(reply, Reply)
        if not reply.sent or reply.answer is None:
            continue  # every lease lapsed on the way: they are back in line
        if not (yield from flow.after_call(list(reply.sent), reply.answer)):
            return


class _Flow:
    """The state of one batch: ``parts`` still to send (halves of a split batch first)."""

    def __init__(self, ids: list[str], retries: Iterator[float]) -> None:
        self.parts: list[list[str]] = [ids] if ids else []
        self.retries = retries
        self.refreshed = False  # a refresh was the last thing done about a 401

    def remaining(self, part: Sequence[str] = ()) -> tuple[str, ...]:
        return (*part, *(i for p in self.parts for i in p))

    def after_call(self, part: list[str], answer: Answer) -> Generator[Command, object, bool]:
        """Act on one call's answer; False when the batch is over."""
        action = answer.action
        if action is Action.DONE:
            self.refreshed = False
            yield Released(tuple(part))
            return True
        if action in (Action.ALREADY_DONE, Action.EXPIRED, Action.FAILED):
            yield Ended(tuple(part), answer)
            return True
        if action is Action.SPLIT:
            if len(part) == 1:  # a refusal of one callback that named no reason: it is this one
                yield Ended(tuple(part), Answer(Action.FAILED, answer.refers_to, answer.reason, answer.kind,
                                                status=answer.status))
                return True
            half = len(part) // 2
            self.parts[0:0] = [part[:half], part[half:]]
            return True
        if action is Action.REFRESH:
            if self.refreshed:  # refused right after a refresh: a real refusal
                yield GiveUp(self.remaining(part), answer)
                return False
            self.refreshed = True
            refresh = yield Refresh()
            assert isinstance(refresh, Answer)
            self.parts.insert(0, part)
            return (yield from self.token_ready(refresh, Refresh()))
        return (yield from self.wait_or_stop(part, answer))

    def token_ready(self, answer: Answer, again: Token | Refresh) -> Generator[Command, object, bool]:
        """After a token call: go on when ``done``; wait and ask ``again`` on a 429; retry
        transient failures; stop on the rest."""
        while answer.action is not Action.DONE:
            if answer.action in (Action.WAIT, Action.RETRY):
                delay = answer.wait_s if answer.action is Action.WAIT else next(self.retries, None)
                if delay is None:
                    yield GiveUp(self.remaining(), answer)
                    return False
                live = yield Pause(delay, self.remaining())
                if not self._keep(live):
                    return False
                reply = yield again
                assert isinstance(reply, Answer)
                answer = reply
                continue
            yield from self.stop(self.remaining(), answer)
            return False
        return True

    def wait_or_stop(self, part: list[str], answer: Answer) -> Generator[Command, object, bool]:
        """A 429 (wait, no attempt spent), a transient failure (retry after backoff) or an
        answer about the whole portal or app (stop)."""
        delay: float
        if answer.action is Action.WAIT:
            delay = answer.wait_s
        elif answer.action is Action.RETRY:
            backoff = next(self.retries, None)
            if backoff is None:
                yield GiveUp(self.remaining(part), answer)
                return False
            delay = backoff
            yield Failing(tuple(part), answer)
        else:
            yield from self.stop(self.remaining(part), answer)
            return False
        self.parts.insert(0, part)
        live = yield Pause(delay, self.remaining())
        self.refreshed = False  # a token may expire during the wait: that 401 earns a refresh
        return self._keep(live)

    def stop(self, ids: tuple[str, ...], answer: Answer) -> Generator[Command, object, None]:
        if answer.portal_wide:
            yield HoldPortal(ids, answer)
        else:
            yield GiveUp(ids, answer)

    def _keep(self, live: object) -> bool:
        """Keep only the ids still leased after a pause; False when none is left."""
        assert isinstance(live, tuple)
        alive = set(live)
        self.parts = [kept for p in self.parts if (kept := [i for i in p if i in alive])]
        return bool(self.parts)
