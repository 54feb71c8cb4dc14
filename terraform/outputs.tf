output "api_url" {
  description = "Base URL of the router for the parsers (their /v2/job/* paths)."
  value       = google_cloudfunctions2_function.fn["api"].url
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
