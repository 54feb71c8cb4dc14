"""Static checks of the whole tree: pyflakes' errors (undefined names, unused imports, ...) and type errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_pyflakes_errors() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "F", "--output-format", "concise",
         "--exclude", ".venv,.venv-checkov,build", "."],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_type_errors() -> None:
    """mypy over the packages that ``[tool.mypy]`` in pyproject.toml names finds no error."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
