"""Public scaffolding for the demo, the tests and the benchmarks: a whole local stack
(sandbox HubSpot plus daemons, ``stack.py``), HubSpot's side of the conversation (signed
enrollments, completions read back), workflow steps, and scratch databases."""

from __future__ import annotations

from throttled.testing.databases import scratch_database, server_url
from throttled.testing.stack import (
    ACTION_PATH,
    Hubspot,
    Stack,
    Step,
    enrollment_body,
    free_port,
    local_stack,
    max_per_window,
    start_sandbox_process,
    wait_answering,
)

__all__ = ["ACTION_PATH", "Hubspot", "Stack", "Step", "enrollment_body", "free_port", "local_stack", "max_per_window",
           "scratch_database", "server_url", "start_sandbox_process", "wait_answering"]
