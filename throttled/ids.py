"""Ids we take from outside — pure: HubSpot's portal, workflow, action and callback numbers and
our job ids are stored as PostgreSQL ``bigint``, so every one is bounded here, once."""

from __future__ import annotations

#: The largest id a ``bigint`` holds; a larger one is refused as input (404 for a path, 400
#: for a body, a usage error for the CLI), never passed to the database.
MAX_ID = 2**63 - 1
