"""One time authority: no module decides by its host's wall clock or the database's ``now()``
behind the clock's back. Every "now" of the daemon comes from the one clock ``run_daemon``
builds (a :class:`~throttled.clock.DatabaseClock`), and the CLI's from ``database_now``.

An ``ast`` walk over ``throttled/``: wall-clock reads (``datetime.now``, ``time.time``, …)
appear only where they are the point (the clock itself, the sandbox standing in for HubSpot,
the demo and testing stacks playing HubSpot); SQL never asks the server for ``now()`` except in ``db/time.py``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "throttled"
WALL_CLOCK_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("time", "time"),
                    ("date", "today")}
ALLOWED = {"clock.py", "sandbox", "demo", "testing"}  # the last three play HubSpot's side
SQL_NOW = re.compile(r"\b(now\(\)|current_timestamp|clock_timestamp\(\)|statement_timestamp\(\)|localtimestamp)",
                     re.IGNORECASE)


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ALLOWED or rel.name in ALLOWED:
            continue
        yield rel, ast.parse(path.read_text())


def test_no_wall_clock_read_outside_the_clock():
    found = []
    for rel, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
                if (name, node.func.attr) in WALL_CLOCK_CALLS:
                    found.append(f"{rel}:{node.lineno} {name}.{node.func.attr}()")
            if isinstance(node, ast.Name) and node.id == "WallClock":
                found.append(f"{rel}:{node.lineno} WallClock")
    assert found == [], "decide by the clock you were given (clock.now()), not the host's: " + ", ".join(found)


def test_sql_never_reads_the_servers_clock_behind_the_daemons_back():
    found = []
    for rel, tree in _modules():
        if rel.as_posix() == "db/time.py":
            continue
        found.extend(f"{rel}:{node.lineno}" for node in ast.walk(tree)
                     if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_NOW.search(node.value)
                     and any(word in node.value.upper() for word in ("SELECT", "UPDATE", "WHERE")))
    assert found == [], "pass the clock's now as a parameter: " + ", ".join(found)


def test_the_walk_finds_what_it_looks_for():
    tree = ast.parse("import datetime\nx = datetime.datetime.now()\ny = time.time()\n")
    calls = [(n.func.value.attr if isinstance(n.func.value, ast.Attribute) else n.func.value.id, n.func.attr)
             for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert set(calls) <= WALL_CLOCK_CALLS and len(calls) == 2
    assert SQL_NOW.search("UPDATE jobs SET leased_until = now() + interval '1 s'")
