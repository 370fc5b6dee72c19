"""One exception tree: what the package raises on purpose derives from MonitoringError, every
exception class lives in `monitoring/errors.py`, and the tree drawn in its docstring is the
one in the code. Modules are read with `ast`, so a raise on a path no test takes counts too."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from monitoring import errors
from monitoring.errors import MonitoringError

PACKAGE = Path(__file__).resolve().parent.parent / "monitoring"
MODULES = sorted(PACKAGE.rglob("*.py"))

BUILTINS = {
    "Exception",
    "IndexError",
    "KeyError",
    "LookupError",
    "RuntimeError",
    "TypeError",
    "ValueError",
}
"""Raising one of these tells the user nothing `except MonitoringError` can catch."""

ALLOWED: dict[tuple[str, str, str], str] = {
    # (module path under monitoring/, enclosing function's qualified name, builtin): why.
    # Only where Python's own protocols expect the builtin, e.g. KeyError from the
    # `__getitem__` of a Mapping. Empty today: add an entry with its reason.
}

CLASSES = {
    name: value
    for name, value in vars(errors).items()
    if inspect.isclass(value) and value.__module__ == errors.__name__
}


def _raised_builtin(node: ast.Raise) -> str | None:
    """The builtin class that `raise X` or `raise X(...)` names, else None."""
    target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
        name = target.attr if target.value.id == "builtins" else None
    else:
        name = target.id if isinstance(target, ast.Name) else None
    return name if name in BUILTINS else None


def _builtin_raises(path: Path) -> list[tuple[str, int, str]]:
    """(enclosing function's qualified name, line, class) of each builtin raised in `path`."""
    found: list[tuple[str, int, str]] = []

    def visit(node: ast.AST, scope: tuple[str, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                visit(child, (*scope, child.name))
                continue
            if isinstance(child, ast.Raise) and (name := _raised_builtin(child)):
                found.append((".".join(scope) or "<module>", child.lineno, name))
            visit(child, scope)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), ())
    return found


def test_no_module_raises_a_builtin_exception() -> None:
    offenders = []
    used = set()
    for path in MODULES:
        module = path.relative_to(PACKAGE).as_posix()
        for scope, line, name in _builtin_raises(path):
            if (module, scope, name) in ALLOWED:
                used.add((module, scope, name))
            else:
                offenders.append(f"monitoring/{module}:{line} ({scope}) raises {name}")
    assert offenders == [], "raise a class of monitoring.errors instead:\n" + "\n".join(offenders)
    assert used == set(ALLOWED), f"stale allow-list entries: {set(ALLOWED) - used}"


def test_the_check_sees_every_form_of_raise(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "import builtins\n"
        "def f():\n"
        "    raise ValueError('x')\n"
        "class C:\n"
        "    def g(self):\n"
        "        raise KeyError\n"
        "    def h(self):\n"
        "        raise builtins.TypeError('y') from None\n"
        "    def __getattr__(self, name):\n"
        "        raise AttributeError(name)\n"
    )
    assert _builtin_raises(source) == [
        ("f", 3, "ValueError"),
        ("C.g", 6, "KeyError"),
        ("C.h", 8, "TypeError"),
    ]


def test_exception_classes_are_defined_only_in_errors() -> None:
    elsewhere = [
        f"monitoring/{path.relative_to(PACKAGE).as_posix()}:{node.lineno} {node.name}"
        for path in MODULES
        if path != PACKAGE / "errors.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef)
        and any(
            isinstance(base, ast.Name) and base.id.endswith(("Error", "Exception"))
            for base in node.bases
        )
    ]
    assert elsewhere == [], "define exception classes in monitoring/errors.py"


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_every_error_derives_from_monitoring_error(name: str) -> None:
    assert issubclass(CLASSES[name], MonitoringError)


def test_every_error_is_in_all() -> None:
    assert sorted(errors.__all__) == sorted(CLASSES)


def _drawn_tree() -> dict[str, tuple[str | None, str]]:
    """Each class the docstring draws -> (its drawn parent, its line)."""
    drawn: dict[str, tuple[str | None, str]] = {}
    parents: list[str] = []
    for line in errors.__doc__.splitlines():
        match = re.match(r"^    (?P<indent>[│├└─ ]*)(?P<name>[A-Z]\w*)\b", line)
        if match is None:
            continue
        depth = len(match["indent"]) // 4
        assert depth <= len(parents), f"the tree skips a level at: {line.strip()}"
        del parents[depth:]
        drawn[match["name"]] = (parents[-1] if parents else None, line)
        parents.append(match["name"])
    return drawn


def test_docstring_tree_names_every_class_and_only_those() -> None:
    assert sorted(_drawn_tree()) == sorted(CLASSES)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_docstring_tree_draws_each_class_under_its_base(name: str) -> None:
    parent, line = _drawn_tree()[name]
    bases = CLASSES[name].__bases__
    tree_bases = [b.__name__ for b in bases if issubclass(b, MonitoringError)]
    assert tree_bases == ([parent] if parent else [])
    # a builtin mixed in (so `except ValueError` keeps working) is said on the class's line
    for builtin in (b for b in bases if not issubclass(b, MonitoringError) and b is not Exception):
        assert builtin.__name__ in line, f"{name} is also a {builtin.__name__}: say so"
