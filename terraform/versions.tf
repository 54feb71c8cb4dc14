terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
  # Partial configuration: the bucket comes from `terraform init -backend-config=bucket=...`
  # (cloudbuild.yaml passes the _TF_STATE_BUCKET substitution).
  backend "gcs" {
    prefix = "gardener-tracker"
  }
}

provider "google" {
  project = var.project
  region  = var.region
}
