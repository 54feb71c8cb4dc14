# Cloud Scheduler calls maintain and postprocess with an OIDC identity token of the scheduler
# account, whose audience is the function URL.

locals {
  schedules = {
    maintain    = var.maintain_schedule
    postprocess = var.postprocess_schedule
  }
}

resource "google_cloud_scheduler_job" "tick" {
  for_each         = local.schedules
  name             = "${var.name_prefix}-${each.key}"
  description      = "Gardener tracker: POST /${each.key}"
  region           = var.region
  schedule         = each.value
  time_zone        = "Etc/UTC"
  attempt_deadline = "540s"

  retry_config {
    retry_count = 0 # the next scheduled call is the retry
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.fn[each.key].url

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.fn[each.key].url
    }
  }

  depends_on = [google_project_service.apis]
}
