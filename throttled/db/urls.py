"""Database URLs in the three spellings we meet — pure, no I/O.

Operators write libpq's URI, and for a primary with standbys its multi-host form
(``postgresql://user@db1:5432,db2:5432/throttled?target_session_attrs=read-write``: libpq
tries the hosts in order and keeps the one that accepts writes). SQLAlchemy's URL parser
cannot read a comma in the host part; it takes several hosts as repeated ``host`` query
parameters instead (``?host=db1:5432&host=db2:5432``, SQLAlchemy 2.0's psycopg dialect).
A raw psycopg connection (the LISTEN connection) wants libpq's form again.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlencode

import sqlalchemy as sa

_MULTI_HOST = re.compile(r"^(?P<scheme>[A-Za-z0-9+.-]+://)(?P<user>[^@/?]*@)?(?P<hosts>[^/?@]*,[^/?]*)(?P<rest>[/?].*)?$")


def sqlalchemy_url(url: str) -> str:
    """``url`` as SQLAlchemy reads it, driver ``postgresql+psycopg``; a multi-host netloc
    becomes repeated ``host`` parameters.

    Raises:
        ValueError, sqlalchemy.exc.ArgumentError: not a URL SQLAlchemy can parse.
    """
    url = url.replace("postgres://", "postgresql://", 1)
    found = _MULTI_HOST.match(url)
    if found:
        path, _, query = (found["rest"] or "/").partition("?")
        hosts = "&".join(f"host={h.strip()}" for h in found["hosts"].split(","))
        url = f"{found['scheme']}{found['user'] or ''}{path or '/'}?{hosts}" + (f"&{query}" if query else "")
    return sa.engine.make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_uri(url: str) -> str:
    """``url`` as a libpq URI (for ``psycopg.connect``): several hosts in libpq's own
    ``host1:port1,host2:port2`` form."""
    parsed = sa.engine.make_url(sqlalchemy_url(url))
    hosts = parsed.query.get("host")
    if not isinstance(hosts, tuple) or len(hosts) < 2:
        return parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    user = quote(parsed.username or "", safe="")
    password = f":{quote(parsed.password, safe='')}" if parsed.password else ""
    credentials = f"{user}{password}@" if user or password else ""
    rest = {k: v for k, v in parsed.query.items() if k != "host"}
    query = urlencode(rest, doseq=True)
    return f"postgresql://{credentials}{','.join(hosts)}/{quote(parsed.database or '', safe='')}" + (f"?{query}" if query else "")


_HIDDEN = "hidden-by-throttled"  # a placeholder no URL quoting changes, then shown as ***


def shown_url(url: str) -> str:
    """``url`` for a screen or a log line: libpq's spelling, as operators write it (several
    hosts comma-separated, no driver name), with the password — in the user part or in a
    ``password`` parameter, which libpq accepts too — shown as ``***``.

    Raises:
        ValueError, sqlalchemy.exc.ArgumentError: not a URL SQLAlchemy can parse.
    """
    parsed = sa.engine.make_url(sqlalchemy_url(url))
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": _HIDDEN})
    if parsed.password:
        parsed = parsed.set(password=_HIDDEN)
    return libpq_uri(parsed.render_as_string(hide_password=False)).replace(_HIDDEN, "***")

