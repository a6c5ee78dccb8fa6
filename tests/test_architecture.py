"""The package's shape: which part may import which (`ALLOWED`), no cycles, exported names."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "timbridge"

_BASE = {"errors", "logs", "http", "printable", "redact", "_version"}  # leaves anyone may use
_ENGINE_DEPS = {
    "settings",
    "protocol",
    "tencent",
    "llm",
    "storage",
    "coordination",
    "knowledge",
    "tools",
    "safety",
}

#: part → parts it may import, lowest layers first. A part always may import itself.
ALLOWED: dict[str, set[str]] = {
    "_version": set(),
    "errors": set(),
    "logs": {"redact"},
    "http": set(),
    "printable": set(),
    "redact": set(),
    "protocol": {"errors"},
    "settings": {"errors", "protocol"},
    "metrics": set(),
    "storage": set(),
    "tencent": {"protocol"},
    "coordination": {"storage", "protocol"},
    "knowledge": {"storage"},
    "llm": {"settings"},
    "tools": {"knowledge", "llm", "settings"},
    "safety": {"settings"},
    "bot": _ENGINE_DEPS | {"metrics"},
    "webhook": {"bot", "coordination", "metrics", "protocol", "settings"},
    "emulator": {"protocol"},
    "runtime": _ENGINE_DEPS | {"bot", "emulator", "metrics", "webhook"},
    "cli": {"*"},
    "__init__": {"errors", "settings"},
    "__main__": {"cli"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # include `if TYPE_CHECKING:` blocks and try/except at module level
        nodes = [
            n
            for top in tree.body
            for n in ast.walk(top)
            if not isinstance(top, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        ]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("timbridge")}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.startswith("timbridge")
        ):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def test_every_part_is_known() -> None:
    unknown = {_part(m) for m in _modules()} - set(ALLOWED)
    assert not unknown, f"add {unknown} to ALLOWED, with the parts it may import"


def test_no_relative_imports() -> None:
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{module}: use absolute imports"


@pytest.mark.parametrize("module", sorted(_modules()))
def test_imports_point_one_way(module: str) -> None:
    part = _part(module)
    allowed = ALLOWED[part] | _BASE | {part}
    if "*" in allowed:
        return
    modules = _modules()
    for imported in _imports(modules[module], top_level_only=False):
        target = imported
        if target not in modules and target.rsplit(".", 1)[0] in modules:
            target = target.rsplit(".", 1)[0]  # `from timbridge.x import name`
        if target == "timbridge":
            continue
        assert _part(target) in allowed, f"{module} must not import {target} (see ALLOWED)"


def test_no_import_cycles() -> None:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges = set()
        for imported in _imports(path, top_level_only=True):
            target = imported
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in modules and target != module and not module.startswith(target + "."):
                edges.add(target)
        graph[module] = edges
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


@pytest.mark.parametrize("module", sorted(_modules()))
def test_all_is_sorted_and_resolves(module: str) -> None:
    if module.endswith("__main__"):
        return
    mod = importlib.import_module(module)
    exported = getattr(mod, "__all__", None)
    assert exported is not None, f"{module} has no __all__"

    # isort-style, as ruff's RUF022 keeps it: CONSTANTS, then Classes, then functions.
    def kind(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)

    assert list(exported) == sorted(exported, key=kind), f"{module}.__all__ is not sorted"
    for name in exported:
        assert hasattr(mod, name), f"{module}.__all__ names missing {name}"


def test_package_ships_py_typed() -> None:
    assert (SRC / "py.typed").is_file()
