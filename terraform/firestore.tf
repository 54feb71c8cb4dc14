# The Firestore database and the composite indexes the tracker's queries need.
# The list mirrors shared/store.py INDEXES; the emulator needs none, production does.

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
  job_indexes = {
    state_start      = ["state", "start_time"]
    experiment_start = ["experiment", "start_time"]
    datatype_start   = ["datatype", "start_time"]
    state_reoffer    = ["state", "reoffer"]
    state_activity   = ["state", "last_activity"]
    state_update     = ["state", "last_update"]
    state_retry      = ["state", "retry_at"]
    state_lease      = ["state", "lease_until"]
  }
}

resource "google_firestore_index" "jobs" {
  for_each   = local.job_indexes
  database   = google_firestore_database.default.name
  collection = var.jobs_collection

  dynamic "fields" {
    for_each = each.value
    content {
      field_path = fields.value
      order      = "ASCENDING"
    }
  }
}
