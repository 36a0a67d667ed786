"""The few human-facing HTML pages of the public listener (install results)."""

from __future__ import annotations

import html

from quart import Response


def page(title: str, text: str) -> Response:
    """A minimal HTML page: ``title`` as heading, ``text`` as one paragraph (both escaped)."""
    body = f"<!doctype html><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>"
    return Response(body, content_type="text/html; charset=utf-8")
