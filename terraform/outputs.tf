output "api_url" {
  description = "Base URL of the router for the parsers (their /v2/job/* paths)."
  value       = google_cloudfunctions2_function.fn["api"].url
}

output "admin_url" {
  description = "Base URL of the admin function, for the gardener command line (--url, GARDENER_URL)."
  value       = google_cloudfunctions2_function.fn["admin"].url
}

output "status_url" {
  description = "URL of the status page, for a browser (through IAP with iap_enabled; else `gcloud run services proxy`)."
  value       = "${google_cloudfunctions2_function.fn["status"].url}/status"
}

output "metrics_url" {
  description = "URL a Prometheus scraper reads (with an ID token of an operator_members account)."
  value       = "${google_cloudfunctions2_function.fn["metrics"].url}/metrics"
}

output "function_urls" {
  description = "URL of every function, by name."
  value       = { for name, fn in google_cloudfunctions2_function.fn : name => fn.url }
}

output "runtime_service_account" {
  description = "Service account the functions run as."
  value       = google_service_account.runtime.email
}

output "scheduler_service_account" {
  description = "Service account Cloud Scheduler calls maintain and postprocess as."
  value       = google_service_account.scheduler.email
}
