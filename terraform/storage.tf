# Buckets: the job snapshots written by `maintain`, and the function source archives.

resource "google_storage_bucket" "snapshots" {
  #checkov:skip=CKV_GCP_62:Access logs of the snapshot objects would only repeat the function's own writes; Cloud Audit Logs cover administrative access.
  name                        = var.snapshot_bucket
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  # `maintain` keeps the newest SNAPSHOT_KEEP snapshots; versioning keeps what it deletes or
  # what `latest.json` overwrote for 30 days, then this removes it.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  # A backstop for snapshots nobody deletes (e.g. a prefix no longer in use).
  lifecycle_rule {
    condition {
      age = 90
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket" "sources" {
  #checkov:skip=CKV_GCP_62:Holds only the function source archives this configuration uploads; Cloud Audit Logs cover access.
  name                        = "${var.project}-${var.name_prefix}-sources"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

# The object name carries the archive's hash, so a changed source redeploys the functions and
# an unchanged one (the zip is reproducible) changes nothing.
resource "google_storage_bucket_object" "source" {
  name   = "function-${filemd5(var.source_archive)}.zip"
  bucket = google_storage_bucket.sources.name
  source = var.source_archive
}
