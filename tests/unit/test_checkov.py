"""checkov finds nothing in ``terraform/`` (each skip is justified next to it in the .tf)."""

from __future__ import annotations

import json
import subprocess

from tests.offline import CHECKOV, ROOT, require


def test_checkov_passes_on_the_terraform() -> None:
    require(CHECKOV.is_file(), f"checkov ({CHECKOV})")
    done = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            "terraform",
            "--framework",
            "terraform",
            "--skip-download",
            "--output",
            "json",
            "--quiet",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    report = json.loads(done.stdout)
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert not failed and done.returncode == 0, "\n".join(failed) or done.stderr
    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0 and summary["resource_count"] > 20, "checkov checked too little"
