# The key (32 random bytes, base64) sealing clients' webhook signing secrets at rest.
# Terraform creates the secret only: its value is added out of band (terraform/README.md)
# and never passes through this repository or the state.

resource "google_secret_manager_secret" "webhook_signing" {
  project   = var.project_id
  secret_id = "${var.name_prefix}webhook-signing-key"

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_iam_member" "webhook_reader" {
  for_each  = toset(var.webhook_services)
  project   = var.project_id
  secret_id = google_secret_manager_secret.webhook_signing.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = local.service_member[each.value]
}
