# Online feature store: a Redis instance the model servers read features from
resource "google_redis_instance" "feature_store" {
  name           = "ml-feature-store"
  tier           = "STANDARD_HA"
  memory_size_gb = 16
  region         = var.region

  authorized_network = google_container_cluster.ml_cluster.network
}

locals {
  feature_store_url = "redis://${google_redis_instance.feature_store.host}:${google_redis_instance.feature_store.port}"
}

output "feature_store_url" {
  value = local.feature_store_url
}
