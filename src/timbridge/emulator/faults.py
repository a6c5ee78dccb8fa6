"""Fault injection, set per REST command at run time: latency, ErrorCodes, HTTP 5xx, dropped
connections, and duplicate webhook deliveries. Each fault applies to the next `times` calls
(``-1``: until cleared); ``*`` matches every command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Fault", "Faults"]


@dataclass(slots=True)
class Fault:
    """What to do to a call. Fields combine: latency first, then drop, status, or ErrorCode."""

    latency_s: float = 0.0
    error_code: int | None = None
    error_info: str = "injected fault"
    http_status: int | None = None
    drop: bool = False
    times: int = 1

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        def number(name: str, default: float) -> float:
            value = data.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number")
            return float(value)

        code = data.get("error_code")
        status = data.get("http_status")
        if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
            raise ValueError("error_code must be an integer")
        if status is not None and (not isinstance(status, int) or not 100 <= status <= 599):
            raise ValueError("http_status must be an HTTP status code")
        return cls(
            latency_s=number("latency_ms", 0) / 1000,
            error_code=code,
            error_info=str(data.get("error_info", "injected fault")),
            http_status=status,
            drop=bool(data.get("drop", False)),
            times=int(number("times", 1)),
        )


class Faults:
    """The faults in force: per command, plus duplicate webhook deliveries."""

    def __init__(self) -> None:
        self._by_command: dict[str, list[Fault]] = {}
        self.duplicate_webhooks = 0
        self.duplicate_times = 0

    def add(self, command: str, fault: Fault) -> None:
        self._by_command.setdefault(command, []).append(fault)

    def duplicate(self, copies: int, times: int = -1) -> None:
        """Deliver each of the next `times` webhooks `copies` extra times."""
        self.duplicate_webhooks, self.duplicate_times = copies, times

    def clear(self) -> None:
        self._by_command.clear()
        self.duplicate_webhooks = self.duplicate_times = 0

    def take(self, command: str) -> Fault | None:
        """The fault for this call, if any; uses one of its `times`."""
        for key in (command, "*"):
            queue = self._by_command.get(key)
            if queue:
                fault = queue[0]
                if fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        queue.pop(0)
                return fault
        return None

    def take_duplicates(self) -> int:
        """How many extra copies of the next webhook to deliver."""
        if not self.duplicate_webhooks or self.duplicate_times == 0:
            return 0
        if self.duplicate_times > 0:
            self.duplicate_times -= 1
        return self.duplicate_webhooks
