# GKE cluster with GPU node pool (the seed's ml-platform.tf)
resource "google_container_cluster" "ml_cluster" {
  name     = "ml-production"
  location = var.region

  # The node pools are managed below.
  remove_default_node_pool = true
  initial_node_count       = 1

  # Enable features needed for ML
  addons_config {
    gce_persistent_disk_csi_driver_config {
      enabled = true # For model storage
    }
  }

  # Autoscaling cluster
  cluster_autoscaling {
    enabled = true
    resource_limits {
      resource_type = "cpu"
      maximum       = 1000
    }
    resource_limits {
      resource_type = "memory"
      maximum       = 4000 # GB
    }
    resource_limits {
      resource_type = "nvidia-tesla-t4"
      maximum       = 50
    }
  }
}

# GPU node pool for inference
resource "google_container_node_pool" "gpu_pool" {
  name     = "gpu-inference"
  cluster  = google_container_cluster.ml_cluster.name
  location = var.region

  autoscaling {
    min_node_count = 1
    max_node_count = 20
  }

  node_config {
    machine_type = "n1-standard-8"

    guest_accelerator {
      type  = "nvidia-tesla-t4"
      count = 1
    }

    # Required for GPU nodes
    metadata = {
      disable-legacy-endpoints = "true"
    }

    oauth_scopes = [
      "https://www.googleapis.com/auth/cloud-platform"
    ]
  }
}
