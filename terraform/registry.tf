resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption at rest; the images hold open-source dependencies and this repository's code, no customer data.
  project       = var.project_id
  location      = var.region
  repository_id = "mediarelay"
  description   = "mediarelay service images (one per service, tagged with the git commit)"
  format        = "DOCKER"

  # A tag always means the same image, so rolling back to a tag rolls back to those bytes.
  docker_config {
    immutable_tags = true
  }

  # Cleanup policies act (not just report). KEEP wins over DELETE and counts per image, so the
  # image a service currently runs is always among its 20 most recent versions.
  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 20
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "${var.image_retention_days * 86400}s"
    }
  }

  depends_on = [google_project_service.enabled]
}
