"""Custom workflow action definitions of the sandbox's one app (``shared/docs/hubspot-protocol.md``
§8): ``POST``/``GET /automation/v4/actions/{appId}?hapikey=…``.

Validation is minimal on purpose: enough to catch a definition HubSpot would surely refuse
(no usable ``actionUrl``, ``inputFields`` not a list, no English ``labels``), not a full schema.
Answers carry the fields the v4 spec marks required (``id``, ``revisionId``, ``published``,
``objectTypes``, ``functions``, …). No error body names the developer key.
"""

from __future__ import annotations

import copy
import hmac
from typing import Any
from urllib.parse import urlsplit

from .config import SandboxConfig
from .errors import SandboxError, api_error, invalid

FIRST_ACTION_ID = 1_000_001  # definition ids are numeric strings, as HubSpot's
_LOCAL_HOSTS = {"127.0.0.1", "localhost"}


class ActionDefinitions:
    """The action definitions of ``config.app_id``, in creation order."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.definitions: list[dict[str, Any]] = []

    def create(self, app_id: int, hapikey: str | None, body: Any) -> dict[str, Any]:
        """Store a definition; return it as HubSpot answers (201): ``{"id", "revisionId": "1", ...}``.

        Raises 401 (missing or wrong ``hapikey``), 404 (another app id), 400 (invalid
        definition, see :func:`validate_definition`), checked in that order.
        """
        self._check(app_id, hapikey)
        validate_definition(body)
        stored = copy.deepcopy(body)
        for name, default in (("published", False), ("objectTypes", []), ("functions", [])):
            stored.setdefault(name, default)
        stored |= {"id": str(FIRST_ACTION_ID + len(self.definitions)), "revisionId": "1"}
        self.definitions.append(stored)
        return copy.deepcopy(stored)

    def update(self, app_id: int, hapikey: str | None, definition_id: str, body: Any) -> dict[str, Any]:
        """Replace the fields ``body`` names in a definition and bump its ``revisionId``;
        raises 401 or 404 as :meth:`create`, 404 for an unknown id, 400 for an invalid result."""
        self._check(app_id, hapikey)
        for stored in self.definitions:
            if stored["id"] == definition_id:
                updated = copy.deepcopy(stored) | copy.deepcopy(body if isinstance(body, dict) else {})
                validate_definition(updated)
                updated |= {"id": definition_id, "revisionId": str(int(stored["revisionId"]) + 1)}
                stored.clear()
                stored.update(updated)
                return copy.deepcopy(stored)
        raise SandboxError(404, api_error("OBJECT_NOT_FOUND", f"Action definition {definition_id} not found"))

    def list(self, app_id: int, hapikey: str | None) -> dict[str, Any]:
        """``{"results": [definition, ...]}`` of the app; raises 401 or 404 as :meth:`create`."""
        self._check(app_id, hapikey)
        return {"results": copy.deepcopy(self.definitions)}

    def _check(self, app_id: int, hapikey: str | None) -> None:
        if not hapikey:
            raise SandboxError(401, api_error(
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports the developer API key (hapikey)."))
        if not hmac.compare_digest(hapikey.encode(), self.config.developer_api_key.encode()):
            raise SandboxError(401, api_error("INVALID_AUTHENTICATION", "The API key provided is invalid."))
        if app_id != self.config.app_id:
            raise SandboxError(404, api_error("OBJECT_NOT_FOUND", f"App {app_id} not found for this developer"))


def validate_definition(body: Any) -> None:
    """Raise a 400 ``VALIDATION_ERROR`` naming the field unless ``body`` is an object with an
    ``actionUrl`` (https, or http on 127.0.0.1/localhost), an ``inputFields`` list of objects and
    ``labels`` with an ``en`` object (§8: English labels required)."""
    if not isinstance(body, dict):
        raise invalid("Invalid input JSON: expected a JSON object")
    url = body.get("actionUrl")
    if not isinstance(url, str) or not _usable_action_url(url):
        raise invalid("actionUrl: an https URL is required (http only for 127.0.0.1 or localhost)")
    fields = body.get("inputFields")
    if not isinstance(fields, list) or not all(isinstance(f, dict) for f in fields):
        raise invalid("inputFields: a list of input field objects is required")
    labels = body.get("labels")
    if not isinstance(labels, dict) or not isinstance(labels.get("en"), dict):
        raise invalid('labels: an object with English labels under "en" is required')


def _usable_action_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if not host:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and host in _LOCAL_HOSTS)
