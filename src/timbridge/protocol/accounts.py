"""Tencent's account rule that every part needs: robot accounts are the UserIDs that start with
``@RBT#`` (reference §2)."""

from __future__ import annotations

__all__ = ["NOT_A_ROBOT", "ROBOT_PREFIX", "is_robot"]

ROBOT_PREFIX = "@RBT#"
#: What to say of an ID given as a robot's that is not one.
NOT_A_ROBOT = f"a robot UserID must start with {ROBOT_PREFIX}"


def is_robot(user_id: str) -> bool:
    """Whether `user_id` names a robot account."""
    return user_id.startswith(ROBOT_PREFIX)
