"""The Terraform configuration describes what the code needs: offline checks.

``terraform validate`` and ``plan`` need the provider (network); these checks
do not: formatting, and consistency of the HCL (parsed with python-hcl2) with
the code — entry points, schedules, Firestore indexes, grants, settings.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.limits import UNINDEXED_FIELDS
from shared.store import INDEXES, JOBS_COLLECTION
from tests.offline import ROOT, TERRAFORM_DIR, require, terraform_fmt_check

MAIN = ROOT / "functions" / "main.py"
#: Functions the parsers call; they, and only they, are open to parser_service_accounts.
PARSER_FUNCTIONS = {"api", "next_job", "update", "heartbeat", "error"}
#: Functions Cloud Scheduler calls; only the scheduler account may invoke them.
SCHEDULED_FUNCTIONS = {"maintain", "postprocess"}
#: Post-processing visits per job of the standard chain (docs/design.md) and the load.
VISITS_PER_JOB, JOBS_PER_DAY = 14, 1_000


class Config:
    """Every ``terraform/*.tf`` file, parsed and merged."""

    def __init__(self, directory: Path) -> None:
        try:
            import hcl2
            from hcl2 import SerializationOptions
        except ImportError:
            require(False, "python-hcl2")
            raise
        options = SerializationOptions(
            strip_string_quotes=True, explicit_blocks=False, with_comments=False
        )
        self.resources: dict[tuple[str, str], dict[str, Any]] = {}
        self.locals: dict[str, Any] = {}
        self.variables: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.text = ""
        for path in sorted(directory.glob("*.tf")):
            self.text += path.read_text()
            with path.open() as f:
                parsed = hcl2.load(f, serialization_options=options)
            for block in parsed.get("resource", []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        self.resources[(rtype, name)] = body
            for block in parsed.get("locals", []):
                self.locals.update(block)
            for block in parsed.get("variable", []):
                self.variables.update(block)
            for block in parsed.get("output", []):
                self.outputs.update(block)

    def resource(self, rtype: str, name: str) -> dict[str, Any]:
        """The body of one resource; fails naming it when absent."""
        assert (rtype, name) in self.resources, f"no resource {rtype}.{name}"
        return self.resources[(rtype, name)]


@pytest.fixture(scope="module")
def tf() -> Config:
    return Config(TERRAFORM_DIR)


def entry_points() -> set[str]:
    """Functions of functions/main.py decorated with ``functions_framework.http``."""
    tree = ast.parse(MAIN.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any(ast.unparse(d) == "functions_framework.http" for d in node.decorator_list)
    }


def walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair nested anywhere in ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


# --- formatting -------------------------------------------------------------------------------


def test_terraform_fmt_check_passes() -> None:
    code, files = terraform_fmt_check(TERRAFORM_DIR)
    assert code == 0, f"`terraform fmt -recursive terraform/` would rewrite: {files}"


def test_terraform_fmt_check_catches_misformatting(tmp_path: Path) -> None:
    shutil.copy(TERRAFORM_DIR / "outputs.tf", tmp_path / "outputs.tf")
    (tmp_path / "bad.tf").write_text('locals {\n  a = 1\n  bb = "x"\n}\n')
    code, files = terraform_fmt_check(tmp_path)
    assert code != 0 and "bad.tf" in files and "outputs.tf" not in files
    assert (
        tmp_path / "bad.tf"
    ).read_text() == 'locals {\n  a = 1\n  bb = "x"\n}\n'  # not rewritten


# --- functions --------------------------------------------------------------------------------


def test_every_entry_point_has_a_function_and_back(tf: Config) -> None:
    functions = tf.locals["functions"]
    deployed = {fn["entry_point"] for fn in functions.values()}
    assert entry_points() <= deployed, (
        f"entry points without a function: {entry_points() - deployed}"
    )
    assert deployed <= entry_points(), f"functions of no entry point: {deployed - entry_points()}"
    resource = tf.resource("google_cloudfunctions2_function", "fn")
    assert resource["for_each"] == "${local.functions}"
    assert resource["build_config"][0]["entry_point"] == "${each.value.entry_point}"
    assert resource["build_config"][0]["runtime"] == "python312"


def test_every_function_is_sized_and_invoked_by_a_known_group(tf: Config) -> None:
    for name, fn in tf.locals["functions"].items():
        assert re.fullmatch(r"\d+(Mi|Gi)", fn["memory"]), name
        assert 1 <= fn["timeout"] <= 540 and fn["max_instances"] >= 1, name
        assert fn["invoker"] in tf.locals["invokers"], f"{name}: unknown invoker {fn['invoker']}"
    sizes = tf.locals["functions"]
    for heavy in SCHEDULED_FUNCTIONS:  # snapshot and post-processing need more
        assert sizes[heavy]["timeout"] > sizes["update"]["timeout"]
        assert sizes[heavy]["memory"].endswith("Gi")


def test_parsers_may_invoke_the_parser_functions_only(tf: Config) -> None:
    by_group: dict[str, set[str]] = {}
    for name, fn in tf.locals["functions"].items():
        by_group.setdefault(fn["invoker"], set()).add(name)
    assert by_group["parsers"] == PARSER_FUNCTIONS
    assert by_group["scheduler"] == SCHEDULED_FUNCTIONS
    assert tf.locals["invokers"]["parsers"] == (
        '${{for email in var.parser_service_accounts : email => "serviceAccount:${email}"}}'
    )


def test_invocation_is_granted_on_the_cloud_run_service_of_each_function(tf: Config) -> None:
    grant = tf.resource("google_cloud_run_service_iam_member", "invoker")
    assert grant["role"] == "roles/run.invoker"  # gen2 functions are Cloud Run services
    assert grant["for_each"] == "${local.invoker_grants}"
    assert grant["service"] == "${google_cloudfunctions2_function.fn[each.value.function].name}"
    assert not [r for r in tf.resources if r[0].startswith("google_cloudfunctions2_function_iam")]


def test_router_serves_only_the_parser_routes_and_their_document(tf: Config) -> None:
    assert tf.locals["function_environment"]["api"] == {"API_ROUTES": "parser,docs"}
    groups = importlib.import_module("shared.web.routes").ROUTE_GROUPS
    assert all(
        path.startswith(("/v2/job/", "/next_job", "/update", "/heartbeat", "/error"))
        for path in groups["parser"]
    )
    assert groups["docs"] == ("/openapi.json",)


def test_every_environment_variable_is_documented(tf: Config) -> None:
    operations = (ROOT / "docs" / "operations.md").read_text()
    doc = operations.split("## Configuration")[1].split("\n## ")[0]
    set_in_tf = set(re.findall(r"\b([A-Z][A-Z_]+)\s+= ", tf.text))
    undocumented = {name for name in set_in_tf if f"`{name}`" not in doc}
    assert not undocumented, f"not in docs/operations.md's Configuration: {undocumented}"


# --- schedules --------------------------------------------------------------------------------


def test_every_scheduler_job_calls_a_scheduled_function_with_an_oidc_token(tf: Config) -> None:
    job = tf.resource("google_cloud_scheduler_job", "tick")
    assert job["for_each"] == "${local.schedules}"
    assert set(tf.locals["schedules"]) == SCHEDULED_FUNCTIONS
    assert set(tf.locals["schedules"]) <= set(tf.locals["functions"])
    target = job["http_target"][0]
    url = "${google_cloudfunctions2_function.fn[each.key].url}"
    assert target["uri"] == url and target["http_method"] == "POST"
    token = target["oidc_token"][0]
    assert token == {
        "service_account_email": "${google_service_account.scheduler.email}",
        "audience": url,
    }


def cron_runs_per_day(schedule: str) -> int:
    """Runs a day of a cron schedule whose hour, day and month fields are ``*``."""
    minute, *rest = schedule.split()
    assert rest == ["*", "*", "*", "*"], f"sizing assumes an hourly pattern: {schedule}"
    if minute == "*":
        return 1440
    step = re.fullmatch(r"\*/(\d+)", minute)
    return 24 * (60 // int(step.group(1)) if step else len(minute.split(",")))


def test_postprocess_capacity_covers_a_thousand_jobs_a_day_many_times(tf: Config) -> None:
    ticks = cron_runs_per_day(tf.variables["postprocess_schedule"]["default"])
    batch = tf.variables["postprocess_batch"]["default"]
    assert ticks * batch >= 10 * VISITS_PER_JOB * JOBS_PER_DAY
    assert "POSTPROCESS_BATCH" in tf.locals["environment"]
    assert "POSTPROCESS_TICK_SECONDS" in tf.locals["environment"]


def test_the_postprocess_tick_ends_before_the_function_times_out(tf: Config) -> None:
    from shared.runtime import MAX_TICK_SECONDS

    tick = tf.variables["postprocess_tick_seconds"]["default"]
    timeout = tf.locals["functions"]["postprocess"]["timeout"]
    assert tick <= MAX_TICK_SECONDS < timeout


# --- Firestore --------------------------------------------------------------------------------


def test_terraform_declares_every_index_of_the_store(tf: Config) -> None:
    names = {"${var.jobs_collection}": JOBS_COLLECTION}
    declared = {
        (names.get(i["collection"], i["collection"]), tuple(i["fields"]))
        for i in tf.locals["firestore_indexes"].values()
    }
    needed = {(collection, tuple(field for field, _ in fields)) for collection, fields in INDEXES}
    assert needed <= declared, f"missing in terraform: {needed - declared}"
    assert all(direction == "ASCENDING" for _, fields in INDEXES for _, direction in fields)
    index = tf.resource("google_firestore_index", "indexes")
    assert index["collection"] == "${each.value.collection}"
    assert index["dynamic"][0]["fields"]["content"][0]["order"] == "ASCENDING"
    assert tf.resource("google_firestore_database", "default")["type"] == "FIRESTORE_NATIVE"


def test_the_unindexed_job_fields_are_the_ones_the_limits_exempt(tf: Config) -> None:
    assert set(tf.locals["unindexed_job_fields"]) == UNINDEXED_FIELDS
    field = tf.resource("google_firestore_field", "unindexed")
    assert field["collection"] == "${var.jobs_collection}"
    assert field["index_config"] in ([{}], {}, [])


# --- grants and buckets -----------------------------------------------------------------------


def test_no_public_member_anywhere(tf: Config) -> None:
    assert not re.search(r"allUsers|allAuthenticatedUsers", tf.text, re.IGNORECASE)
    members = [
        value
        for body in tf.resources.values()
        for key, value in walk(body)
        if key in ("member", "members")
    ]
    assert members, "no IAM member found: the parse is wrong"
    for member in members:
        assert isinstance(member, str) and not member.startswith(("all", "public")), member


def test_cloud_run_checks_every_caller_so_the_tokens_it_passes_on_can_be_trusted(
    tf: Config,
) -> None:
    """The functions take a token whose signature Cloud Run removed as verified by it.

    That holds only while Cloud Run checks every call: no public member (above)
    and no switching its invoker check off.
    """
    assert not re.search(r"invoker_iam_disabled|no-invoker-iam-check", tf.text, re.IGNORECASE)


def test_runtime_account_has_exactly_the_roles_the_code_needs(tf: Config) -> None:
    runtime_roles = {
        (rtype, body["role"])
        for (rtype, _), body in tf.resources.items()
        if body.get("member") == "${local.runtime_member}"
    }
    assert runtime_roles == {
        ("google_project_iam_member", "roles/datastore.user"),
        ("google_storage_bucket_iam_member", "roles/storage.objectAdmin"),
        ("google_storage_bucket_iam_member", "roles/storage.objectViewer"),
        ("google_project_iam_member", "roles/bigquery.jobUser"),
        ("google_bigquery_dataset_iam_member", "roles/bigquery.dataEditor"),
    }
    admin = tf.resource("google_storage_bucket_iam_member", "runtime_snapshots")
    assert admin["bucket"] == "${google_storage_bucket.snapshots.name}"


def test_buckets_are_private_and_versioned(tf: Config) -> None:
    buckets = {
        name: body
        for (rtype, name), body in tf.resources.items()
        if rtype == "google_storage_bucket"
    }
    assert set(buckets) == {"snapshots", "sources"}
    for name, bucket in buckets.items():
        assert bucket["uniform_bucket_level_access"] is True, name
        assert bucket["public_access_prevention"] == "enforced", name
        assert bucket["versioning"][0]["enabled"] is True, name
        assert bucket["lifecycle_rule"], name


def test_datasets_cover_the_config(tf: Config) -> None:
    config = yaml.safe_load((ROOT / "config" / "gardener.yml").read_text())
    used = {ds for src in config["sources"] for ds in src.get("target_datasets", {}).values()}
    assert used <= set(tf.variables["bigquery_datasets"]["default"])


def test_every_checkov_skip_gives_a_reason() -> None:
    for path in TERRAFORM_DIR.glob("*.tf"):
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                assert re.fullmatch(r"\s*#checkov:skip=CKV2?_[A-Z]+_\d+:\S.{20,}", line), line


def test_example_variables_are_declared_and_no_required_one_is_missing(tf: Config) -> None:
    import hcl2
    from hcl2 import SerializationOptions

    with (TERRAFORM_DIR / "terraform.tfvars.example").open() as f:
        example = hcl2.load(
            f,
            serialization_options=SerializationOptions(
                strip_string_quotes=True, explicit_blocks=False, with_comments=False
            ),
        )
    assert set(example) <= set(tf.variables), set(example) - set(tf.variables)
    required = {name for name, body in tf.variables.items() if "default" not in body}
    # project and region come from the command line (cloudbuild.yaml: -var=project=...)
    assert required - {"project"} <= set(example), required - set(example)


def test_outputs_give_the_router_url_first(tf: Config) -> None:
    assert next(iter(tf.outputs)) == "api_url"
    assert tf.outputs["api_url"]["value"] == '${google_cloudfunctions2_function.fn["api"].url}'


def test_every_function_timeout_leaves_room_beyond_the_firestore_deadline(tf: Config) -> None:
    """A request that waits out its Firestore budget still answers 503 before the platform's kill.

    ``next`` may also wait out one GCS listing (``ArchiveLister``'s deadline) after it.
    """
    from shared.gcs import ArchiveLister
    from shared.runtime import MAX_DEADLINE, Settings

    environment = tf.locals["environment"]
    assert "FIRESTORE_DEADLINE_SECONDS" not in str(environment)  # the default applies
    deadline = Settings().firestore_deadline
    gcs = inspect.signature(ArchiveLister).parameters["deadline"].default
    for name, fn in tf.locals["functions"].items():
        assert fn["timeout"] >= 2 * deadline, (name, fn["timeout"], deadline)
        if name in ("api", "next_job"):
            assert fn["timeout"] > deadline + gcs, (name, fn["timeout"], deadline, gcs)
    assert min(fn["timeout"] for fn in tf.locals["functions"].values()) / 2 >= MAX_DEADLINE


# --- Identity-Aware Proxy ---------------------------------------------------------------------

#: The operator functions IAP can go in front of: status and admin, metrics on request.
IAP_FUNCTIONS = {"status", "admin", "metrics"}


def test_iap_is_off_by_default_and_covers_status_and_admin_metrics_on_request(tf: Config) -> None:
    assert tf.variables["iap_enabled"]["default"] is False
    assert tf.variables["iap_metrics"]["default"] is False
    assert "organization" in tf.variables["iap_enabled"]["description"]
    chosen = tf.locals["iap_functions"]
    assert chosen.startswith("${var.iap_enabled ? ") and chosen.endswith(": toset([])}")
    assert '["status", "admin"], var.iap_metrics ? ["metrics"] : []' in chosen
    functions = tf.locals["functions"]
    assert set(functions) >= IAP_FUNCTIONS
    assert {functions[name]["invoker"] for name in IAP_FUNCTIONS} == {"operators"}


def test_iap_grants_operators_access_and_its_agent_the_invoker_role(tf: Config) -> None:
    agent = tf.resource("google_project_service_identity", "iap")
    assert agent["service"] == "iap.googleapis.com" and agent["provider"] == "google-beta"
    assert agent["count"] == "${var.iap_enabled ? 1 : 0}"
    invoker = tf.resource("google_cloud_run_service_iam_member", "iap_invoker")
    assert invoker["for_each"] == "${local.iap_functions}"
    assert invoker["role"] == "roles/run.invoker"
    assert invoker["member"] == "serviceAccount:${google_project_service_identity.iap[0].email}"
    assert invoker["service"] == "${google_cloudfunctions2_function.fn[each.key].name}"
    access = tf.resource("google_iap_web_cloud_run_service_iam_member", "operators")
    assert access["role"] == "roles/iap.httpsResourceAccessor"
    assert access["for_each"] == "${local.iap_accessors}"
    assert access["member"] == "${each.value.member}"
    assert access["cloud_run_service_name"] == (
        "${google_cloudfunctions2_function.fn[each.value.function].name}"
    )
    accessors = tf.locals["iap_accessors"]
    assert "for name in local.iap_functions" in accessors
    assert "for member in var.operator_members" in accessors
    assert "iap.googleapis.com" in tf.text and 'var.iap_enabled ? ["iap.googleapis.com"]' in tf.text


def test_iap_is_switched_on_by_gcloud_again_after_each_change_of_the_function(tf: Config) -> None:
    step = tf.resource("terraform_data", "iap")
    assert step["for_each"] == "${local.iap_functions}"
    assert step["triggers_replace"] == [
        "${google_cloudfunctions2_function.fn[each.key].update_time}"
    ]
    on, off = (p["local-exec"] for p in step["provisioner"])
    assert "gcloud beta run services update ${self.input.service}" in on["command"]
    assert on["command"].endswith("--iap --quiet") and "when" not in on
    assert off["when"] == "destroy" and off["command"].endswith("--no-iap --quiet")
    assert "--region=${self.input.region}" in on["command"] and "--project=" in on["command"]


def test_each_function_behind_iap_knows_the_audience_iap_signs_for(tf: Config) -> None:
    from shared.runtime import Settings

    audience = (
        "/projects/${data.google_project.this[0].number}/locations/${var.region}"
        "/services/${var.name_prefix}-${name}"
    )
    environment = tf.locals["iap_environment"]
    assert environment == (
        f'${{{{for name in local.iap_functions : name => {{IAP_AUDIENCE = "{audience}"}}}}}}'
    )
    fn = tf.resource("google_cloudfunctions2_function", "fn")
    assert fn["name"] == '${var.name_prefix}-${replace(each.key, "_", "-")}'  # = the service
    assert (
        "lookup(local.iap_environment, each.key, {})"
        in (fn["service_config"][0]["environment_variables"])
    )
    example = (
        audience.replace("${data.google_project.this[0].number}", "123456789")
        .replace("${var.region}", "us-central1")
        .replace("${var.name_prefix}-${name}", "gardener-admin")
    )
    assert Settings.from_env({"IAP_AUDIENCE": example}).iap_audience == example


def test_outputs_give_each_tool_its_url(tf: Config) -> None:
    fn = "google_cloudfunctions2_function.fn"
    assert tf.outputs["admin_url"]["value"] == f'${{{fn}["admin"].url}}'
    assert tf.outputs["status_url"]["value"] == f'${{{fn}["status"].url}}/status'
    assert tf.outputs["metrics_url"]["value"] == f'${{{fn}["metrics"].url}}/metrics'
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    for output in ("api_url", "admin_url", "status_url", "metrics_url"):
        assert f"`{output}`" in deploy, output
