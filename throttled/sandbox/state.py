"""In-memory state and rules of the HubSpot sandbox: callback completions, the rate window, the
request log, faults and action definitions, on top of the OAuth rules of ``oauth.py``. No trio,
no HTTP: every call takes ``now`` (epoch seconds, float), so the rules are tested with plain
functions and ``app.py`` only maps HTTP onto these methods.

HubSpot facts come from ``shared/docs/hubspot-protocol.md``: callbacks §5, OAuth §6, rate limits
§7, action definitions §8. Where HubSpot's behaviour is undocumented (completing twice, batch
cap) the sandbox picks the strict answer the daemon must cope with; each such choice says so.
Errors are raised as one type, :class:`SandboxError`, whose body never echoes a token or secret.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from .actions import ActionDefinitions
from .config import SandboxConfig
from .errors import (
    SandboxError,
    api_error,
    callback_refusal,
    info_refusal,
    invalid,
    rate_limited,
    server_error,
    token_refusal,
)
from .faults import Faults
from .oauth import OAuthRules, TokenGrant, TokenVersion
from .ratewindow import RateWindows

__all__ = ["MALFORMED_JSON", "MAX_BATCH_INPUTS", "SandboxConfig", "SandboxError", "SandboxState",
           "TokenGrant", "TokenVersion"]

MAX_BATCH_INPUTS = 100  # §5: no documented maxItems; HubSpot's CRM batch rule is 100
MALFORMED_JSON: Any = object()  # what app.py passes as ``body`` when the request was not JSON

Via = Literal["single", "batch"]


class SandboxState(OAuthRules):
    """Everything the sandbox remembers. Mutate only through methods; read attributes freely.

    Readable: ``token_calls`` (portal -> token-endpoint calls, to assert single-flight refresh),
    ``completions`` (records in order), ``requests`` ("<route> <status>" -> count), ``paths``
    ("<method> <URL rule> <status>" -> count: which API version a client used),
    ``rate_limited`` (429s given), ``windows`` (rate windows and the accepted-request log),
    ``actions`` (action definitions, §8), ``repeats`` (callback id -> completion requests that
    reached the sandbox after it was already completed: the client sent it again, e.g. after
    a timeout or a crash). Settable: ``rotate_refresh_tokens`` (see
    :class:`OAuthRules`) and ``faults`` (a :class:`Faults`; or use :meth:`set_faults`).
    """

    def __init__(self, config: SandboxConfig, faults: Faults | None = None) -> None:
        super().__init__(config)
        self.faults = faults or Faults()
        self.windows = RateWindows(config.rate_limit_max, config.rate_limit_interval_s)
        self.actions = ActionDefinitions(config)
        self._completed: set[tuple[int, str]] = set()
        self.completions: list[dict[str, Any]] = []
        self.repeats: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.paths: Counter[str] = Counter()
        self.rate_limited = 0

    def access_lifetime_s(self) -> float:
        """Real lifetime (s) of access tokens issued now: ``faults.token_lifetime_s`` if set."""
        early = self.faults.token_lifetime_s
        return self.config.token_lifetime_s if early is None else early

    # --- authenticated API: the rate window (§7) --------------------------------------------

    def access_token_info(self, token: str, now: float) -> tuple[dict[str, Any], dict[str, str]]:
        """``GET /oauth/v1/access-tokens/{token}``: (metadata body, rate headers) (§6).

        Counts against the token's portal window (§7). Raises 404 for an unknown or expired
        token, 429 past the rate limit or under a rate fault.
        """
        access = self.live_access(token, now)
        if access is None:
            raise SandboxError(404, api_error("OBJECT_NOT_FOUND", "Token not found"))
        if self.faults.token_info_refusal:
            raise info_refusal(self.faults.token_info_refusal)
        headers = self.check_rate(access.portal_id, now)
        body = {
            "token": token, "user": "demo@example.org",
            "hub_domain": f"demo-{access.portal_id}.hubspot.com", "scopes": list(self.config.scopes),
            "hub_id": access.portal_id, "app_id": self.config.app_id,
            "expires_in": int(access.expires_at - now), "user_id": 1, "token_type": "access",
        }
        return body, headers

    def check_rate(self, portal_id: int, now: float) -> dict[str, str]:
        """Count one authenticated request in the portal's rolling window; return the rate
        headers (§7).

        Raises 429 with §7's body, in this order: ``DAILY`` while ``faults.daily_limit`` (headers
        show the window's real remaining); ``TEN_SECONDLY_ROLLING`` during a
        ``faults.rate_limit_storm`` or past ``rate_limit_max`` in ``(now - interval, now]``
        (Remaining 0). A 429 is not counted in the window nor in the request log.
        """
        policy = self.faults.rate_limit_policy()
        if policy == "DAILY":
            self.rate_limited += 1
            raise rate_limited(policy, self.windows.headers(self.windows.remaining(portal_id, now)))
        remaining = None if policy else self.windows.admit(portal_id, now)
        if remaining is None:
            self.rate_limited += 1
            raise rate_limited("TEN_SECONDLY_ROLLING", self.windows.headers(0))
        return self.windows.headers(remaining)

    # --- callbacks (§5) ---------------------------------------------------------------------

    def complete(self, token: str | None, body: Any, now: float, *,
                 callback_id: str | None = None) -> dict[str, str]:
        """Complete one callback (``callback_id`` given, ``body`` a CallbackCompletionRequest)
        or a batch (``body`` = ``{"inputs": [...]}``); return the rate headers of the 204.

        Order: 401 auth, 429 rate (faults first), the ``error_rate`` fault's 5xx, then 400
        validation, poison ids, repeats. Completing an already completed callback, or the same
        id twice in one batch, is a 400 and the whole batch is rejected with nothing recorded
        (§5 leaves this undocumented; the strict answer). Poison ids are refused the same way.
        """
        portal = self.authenticate(token, now)
        headers = self.check_rate(portal, now)
        via: Via = "batch" if callback_id is None else "single"
        try:
            if self.faults.draw_server_error():
                raise server_error(self.faults.error_status)
            inputs = _parse_inputs(body, callback_id)
            ids = [item["callbackId"] for item in inputs]
            refusal = self.faults.callbacks_refusal
            if refusal and not (refusal == "too_large" and via == "single"):
                raise callback_refusal(refusal, via, ids)
            _refuse(via, self.faults.poisoned(ids), "Callback {} could not be completed",
                    "{} callback(s) in this batch could not be completed")
            self.repeats.update(i for i in ids if (portal, i) in self._completed)
            _refuse(via, self._already_completed(portal, ids), "Callback {} has already been completed",
                    "{} callback(s) already completed or repeated in this batch")
        except SandboxError as error:
            error.headers.update(headers)
            raise
        for item in inputs:
            self._completed.add((portal, item["callbackId"]))
            self.completions.append({
                "callbackId": item["callbackId"], "portalId": portal, "completedAt": now,
                "outputFields": dict(item["outputFields"]), "via": via,
            })
        return headers

    def token(self, form: Any, now: float, version: TokenVersion) -> dict[str, Any]:
        """``POST /oauth/{v1,v3}/token`` with the token faults applied first: a refused call
        is counted as a token call of its portal (when the form names a known code or
        refresh token) and answered with the fault's error; else the OAuth rules answer."""
        refusal = self.faults.token_refusal_now()
        if refusal is None or (refusal == "retired_path" and version == "v1"):
            return super().token(form, now, version)
        portal = self.portal_of_form(form)
        if portal is not None:
            self.token_calls[portal] += 1
        if refusal in ("rate_limited", "daily_limit"):
            self.rate_limited += 1
        raise token_refusal(refusal)

    def token_delay_s(self) -> float:
        """Seconds the app waits before answering a token call (``token_latency_s``)."""
        return self.faults.token_latency_s

    def callback_delay_s(self) -> float:
        """Seconds the app waits before answering a callback completion (latency/stall faults)."""
        return self.faults.delay_s()

    # --- test control -----------------------------------------------------------------------

    def set_faults(self, changes: dict[str, Any]) -> Faults:
        """Merge ``changes`` (JSON, by field name) into the faults; return them. 400 on bad input,
        leaving the faults as they were. Restarts the ``error_rate`` draws from ``seed``."""
        self.faults = self.faults.merged(changes)
        return self.faults

    def clear_faults(self) -> Faults:
        """Turn every fault off; return the new (default) faults."""
        self.faults = Faults()
        return self.faults

    def request_times(self, portal_id: int) -> list[float]:
        """Epoch-second times of the portal's requests accepted into its rate window, in order."""
        return list(self.windows.accepted.get(portal_id, []))

    def record_request(self, route: str, status: int, path: str | None = None) -> None:
        """Count one answered request under ``"<route> <status>"`` for ``stats()``, and under
        ``"<path> <status>"`` when ``path`` (``"<method> <URL rule>"``, e.g.
        ``"POST /oauth/v3/token"``; rules name no token or callback id) is given."""
        self.requests[f"{route} {status}"] += 1
        if path is not None:
            self.paths[f"{path} {status}"] += 1

    def stats(self) -> dict[str, Any]:
        """Counters since the last reset, JSON-ready (portal keys as strings).

        ``max_in_window``: per portal, the most accepted requests in any rolling
        ``rate_limit_interval_s`` window (§7's budget, as HubSpot measures it). ``paths``: the
        requests by URL rule, so a test sees which endpoint versions were called.
        """
        return {
            "requests": dict(self.requests),
            "paths": dict(self.paths),
            "token_calls": {str(p): n for p, n in self.token_calls.items()},
            "rate_limited": self.rate_limited,
            "completions": len(self.completions),
            "max_in_window": {str(p): n for p, n in self.windows.max_in_window().items()},
        }

    def reset(self) -> None:
        """Forget completions (so callback ids may be completed again), counters, rate windows
        and the request log; keep the app, codes, tokens, faults and action definitions."""
        self.completions.clear()
        self.repeats.clear()
        self._completed.clear()
        self.windows.clear()
        self.token_calls.clear()
        self.requests.clear()
        self.paths.clear()
        self.rate_limited = 0

    # --- private ----------------------------------------------------------------------------

    def _already_completed(self, portal_id: int, ids: list[str]) -> list[str]:
        """Ids completed before, or repeated within ``ids`` (sorted, each once)."""
        seen: set[str] = set()
        bad: set[str] = set()
        for callback_id in ids:
            if (portal_id, callback_id) in self._completed or callback_id in seen:
                bad.add(callback_id)
            seen.add(callback_id)
        return sorted(bad)


def _refuse(via: Via, bad: list[str], single: str, batch: str) -> None:
    """If ``bad`` has ids, raise the 400 naming them in ``context.callbackIds``; the message is
    ``single`` formatted with the id, or ``batch`` formatted with how many."""
    if bad:
        message = single.format(bad[0]) if via == "single" else batch.format(len(bad))
        raise invalid(message, context={"callbackIds": bad})


def _parse_inputs(body: Any, callback_id: str | None) -> list[dict[str, Any]]:
    """Validate a single or batch completion body into ``[{"callbackId", "outputFields"}, ...]``."""
    if body is MALFORMED_JSON or not isinstance(body, dict):
        raise invalid("Invalid input JSON: expected a JSON object")
    raw: list[Any] | None
    if callback_id is not None:
        raw, prefix = [{**body, "callbackId": callback_id}], ""
    else:
        raw, prefix = body.get("inputs"), "inputs"
        if not isinstance(raw, list) or not raw:
            raise invalid("inputs: a non-empty list is required")
        if len(raw) > MAX_BATCH_INPUTS:
            raise invalid(f"inputs: at most {MAX_BATCH_INPUTS} inputs per batch, got {len(raw)}")
    for n, item in enumerate(raw):
        where = f"{prefix}[{n}]." if prefix else ""
        if not isinstance(item, dict):
            raise invalid(f"{prefix}[{n}]: expected an object")
        if not isinstance(item.get("callbackId"), str) or not item["callbackId"]:
            raise invalid(f"{where}callbackId: a non-empty string is required")
        fields = item.get("outputFields")
        if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
            raise invalid(f"{where}outputFields: a map of string to string is required")
        if not isinstance(item.get("typedOutputs", {}), dict):
            raise invalid(f"{where}typedOutputs: expected an object")
    return raw
