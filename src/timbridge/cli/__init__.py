"""The ``timbridge`` command line (`cli.main`), its commands by group, and the checks and
configuration template they use."""

from timbridge.cli.main import app, main

__all__ = ["app", "main"]
