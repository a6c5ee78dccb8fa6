"""``python -m timbridge``: the same as the ``timbridge`` command."""

from timbridge.cli import main

main()
