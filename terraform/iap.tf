# Identity-Aware Proxy directly on the Cloud Run services of the operator functions (iap_enabled):
# status and admin, and metrics with iap_metrics. A person then opens status_url in a browser and
# signs in with Google; IAP lets operator_members through and signs each request it forwards with
# X-Goog-IAP-JWT-Assertion, which the function verifies against IAP_AUDIENCE (shared/web/identity.py).
# IAP on Cloud Run needs the project to be in an organization (docs/deploy.md).
#
# Switching it on: no provider field does it for a gen2 function. `iap_enabled` exists on
# google_cloud_run_v2_service, but the function's service belongs to Cloud Functions (managing
# it as a google_cloud_run_v2_service would fight Cloud Functions over it and delete it with
# the resource), and the Cloud Functions API has no IAP setting. So terraform_data.iap runs the
# documented `gcloud beta run services update SERVICE --iap` on each service (again after each
# change of the function, whose redeploy may reset it; `--no-iap` when it is switched off):
# `terraform apply` then needs gcloud, logged in with roles/run.admin and roles/iap.admin.

locals {
  # Functions behind IAP, by name (keys of local.functions).
  iap_functions = var.iap_enabled ? toset(concat(["status", "admin"], var.iap_metrics ? ["metrics"] : [])) : toset([])

  # IAP_AUDIENCE of each function behind IAP: the audience of IAP's signed header for IAP on
  # Cloud Run, /projects/NUMBER/locations/REGION/services/SERVICE.
  iap_environment = {
    for name in local.iap_functions : name => {
      IAP_AUDIENCE = "/projects/${data.google_project.this[0].number}/locations/${var.region}/services/${var.name_prefix}-${name}"
    }
  }

  # Who may pass IAP: every operator, on every function behind it.
  iap_accessors = merge([
    for name in local.iap_functions : {
      for member in var.operator_members : "${name} ${member}" => { function = name, member = member }
    }
  ]...)
}

data "google_project" "this" {
  count      = var.iap_enabled ? 1 : 0
  project_id = var.project
}

# IAP's service agent (service-NUMBER@gcp-sa-iap.iam.gserviceaccount.com), created if missing.
resource "google_project_service_identity" "iap" {
  provider   = google-beta
  count      = var.iap_enabled ? 1 : 0
  project    = var.project
  service    = "iap.googleapis.com"
  depends_on = [google_project_service.apis]
}

# IAP calls the function as its service agent, so the agent needs the invoker role on it.
resource "google_cloud_run_service_iam_member" "iap_invoker" {
  for_each = local.iap_functions
  location = google_cloudfunctions2_function.fn[each.key].location
  service  = google_cloudfunctions2_function.fn[each.key].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_project_service_identity.iap[0].email}"
}

# Operators may pass IAP.
resource "google_iap_web_cloud_run_service_iam_member" "operators" {
  for_each               = local.iap_accessors
  project                = var.project
  location               = google_cloudfunctions2_function.fn[each.value.function].location
  cloud_run_service_name = google_cloudfunctions2_function.fn[each.value.function].name
  role                   = "roles/iap.httpsResourceAccessor"
  member                 = each.value.member
}

# IAP on each service (see the top of this file for why this is a gcloud step).
resource "terraform_data" "iap" {
  for_each = local.iap_functions
  input = {
    service = google_cloudfunctions2_function.fn[each.key].name
    region  = var.region
    project = var.project
  }
  triggers_replace = [google_cloudfunctions2_function.fn[each.key].update_time]

  provisioner "local-exec" {
    command = "command -v gcloud >/dev/null || { echo 'iap_enabled: terraform apply needs gcloud (terraform/iap.tf)' >&2; exit 1; }; gcloud beta run services update ${self.input.service} --project=${self.input.project} --region=${self.input.region} --iap --quiet"
  }

  provisioner "local-exec" {
    when       = destroy
    on_failure = continue
    command    = "gcloud beta run services update ${self.input.service} --project=${self.input.project} --region=${self.input.region} --no-iap --quiet"
  }

  depends_on = [
    google_cloud_run_service_iam_member.iap_invoker,
    google_iap_web_cloud_run_service_iam_member.operators,
  ]
}
