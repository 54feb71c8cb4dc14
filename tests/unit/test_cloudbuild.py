"""cloudbuild.yaml: valid against the Cloud Build schema, every step named, the deploy order."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from typing import Any

import yaml

from tests.offline import ROOT, require

CLOUDBUILD = ROOT / "cloudbuild.yaml"


def steps() -> list[dict[str, Any]]:
    """The build's steps."""
    found: list[dict[str, Any]] = yaml.safe_load(CLOUDBUILD.read_text())["steps"]
    return found


def test_cloudbuild_matches_the_cloud_build_schema() -> None:
    require(importlib.util.find_spec("check_jsonschema") is not None, "check-jsonschema")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.cloudbuild",
            str(CLOUDBUILD),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_step_has_a_name_and_a_unique_id() -> None:
    ids = [step.get("id") for step in steps()]
    assert all(step.get("name") for step in steps())
    assert all(ids) and len(set(ids)) == len(ids), ids


def test_the_build_tests_packages_then_plans_and_applies_that_plan() -> None:
    ids = [step["id"] for step in steps()]
    assert ids == [
        "test",
        "package",
        "terraform-init",
        "terraform-binary",
        "terraform-validate",
        "terraform-plan",
        "terraform-apply",
    ]
    by_id = {step["id"]: step for step in steps()}
    assert "make test" in by_id["test"]["args"][-1]
    assert by_id["package"]["args"] == ["package"]
    assert "-backend-config=bucket=${_TF_STATE_BUCKET}" in by_id["terraform-init"]["args"]
    assert "-out=tfplan" in by_id["terraform-plan"]["args"]
    assert by_id["terraform-apply"]["args"][-1] == "tfplan"
    terraform = [s for s in steps() if str(s["id"]).startswith("terraform")]
    images = {s["name"] for s in terraform if s["id"] != "terraform-apply"}
    assert len(images) == 1 and images.pop().split(":")[1][0].isdigit()  # one pinned version
    # The apply runs that same binary, copied out, where gcloud is (IAP is switched on with it).
    apply = by_id["terraform-apply"]
    assert "/bin/terraform /workspace/.terraform-bin/" in by_id["terraform-binary"]["args"][-1]
    assert apply["entrypoint"] == "/workspace/.terraform-bin/terraform"
    assert "google-cloud-cli" in apply["name"] and apply["name"].split(":")[1][0].isdigit()


def test_every_substitution_used_is_declared() -> None:
    import re

    text = CLOUDBUILD.read_text()
    used = set(re.findall(r"\$\{(_[A-Z_]+)\}", text))
    declared = set(yaml.safe_load(text)["substitutions"])
    assert used == declared
