variable "project" {
  description = "Google Cloud project that hosts the tracker."
  type        = string
}

variable "region" {
  description = "Region of the functions and the Firestore database."
  type        = string
  default     = "us-central1"
}

variable "jobs_collection" {
  description = "Firestore collection of job documents (TRACKER_COLLECTION of the functions)."
  type        = string
  default     = "jobs"
}
