terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

variable "project_id" {
  description = "GCP project that hosts the ML platform"
  type        = string
}

variable "region" {
  description = "Region of the cluster, database and buckets"
  type        = string
  default     = "us-central1"
}
