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

# The keys of playback tokens (PLAYBACK_TOKEN_KEYS: `kid:base64-of-32-random-bytes`, comma-
# separated, the first signs). Rotate by adding a version whose list puts a new key first and
# keeps the previous one for PLAYBACK_TOKEN_TTL_SECONDS; values are added out of band.
resource "google_secret_manager_secret" "playback_keys" {
  project   = var.project_id
  secret_id = "${var.name_prefix}playback-token-keys"

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

# ingest mints and checks playback tokens; the console mints them for its Job page's player.
resource "google_secret_manager_secret_iam_member" "playback_reader" {
  for_each = toset(["ingest", "console"])

  project   = var.project_id
  secret_id = google_secret_manager_secret.playback_keys.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = local.service_member[each.key]
}

# The server keys of derivative-image URLs (DERIVATIVE_SIGNING_KEYS: `kid:base64-of-32-random-bytes`,
# comma-separated; each client signs with a secret derived from a key and its client id, the key id
# travels in the URL). Rotate by adding a version whose list puts a new key first and keeps the
# previous one while pages still carry its URLs; values are added out of band.
resource "google_secret_manager_secret" "derivative_keys" {
  project   = var.project_id
  secret_id = "${var.name_prefix}derivative-signing-keys"

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_iam_member" "derivative_reader" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.derivative_keys.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = local.service_member["ingest"]
}
