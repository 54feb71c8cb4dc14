# The Firestore database and the composite indexes the tracker's queries need.
# The list mirrors INDEXES in shared/store/indexes.py; the emulator needs none, production does.

resource "google_firestore_database" "default" {
  name        = "(default)"
  location_id = var.region
  type        = "FIRESTORE_NATIVE"

  # The jobs are the tracker's only state: keep a week of history and refuse deletion.
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  deletion_policy                   = "ABANDON"

  depends_on = [google_project_service.apis]
}

locals {
  # Every composite index, by collection; the same list as INDEXES in shared/store/indexes.py.
  firestore_indexes = {
    jobs_state_start      = { collection = var.jobs_collection, fields = ["state", "start_time"] }
    jobs_experiment_start = { collection = var.jobs_collection, fields = ["experiment", "start_time"] }
    jobs_datatype_start   = { collection = var.jobs_collection, fields = ["datatype", "start_time"] }
    jobs_state_reoffer    = { collection = var.jobs_collection, fields = ["state", "reoffer"] }
    jobs_failed_reoffer   = { collection = var.jobs_collection, fields = ["state", "retry_at", "reoffer"] }
    jobs_reoffer_update   = { collection = var.jobs_collection, fields = ["state", "reoffer", "last_update"] }
    jobs_state_activity   = { collection = var.jobs_collection, fields = ["state", "last_activity"] }
    jobs_state_update     = { collection = var.jobs_collection, fields = ["state", "last_update"] }
    jobs_state_retry      = { collection = var.jobs_collection, fields = ["state", "retry_at"] }
    jobs_state_lease      = { collection = var.jobs_collection, fields = ["state", "lease_until"] }
    jobs_state_date       = { collection = var.jobs_collection, fields = ["state", "date"] }
    jobs_experiment_date  = { collection = var.jobs_collection, fields = ["experiment", "date"] }
    jobs_datatype_date    = { collection = var.jobs_collection, fields = ["datatype", "date"] }
    # The owed runs of one source, read while another source is paused; then the oldest job
    # in flight of one source (the metrics, limit 1 per source).
    jobs_source_reoffer   = { collection = var.jobs_collection, fields = ["experiment", "datatype", "state", "reoffer"] }
    jobs_source_failed    = { collection = var.jobs_collection, fields = ["experiment", "datatype", "state", "retry_at", "reoffer"] }
    jobs_source_retry     = { collection = var.jobs_collection, fields = ["experiment", "datatype", "state", "retry_at"] }
    jobs_source_start     = { collection = var.jobs_collection, fields = ["experiment", "datatype", "state", "start_time"] }
    reprocess_source_rank = { collection = "reprocess", fields = ["source", "rank"] }
    # The sum of a run's updates over the job's progress shards (a SUM aggregation).
    progress_run_updates = { collection = "progress", fields = ["run", "updates"] }
  }

  # Free-text fields of a job document that no query uses: no single-field index, so a
  # long detail is neither cut in an index (1,500 bytes) nor paid for. The same list as
  # UNINDEXED_FIELDS in shared/limits.py; a map's subfields (history.N.detail) follow it.
  unindexed_job_fields = ["history", "audit", "last_error", "filter", "live", "runs"]
}

resource "google_firestore_field" "unindexed" {
  for_each   = toset(local.unindexed_job_fields)
  database   = google_firestore_database.default.name
  collection = var.jobs_collection
  field      = each.value

  # An empty index_config removes the automatic single-field indexes.
  index_config {}
}

resource "google_firestore_index" "indexes" {
  for_each   = local.firestore_indexes
  database   = google_firestore_database.default.name
  collection = each.value.collection

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path = fields.value
      order      = "ASCENDING"
    }
  }
}
