# One gen2 function per entry point of functions/main.py, all built from the same source archive.

locals {
  # name => entry point in main.py, memory, timeout (s), max instances, who may invoke it
  # (a key of local.invokers). Adding a function is one line here.
  functions = {
    api         = { entry_point = "api", memory = "512Mi", timeout = 60, max_instances = 20, invoker = "parsers" }
    next_job    = { entry_point = "next_job", memory = "512Mi", timeout = 60, max_instances = 10, invoker = "parsers" }
    update      = { entry_point = "update", memory = "256Mi", timeout = 60, max_instances = 20, invoker = "parsers" }
    heartbeat   = { entry_point = "heartbeat", memory = "256Mi", timeout = 60, max_instances = 20, invoker = "parsers" }
    error       = { entry_point = "error", memory = "256Mi", timeout = 60, max_instances = 10, invoker = "parsers" }
    status      = { entry_point = "status", memory = "512Mi", timeout = 120, max_instances = 3, invoker = "operators" }
    maintain    = { entry_point = "maintain", memory = "1Gi", timeout = 540, max_instances = 1, invoker = "scheduler" }
    postprocess = { entry_point = "postprocess", memory = "1Gi", timeout = 540, max_instances = 1, invoker = "scheduler" }
    admin       = { entry_point = "admin", memory = "512Mi", timeout = 120, max_instances = 2, invoker = "operators" }
    metrics     = { entry_point = "metrics", memory = "256Mi", timeout = 60, max_instances = 2, invoker = "operators" }
  }

  # Extra environment of single functions. The router serves only the parsers' paths
  # and its OpenAPI document (API_ROUTES=parser,docs): /maintain, /postprocess, /status and
  # /metrics are not reachable through it.
  function_environment = {
    api = { API_ROUTES = "parser,docs" }
  }

  # Post-processing sizing. The standard chain needs 14 visits per job (a move into each step,
  # a start, a look while it runs, a collect), so 10,000 jobs a day need 140,000 visits a day.
  # A tick (one a minute) reads leasable jobs in pages of postprocess_batch (200) and visits
  # each once while its time, postprocess_tick_seconds (480 s, a minute under the 540 s
  # timeout), allows; it starts no visit whose worst case (3 Firestore calls and 1 BigQuery
  # call at their deadlines, 120 s) could outlast it, and ends early when no job is leasable.
  # A visit costs 2 Firestore reads and 2 writes (bench/postprocess.py) and at most one
  # BigQuery call (~0.3 s assumed), so 140,000 visits take ~12 hours of tick time a day: half
  # the day, with room (docs/deploy.md, "Post-processing sizing"). max_instances = 1: while a long tick runs,
  # the scheduler's next calls are refused and the running tick does their work.
  environment = merge(var.config_environment, {
    GOOGLE_CLOUD_PROJECT     = var.project
    TRACKER_COLLECTION       = var.jobs_collection
    SNAPSHOT_BUCKET          = google_storage_bucket.snapshots.name
    SNAPSHOT_KEEP            = tostring(var.snapshot_keep)
    INPUT_BUCKET             = var.input_bucket
    BIGQUERY_PROJECT         = local.bigquery_project
    BIGQUERY_LOCATION        = var.bigquery_location
    POSTPROCESS_BATCH        = tostring(var.postprocess_batch)
    POSTPROCESS_TICK_SECONDS = tostring(var.postprocess_tick_seconds)
    LOG_LEVEL                = var.log_level
  })

  # Invoker groups: label => IAM member. Labels are known at plan time, emails may not be.
  invokers = {
    parsers   = { for email in var.parser_service_accounts : email => "serviceAccount:${email}" }
    scheduler = { scheduler = "serviceAccount:${google_service_account.scheduler.email}" }
    operators = { for member in var.operator_members : member => member }
  }

  invoker_grants = merge([
    for name, fn in local.functions : {
      for label, member in local.invokers[fn.invoker] : "${name} ${label}" => { function = name, member = member }
    }
  ]...)
}

resource "google_cloudfunctions2_function" "fn" {
  #checkov:skip=CKV_GCP_124:Parsers (other projects) and Cloud Scheduler call from outside the VPC; every call is IAM-authenticated (roles/run.invoker below, no public member).
  for_each    = local.functions
  name        = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  location    = var.region
  description = "Gardener tracker: ${each.value.entry_point}"

  build_config {
    runtime     = "python312"
    entry_point = each.value.entry_point
    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory               = each.value.memory
    timeout_seconds                = each.value.timeout
    min_instance_count             = 0
    max_instance_count             = each.value.max_instances
    service_account_email          = google_service_account.runtime.email
    environment_variables          = merge(local.environment, lookup(local.function_environment, each.key, {}), lookup(local.iap_environment, each.key, {}))
    all_traffic_on_latest_revision = true
    # Parsers and Cloud Scheduler call from outside the project's network; every call needs an
    # identity token of an account granted the invoker role below (no public invoker).
    ingress_settings = "ALLOW_ALL"
  }

  depends_on = [google_project_service.apis, google_project_iam_member.runtime_datastore]
}

# Gen2 functions are Cloud Run services: invoking one takes roles/run.invoker on its service
# (roles/cloudfunctions.invoker only covers 1st gen functions).
resource "google_cloud_run_service_iam_member" "invoker" {
  for_each = local.invoker_grants
  location = google_cloudfunctions2_function.fn[each.value.function].location
  service  = google_cloudfunctions2_function.fn[each.value.function].name
  role     = "roles/run.invoker"
  member   = each.value.member
}
