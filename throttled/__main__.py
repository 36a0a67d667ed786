"""``python -m throttled`` = the ``throttled`` command."""

from throttled.cli import main

main()
