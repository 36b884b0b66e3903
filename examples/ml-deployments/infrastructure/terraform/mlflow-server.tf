# MLflow tracking server's database
resource "google_sql_database_instance" "mlflow_db" {
  name             = "mlflow-tracking"
  database_version = "POSTGRES_15"
  region           = var.region

  settings {
    tier = "db-custom-2-7680"
    backup_configuration {
      enabled = true
    }
  }
}

# Artifact storage for models
resource "google_storage_bucket" "model_artifacts" {
  name     = "ml-model-artifacts-${var.project_id}"
  location = var.region

  versioning {
    enabled = true # Model version history
  }

  lifecycle_rule {
    action {
      type = "Delete"
    }
    condition {
      num_newer_versions = 10 # Keep last 10 versions
    }
  }
}

output "mlflow_db_connection" {
  value = google_sql_database_instance.mlflow_db.connection_name
}
