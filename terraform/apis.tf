# The Google APIs the deployment uses. They stay enabled when the tracker is destroyed.

locals {
  services = toset(concat([
    "bigquery.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "run.googleapis.com",
    "monitoring.googleapis.com",
    "storage.googleapis.com",
    "artifactregistry.googleapis.com",
  ], var.iap_enabled ? ["iap.googleapis.com"] : []))
}

resource "google_project_service" "apis" {
  for_each           = local.services
  service            = each.value
  disable_on_destroy = false
}
