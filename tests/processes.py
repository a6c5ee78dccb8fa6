"""What the tests that run `timbridge` in a subprocess share."""

from __future__ import annotations

import os

__all__ = ["own_env"]


def own_env(**variables: str) -> dict[str, str]:
    """This process's environment without any ``TIMBRIDGE_*`` variable (the machine's or a
    developer's must not leak into a test), with `variables` added."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIMBRIDGE_")}
    return env | variables
