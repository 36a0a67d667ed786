"""The layering anyone can repeat: an ``ast`` walk of ``throttled/``'s imports.

No two packages import each other (directly or around a circle), and the pure modules —
the core the design keeps apart from I/O — import no I/O library and no I/O module of ours."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "throttled"
PURE = ["throttle/rate.py", "throttle/business_hours.py", "throttle/queue_ids.py", "throttle/policy.py",
        "throttle/step.py", "throttle/forecast.py", "throttle/block_length.py", "hubspot/signatures.py",
        "hubspot/answers.py", "hubspot/send_policy.py",
        "hubspot/outputs.py", "jobs/backoff.py", "jobs/outcomes.py", "ingest/payload.py", "ingest/inputs.py",
        "settings_rules.py", "states.py", "ids.py", "hubspot/oauth.py", "web/limits.py", "web/edge_limits.py",
        "web/charts.py", "web/customer/session.py"]
IO_LIBRARIES = {"trio", "httpx", "sqlalchemy", "psycopg", "quart", "quart_trio", "hypercorn", "pgserver", "socket"}
IO_MODULES = {"throttled.db", "throttled.web", "throttled.daemon", "throttled.cli", "throttled.service",
              "throttled.jobs.scheduler", "throttled.hubspot.client", "throttled.hubspot.tokens"}


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _unit(module: str) -> str:
    """A module's unit of layering: its subpackage or top-level module (``throttled.hubspot``,
    ``throttled.settings``); the package itself is ``throttled``."""
    return ".".join(module.split(".")[:2])


def test_no_package_imports_another_that_imports_it_back():
    graph: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        source = _unit(_module(path))
        for name in _imports(path):
            target = _unit(name)
            if name.startswith("throttled.") and target != source and source != "throttled":
                graph[source].add(target)
    cycles = []
    for start in sorted(graph):  # a depth-first walk from each unit back to itself
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    cycles.append(" -> ".join([*trail, nxt]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
    assert cycles == [], "package cycles:\n" + "\n".join(sorted(set(cycles)))


def test_pure_modules_import_no_io():
    problems = []
    for rel in PURE:
        path = PACKAGE / rel
        assert path.exists(), f"listed as pure but missing: {rel}"
        problems.extend(f"{rel} imports {name}" for name in _imports(path)
                        if name.split(".")[0] in IO_LIBRARIES or any(name == m or name.startswith(m + ".") for m in IO_MODULES))
    assert problems == [], "\n".join(problems)


def test_the_walk_sees_a_cycle_and_an_io_import(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from throttled.web import app\nimport trio\n")
    b.write_text("import throttled.db.engine\n")
    assert "throttled.web" in _imports(a) and "trio" in _imports(a) and "throttled.db.engine" in _imports(b)
    assert _unit("throttled.hubspot.client") == "throttled.hubspot" and _unit("throttled.settings") == "throttled.settings"
