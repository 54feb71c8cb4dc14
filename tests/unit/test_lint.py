"""The static checks of ``make lint``, so that ``pytest`` alone catches them too.

ruff's rules, ruff's formatting and mypy, each as configured in pyproject.toml.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m <args>`` from the repository root with the test's interpreter."""
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_check_finds_nothing() -> None:
    result = run("ruff", "check", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_would_change_nothing() -> None:
    result = run("ruff", "format", "--check", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_no_type_error() -> None:
    """mypy over the files ``[tool.mypy]`` names, strict where it says so."""
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
