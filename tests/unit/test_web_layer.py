"""The web layer's boundaries: operations speak no HTTP, and only the tracker reaches its store."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "shared"

#: Modules below the web layer: the model, the store, the operations and their helpers.
BELOW_WEB = sorted(p for p in SHARED.rglob("*.py") if "web" not in p.relative_to(SHARED).parts)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("path", BELOW_WEB, ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_below_the_web_layer_imports_it(path: Path) -> None:
    web = sorted(m for m in imported_modules(path) if (m + ".").startswith("shared.web."))
    assert web == [], f"{path.relative_to(ROOT)} imports {web}"


@pytest.mark.parametrize(
    "path",
    [*sorted((SHARED / "web").glob("*.py")), SHARED / "admin.py"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_web_and_operator_actions_do_not_reach_through_the_tracker(path: Path) -> None:
    reaching = [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr == "store"
    ]
    assert reaching == [], f"{path.relative_to(ROOT)} uses .store at lines {reaching}"
