"""The package's layout holds: a folder is a stage, a stage imports only from the stages
below it, no two modules import each other (directly or around a loop), and no module is
over 400 lines. Imports are read with `ast`, those inside functions and `TYPE_CHECKING`
blocks included: an import placed in a function to dodge a cycle is still a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "monitoring"

# Bottom to top; see docs/architecture.md. `monitoring/__init__.py` only names the public
# API (lazily, by string), so it belongs to no stage.
STAGES = (
    "errors",
    "stats",
    "core",
    "collect",
    "measure",
    "explain",
    "evaluation",
    "track",
    "demo",
    "cli",
)
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported(name: str, path: Path) -> set[str]:
    """Every `monitoring` module that `name` imports, wherever the import statement is."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import module` names the module, `from module import name` it
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]  # `from m import name` names m
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: _imported(name, path) for name, path in MODULES.items()}


def _stage(module: str) -> int | None:
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 else None


def test_every_module_belongs_to_a_stage() -> None:
    strays = [m for m in MODULES if m != "monitoring" and m.split(".")[1] not in STAGES]
    assert strays == [], f"modules outside the stages {STAGES}: {strays}"


def test_stages_import_only_from_stages_below() -> None:
    upward = [
        f"{module} ({STAGES[_stage(module)]}) imports {target} ({STAGES[_stage(target)]})"
        for module, targets in GRAPH.items()
        if _stage(module) is not None
        for target in sorted(targets)
        if _stage(target) is not None and _stage(target) > _stage(module)  # type: ignore[operator]
    ]
    assert upward == []


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    assert _cycles() == []


def test_the_cycle_finder_finds_a_planted_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    planted = {**GRAPH, "monitoring.core.config": GRAPH["monitoring.core.config"] | {"x"}}
    planted["x"] = {"monitoring.core.config"}
    monkeypatch.setitem(globals(), "GRAPH", planted)
    assert ["monitoring.core.config", "x"] in _cycles()


def test_imports_inside_functions_are_read() -> None:
    """The CLI imports the library inside its commands (fast start-up): those count."""
    assert "monitoring.track.pipeline" in GRAPH["monitoring.cli.evaluate"]


@pytest.mark.parametrize("module", sorted(MODULES), ids=str)
def test_no_module_is_over_400_lines(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines"
