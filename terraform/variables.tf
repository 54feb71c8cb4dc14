variable "project" {
  description = "Google Cloud project that hosts the tracker."
  type        = string
}

variable "region" {
  description = "Region of the functions, the scheduler jobs, the buckets and the Firestore database."
  type        = string
  default     = "us-central1"
}

variable "name_prefix" {
  description = "Prefix of every function, service account and scheduler job name."
  type        = string
  default     = "gardener"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,14}$", var.name_prefix))
    error_message = "name_prefix: a lower-case letter, then up to 14 lower-case letters, digits or dashes."
  }
}

variable "jobs_collection" {
  description = "Firestore collection of job documents (TRACKER_COLLECTION of the functions)."
  type        = string
  default     = "jobs"
}

variable "source_archive" {
  description = "Zip of the function source, built by `make package`."
  type        = string
  default     = "../build/function.zip"
}

variable "snapshot_bucket" {
  description = "Bucket created for the job snapshots of `maintain` (SNAPSHOT_BUCKET)."
  type        = string
}

variable "snapshot_keep" {
  description = "Snapshots kept by `maintain` (SNAPSHOT_KEEP); with the default schedule, 48 cover 8 hours."
  type        = number
  default     = 48
}

variable "input_bucket" {
  description = "Existing bucket the parsers write rows to; the BigQuery loads read it (INPUT_BUCKET)."
  type        = string
}

variable "archive_buckets" {
  description = "Existing archive buckets `next` checks for files (the config's `bucket` values); the runtime account gets object viewer on each."
  type        = list(string)
  default     = []
}

variable "bigquery_project" {
  description = "Project of the BigQuery datasets and jobs (BIGQUERY_PROJECT); empty: the tracker's project."
  type        = string
  default     = ""
}

variable "bigquery_location" {
  description = "Location of the BigQuery datasets and jobs (BIGQUERY_LOCATION): a multi-region such as US or EU, or a region such as us-central1."
  type        = string
  default     = "US"

  validation {
    condition     = can(regex("^[A-Za-z]{2,}(-[a-z]+[0-9]*)*$", var.bigquery_location))
    error_message = "bigquery_location must be a BigQuery location such as US, EU or us-central1."
  }
}

variable "bigquery_datasets" {
  description = "Existing datasets post-processing writes to (the config's target_datasets); the runtime account gets data editor on each."
  type        = list(string)
  default = [
    "tmp_ndt", "raw_ndt", "ndt",
    "tmp_utilization", "raw_utilization",
    "tmp_msak", "raw_msak", "msak",
    "tmp_wehe", "raw_wehe", "wehe",
  ]
}

variable "config_environment" {
  description = "Environment variables filling the config's {{NAME}} placeholders, e.g. NDT_SOURCE_PROJECT."
  type        = map(string)
  default     = {}
}

variable "parser_service_accounts" {
  description = "Emails of the parsers' service accounts; each may invoke the parser-facing functions (api, next_job, update, heartbeat, error) and nothing else."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for email in var.parser_service_accounts : can(regex("^[^@:]+@[^@:]+$", email))])
    error_message = "parser_service_accounts: plain service account emails (no member prefix)."
  }
}

variable "operator_members" {
  description = "IAM members (user:, group:, serviceAccount: or domain:) who may invoke the operator functions (status, admin, metrics) and, with iap_enabled, pass IAP."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.operator_members : can(regex("^(user|group|serviceAccount|domain):[^:]+$", m))])
    error_message = "operator_members: IAM members of a named principal (user:, group:, serviceAccount:, domain:)."
  }
}

variable "iap_enabled" {
  description = "Put Identity-Aware Proxy directly on the Cloud Run services of status and admin (iap.tf): operator_members sign in with Google in a browser. Needs the project to be in an organization, and gcloud where terraform apply runs."
  type        = bool
  default     = false
}

variable "iap_metrics" {
  description = "With iap_enabled, put IAP on metrics too (a scraper then needs a token IAP admits)."
  type        = bool
  default     = false
}

variable "maintain_schedule" {
  description = "Cron schedule (UTC) of `maintain`: expiry, clean-up, snapshot."
  type        = string
  default     = "*/10 * * * *"
}

variable "postprocess_schedule" {
  description = "Cron schedule (UTC) of `postprocess` ticks; see postprocess_batch for the sizing."
  type        = string
  default     = "* * * * *"
}

variable "postprocess_tick_seconds" {
  description = "How long one `postprocess` tick may work (POSTPROCESS_TICK_SECONDS, at most 480, under the function's 540 s timeout); see functions.tf for the sizing."
  type        = number
  default     = 480
}

variable "postprocess_batch" {
  description = "Leasable jobs one `postprocess` tick reads per page (POSTPROCESS_BATCH); see functions.tf for the sizing."
  type        = number
  default     = 200
}

variable "log_level" {
  description = "LOG_LEVEL of the functions."
  type        = string
  default     = "INFO"
}

variable "alerts_enabled" {
  description = "Whether the Cloud Monitoring alert policies (monitoring.tf) are enabled; they need /metrics ingested by Managed Service for Prometheus."
  type        = bool
  default     = true
}

variable "alert_notification_channels" {
  description = "Cloud Monitoring notification channels (projects/P/notificationChannels/ID) the alert policies notify."
  type        = list(string)
  default     = []
}

variable "alert_maintain_silence_seconds" {
  description = "Alert when no `maintain` run has succeeded for this long: 3 intervals of maintain_schedule."
  type        = number
  default     = 1800
}

variable "alert_postprocess_silence_seconds" {
  description = "Alert when no `postprocess` tick has succeeded for this long."
  type        = number
  default     = 1800
}

variable "alert_daily_deadline_hour" {
  description = "UTC hour by which yesterday's daily jobs must be complete (they are handed out from 10:30 UTC)."
  type        = number
  default     = 18

  validation {
    condition     = var.alert_daily_deadline_hour >= 0 && var.alert_daily_deadline_hour <= 23 && floor(var.alert_daily_deadline_hour) == var.alert_daily_deadline_hour
    error_message = "alert_daily_deadline_hour: a whole hour from 0 to 23 (UTC)."
  }
}

variable "alert_in_flight_seconds" {
  description = "Alert when a source's oldest run in flight is older than this: the config's tracker.timeout (5h)."
  type        = number
  default     = 18000
}

variable "alert_failures_min" {
  description = "Failures of a source in an hour below which a rise is not reported."
  type        = number
  default     = 5
}

variable "alert_snapshot_stale_seconds" {
  description = "Alert when no snapshot has been written for this long."
  type        = number
  default     = 7200
}
