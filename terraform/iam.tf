# Service accounts and their grants: each gets what the code needs and nothing more.

resource "google_service_account" "runtime" {
  account_id   = "${var.name_prefix}-runtime"
  display_name = "Gardener tracker functions"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "scheduler" {
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "Gardener tracker scheduler (invokes maintain and postprocess)"
  depends_on   = [google_project_service.apis]
}

locals {
  runtime_member   = "serviceAccount:${google_service_account.runtime.email}"
  bigquery_project = var.bigquery_project != "" ? var.bigquery_project : var.project
}

# Firestore: read and write the job documents and the next-job cursors.
resource "google_project_iam_member" "runtime_datastore" {
  project = var.project
  role    = "roles/datastore.user"
  member  = local.runtime_member
}

# Snapshots: create, list, read and delete objects of the snapshot bucket only.
resource "google_storage_bucket_iam_member" "runtime_snapshots" {
  bucket = google_storage_bucket.snapshots.name
  role   = "roles/storage.objectAdmin"
  member = local.runtime_member
}

# Post-processing loads read the parsers' output.
resource "google_storage_bucket_iam_member" "runtime_input" {
  bucket = var.input_bucket
  role   = "roles/storage.objectViewer"
  member = local.runtime_member
}

# `next` checks that a day's archive files exist before handing out its job.
resource "google_storage_bucket_iam_member" "runtime_archives" {
  for_each = toset(var.archive_buckets)
  bucket   = each.value
  role     = "roles/storage.objectViewer"
  member   = local.runtime_member
}

# BigQuery: run load, query and copy jobs in the BigQuery project ...
resource "google_project_iam_member" "runtime_bigquery_jobs" {
  project = local.bigquery_project
  role    = "roles/bigquery.jobUser"
  member  = local.runtime_member
}

# ... and write only the configured datasets.
resource "google_bigquery_dataset_iam_member" "runtime_datasets" {
  for_each   = toset(var.bigquery_datasets)
  project    = local.bigquery_project
  dataset_id = each.value
  role       = "roles/bigquery.dataEditor"
  member     = local.runtime_member
}
