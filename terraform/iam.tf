# Identities. Each service runs as its own account holding only what it uses; Pub/Sub pushes
# and Cloud Scheduler calls carry OIDC tokens of two further accounts that can only invoke.

resource "google_service_account" "service" {
  for_each = local.services

  project      = var.project_id
  account_id   = "${var.name_prefix}${each.key}"
  display_name = "mediarelay ${each.key} (Cloud Run runtime)"

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "push" {
  project      = var.project_id
  account_id   = "${var.name_prefix}push"
  display_name = "mediarelay Pub/Sub push identity (OIDC tokens to the services)"

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "scheduler" {
  project      = var.project_id
  account_id   = "${var.name_prefix}scheduler"
  display_name = "mediarelay Cloud Scheduler identity (OIDC tokens to the sweep)"

  depends_on = [google_project_service.enabled]
}

locals {
  service_member = { for name, sa in google_service_account.service : name => "serviceAccount:${sa.email}" }

  # Google-managed service agents of this project.
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # Object access per service and bucket key (services/*: who reads and writes what).
  # objectUser = create/read/overwrite/delete; objectViewer = read.
  bucket_grants = {
    "ingest/originals"  = { service = "ingest", bucket = "originals", role = "roles/storage.objectUser" }
    "analyze/originals" = { service = "analyze", bucket = "originals", role = "roles/storage.objectViewer" }
    "render/originals"  = { service = "render", bucket = "originals", role = "roles/storage.objectViewer" }
    "render/renditions" = { service = "render", bucket = "renditions", role = "roles/storage.objectUser" }
    # ingest signs GET URLs of renditions for upload clients: the signer must be able to read them.
    "ingest/renditions" = { service = "ingest", bucket = "renditions", role = "roles/storage.objectViewer" }
    # the console signs preview URLs of renditions for operators (its Job page).
    "console/renditions" = { service = "console", bucket = "renditions", role = "roles/storage.objectViewer" }
  }
}

# Job documents: every stage reads and writes them in transactions. Firestore data access is
# granted per project (there is one database).
resource "google_project_iam_member" "firestore_user" {
  for_each = local.services

  project = var.project_id
  role    = "roles/datastore.user"
  member  = local.service_member[each.key]
}

resource "google_storage_bucket_iam_member" "service_objects" {
  for_each = local.bucket_grants

  bucket = google_storage_bucket.bucket[each.value.bucket].name
  role   = each.value.role
  member = local.service_member[each.value.service]
}

# ingest signs V4 upload URLs without a key file: IAM signBlob on its own account.
resource "google_service_account_iam_member" "ingest_signs_urls" {
  service_account_id = google_service_account.service["ingest"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.service_member["ingest"]
}

# The console signs its previews' URLs the same way.
resource "google_service_account_iam_member" "console_signs_urls" {
  service_account_id = google_service_account.service["console"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.service_member["console"]
}

# Pub/Sub mints the push OIDC tokens as the push account.
resource "google_service_account_iam_member" "pubsub_mints_push_tokens" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent

  depends_on = [google_project_service.enabled]
}
