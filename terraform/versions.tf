terraform {
  required_version = ">= 1.5"
  required_providers {
    # 6.31: google_iap_web_cloud_run_service_iam_member.
    google = {
      source  = "hashicorp/google"
      version = "~> 6.31"
    }
    # google_project_service_identity (IAP's service agent, iap.tf) is in the beta provider only.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.31"
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

provider "google-beta" {
  project = var.project
  region  = var.region
}
