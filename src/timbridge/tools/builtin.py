"""The built-in tools: `current_time` (in a time zone) and `calculator` (arithmetic, evaluated
on the parsed expression: numbers and operators only, never Python's ``eval``)."""

from __future__ import annotations

import ast
import datetime as dt
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from timbridge.llm.tools import ToolSpec
from timbridge.tools.toolbox import Tool, ToolError

__all__ = ["BUILTIN", "calculate", "current_time"]

_MAX_EXPRESSION = 200
_MAX_POWER = 1000
_MAX_MAGNITUDE = 10**100


async def current_time(arguments: Mapping[str, Any]) -> str:
    zone_name = str(arguments.get("timezone") or "UTC")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(f"unknown time zone {zone_name!r} (an IANA name: Asia/Shanghai)") from None
    now = dt.datetime.now(zone)
    return f"{now:%Y-%m-%d %H:%M:%S} {zone_name} ({now:%A}, UTC{now:%z})"


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "log": math.log,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}


def _value(node: ast.AST) -> float | int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise ToolError("not arithmetic: a boolean")
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand))  # type: ignore[no-any-return]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_POWER:
            raise ToolError(f"exponent over {_MAX_POWER}")
        result = _BINARY[type(node.op)](left, right)
        if abs(result) > _MAX_MAGNITUDE:
            raise ToolError("the result is too large")
        return result  # type: ignore[no-any-return]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _FUNCTIONS[node.func.id](*(_value(a) for a in node.args))  # type: ignore[no-any-return]
    raise ToolError(f"not arithmetic: {ast.unparse(node)[:40]!r}")


def calculate(expression: str) -> str:
    """The value of an arithmetic `expression`; `ToolError` for anything else."""
    if len(expression) > _MAX_EXPRESSION:
        raise ToolError(f"expression over {_MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
        value = _value(tree.body)
    except SyntaxError:
        raise ToolError(f"not an expression: {expression!r}") from None
    except (ZeroDivisionError, ValueError, OverflowError, TypeError) as exc:
        raise ToolError(f"cannot compute {expression!r}: {exc}") from None
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return f"{value:.12g}" if isinstance(value, float) else str(value)


async def _calculator(arguments: Mapping[str, Any]) -> str:
    return calculate(str(arguments.get("expression", "")))


BUILTIN: dict[str, Tool] = {
    "current_time": Tool(
        ToolSpec(
            "current_time",
            "The current date and time, in a time zone (default UTC).",
            {
                "type": "object",
                "properties": {
                    "timezone": {
                        "type": "string",
                        "description": "An IANA time zone, e.g. Asia/Shanghai",
                    }
                },
            },
        ),
        current_time,
    ),
    "calculator": Tool(
        ToolSpec(
            "calculator",
            "Evaluate an arithmetic expression exactly: + - * / // % ** (or ^), parentheses, "
            "sqrt, abs, round, log, sin, cos, tan, pi, e.",
            {
                "type": "object",
                "properties": {"expression": {"type": "string", "description": "e.g. 17*23+4"}},
                "required": ["expression"],
            },
        ),
        _calculator,
    ),
}
