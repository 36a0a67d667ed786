"""Every log line of the end-to-end suite is written to one file, at DEBUG, as JSON; when
the suite ends the file must hold no secret: no OAuth token (the sandbox issues 128-char
url-safe tokens), no client secret (``demo-secret-…`` from the local stack), no encryption
key (base64 of 32 bytes) and no admin token of these tests."""

from __future__ import annotations

import logging
import re

import pytest
import structlog

MANY_TESTS = 20
SECRET_PATTERNS = [
    re.compile(r"demo-secret-[0-9a-f]{16}"),   # client secrets of local_stack
    re.compile(r"[A-Za-z0-9_-]{100,}"),        # OAuth access/refresh tokens
    re.compile(r"[A-Za-z0-9+/]{43}="),         # encryption keys (base64 of 32 bytes)
    re.compile(r"admin-[0-9a-f]{32}"),         # admin tokens these tests use
]


@pytest.fixture(scope="session", autouse=True)
def logs_hold_no_secrets(tmp_path_factory, request):
    path = tmp_path_factory.mktemp("logs") / "e2e.jsonl"
    with path.open("w") as sink:
        structlog.configure(
            processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
            wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
            logger_factory=structlog.PrintLoggerFactory(file=sink),
            cache_logger_on_first_use=False,
        )
        yield
        structlog.reset_defaults()
    text = path.read_text()
    # A whole e2e run starts daemons, which log: an empty file then means logging went
    # elsewhere and the scan below checked nothing. A hand-picked few tests may log nothing.
    if request.session.testscollected >= MANY_TESTS:
        assert text.strip(), "the e2e tests should have logged something to check"
    leaks = sorted({m.group(0)[:12] + "…" for pattern in SECRET_PATTERNS for m in pattern.finditer(text)})
    assert not leaks, f"secrets in the e2e logs ({path}): {leaks}"
