"""The few human-facing HTML pages of the public listener (install results)."""

from __future__ import annotations

import html

from quart import Response

#: Where a HubSpot user's workflows are (``{portal_id}`` filled in). EU-hosted accounts are
#: redirected from app.hubspot.com to their own host by HubSpot.
HUBSPOT_WORKFLOWS_URL = "https://app.hubspot.com/workflows/{portal_id}"


def page(title: str, text: str, link: tuple[str, str] | None = None) -> Response:
    """A minimal HTML page: ``title`` as heading, ``text`` as one paragraph, and ``link``
    (``(url, label)``) as a link under it — all escaped."""
    head = "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
    body = f"{head}<title>{html.escape(title)}</title><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>"
    if link is not None:
        body += f'<p><a href="{html.escape(link[0])}">{html.escape(link[1])}</a></p>'
    return Response(body, content_type="text/html; charset=utf-8")


def installed_page(portal_id: int) -> Response:
    """The install's success page, with the way back to the portal's workflows."""
    return page("Throttle installed",
                f"HubSpot account {portal_id} is connected. Add the Throttle action to a workflow to use it.",
                (HUBSPOT_WORKFLOWS_URL.format(portal_id=portal_id), "Back to your workflows in HubSpot"))
