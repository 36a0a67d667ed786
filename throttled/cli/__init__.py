"""The ``throttled`` command line (click).

``run`` serves; ``migrate`` applies the schema's migrations; ``sandbox`` runs the local
HubSpot stand-in; ``demo`` shows the whole job on this machine (``service.py``); ``keys``
and ``hubspot`` set the app up (``keys.py``); ``config`` checks the settings and manages
overrides (``config.py``); ``queues``, ``jobs`` and ``portals`` are the operator commands
(``operator.py``). Bad settings stop with one line naming the variable and exit status 2.
"""

from __future__ import annotations

import click

from throttled import __version__
from throttled.cli.config import config_group
from throttled.cli.keys import hubspot, keys
from throttled.cli.operator import jobs_group, portals_group, queues_group
from throttled.cli.service import demo, migrate, run, sandbox


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="throttled")
def main() -> None:
    """throttled — hold HubSpot workflow enrollments and release them at a set rate.

    Settings come from environment variables (see README.md for the table) and an optional
    TOML file given after the command: `throttled run --config FILE`.
    """


for _command in (run, migrate, sandbox, demo, keys, hubspot, config_group, queues_group, jobs_group, portals_group):
    main.add_command(_command)

__all__ = ["main"]
