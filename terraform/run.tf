# The four Cloud Run services: one image per service (Dockerfile, --build-arg SERVICE=<name>).

locals {
  image_base = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"

  # Cloud Run's deterministic URL, known before the service exists: no cycle through ingest's
  # own environment (https://<service>-<project number>.<region>.run.app).
  ingest_url      = "https://${var.name_prefix}ingest-${data.google_project.this.number}.${var.region}.run.app"
  public_base_url = var.public_base_url != "" ? var.public_base_url : local.ingest_url

  # Environment every service reads (services/common/config.py).
  common_env = merge(
    {
      GOOGLE_CLOUD_PROJECT = var.project_id
      PUBLIC_BASE_URL      = local.public_base_url
      PUSH_AUDIENCE        = var.push_audience
      PUSH_SERVICE_ACCOUNT = google_service_account.push.email
      JOB_TTL_DAYS         = tostring(var.job_ttl_days)
      LOG_LEVEL            = var.log_level
    },
    # ORIGINALS_BUCKET, RENDITIONS_BUCKET: the variable names come from the topology file.
    { for key, bucket in local.buckets : bucket.env => google_storage_bucket.bucket[key].name },
    var.app_env,
  )

  # Request timeout: at least the longest ack deadline of the subscriptions pushing here.
  timeout_of_service = {
    for name, spec in var.services : name => max(spec.timeout_seconds, lookup(local.ack_deadline_of_service, name, 0))
  }

  service_env = {
    for name in keys(local.services) : name => merge(
      local.common_env,
      {
        WEB_CONCURRENCY  = tostring(var.services[name].workers)
        GUNICORN_THREADS = tostring(ceil(var.services[name].concurrency / var.services[name].workers))
        # Work budget of one stage delivery: three quarters of the ack deadline, so a slow
        # stage gives up (and is retried) before Pub/Sub stops waiting for its answer.
        STAGE_TIME_BUDGET_SECONDS = tostring(floor(max(local.ack_deadline_of_service[name], 60) * 3 / 4))
      },
      # The sweep endpoint verifies the Cloud Scheduler token's email against this account.
      # (A filtering for-expression, not `cond ? {...} : {}`: object types must match.)
      { for k, v in { SCHEDULER_SERVICE_ACCOUNT = google_service_account.scheduler.email } : k => v if name == var.sweep_service },
      # The console checks IAP's assertion itself: the audience IAP signs for this very service.
      {
        for k, v in {
          CONSOLE_AUDIENCE = "/projects/${data.google_project.this.number}/locations/${var.region}/services/${var.name_prefix}${name}"
        } : k => v if contains(local.operator_services, name)
      },
      # Upload clients' ID tokens and rendition URLs: ingest's settings, set only when given.
      {
        for k, v in {
          CLIENT_TOKEN_AUDIENCES = join(",", var.client_token_audiences)
          CLIENT_TOKEN_ISSUERS   = join(",", var.client_token_issuers)
          CLIENT_TOKEN_CERTS_URL = var.client_token_certs_url
          RENDITIONS_BASE_URL    = var.renditions_base_url
          # The same origins as the buckets' CORS rules (storage.tf): playback and upload-URL routes.
          CORS_ALLOWED_ORIGINS = join(",", var.cors_allowed_origins)
        } : k => v if name == "ingest" && v != ""
      },
    )
  }

  service_secret_env = {
    for name in keys(local.services) : name => merge(
      {
        for k, v in {
          # Seals (ingest, on create/rotate) and opens (notify, to sign) clients' endpoint secrets.
          WEBHOOK_SECRETS_KEY = {
            secret  = google_secret_manager_secret.webhook_signing.secret_id
            version = var.webhook_secret_version
          }
        } : k => v if contains(var.webhook_services, name)
      },
      {
        for k, v in {
          # Signs and checks playback tokens (`kid:base64,...`; the first signs, all verify).
          PLAYBACK_TOKEN_KEYS = {
            secret  = google_secret_manager_secret.playback_keys.secret_id
            version = var.playback_keys_version
          }
        } : k => v if contains(["ingest", "console"], name)
      },
      {
        for k, v in {
          # Derives each client's secret for derivative-image URLs (`kid:base64,...`; the first is handed out).
          DERIVATIVE_SIGNING_KEYS = {
            secret  = google_secret_manager_secret.derivative_keys.secret_id
            version = var.derivative_keys_version
          }
        } : k => v if name == "ingest"
      },
    )
  }
}

module "service" {
  source   = "./modules/cloud_run_service"
  for_each = local.services

  project_id            = var.project_id
  name                  = "${var.name_prefix}${each.key}"
  location              = var.region
  image                 = "${local.image_base}/${each.key}:${var.image_tag}"
  service_account_email = google_service_account.service[each.key].email
  # Public services take traffic from the internet; the others only from Google-internal
  # sources of this project (Pub/Sub push and Cloud Scheduler count as internal when they
  # call the run.app URL), and IAM admits only the push/scheduler accounts.
  # Operators' services are reached from the internet too, but only through IAP (iap_enabled).
  ingress             = contains(concat(local.public_services, local.operator_services), each.key) ? "INGRESS_TRAFFIC_ALL" : "INGRESS_TRAFFIC_INTERNAL_ONLY"
  iap_enabled         = contains(local.operator_services, each.key)
  cpu                 = var.services[each.key].cpu
  memory              = var.services[each.key].memory
  concurrency         = var.services[each.key].concurrency
  timeout_seconds     = local.timeout_of_service[each.key]
  min_instances       = var.services[each.key].min_instances
  max_instances       = var.services[each.key].max_instances
  env                 = local.service_env[each.key]
  secret_env          = local.service_secret_env[each.key]
  deletion_protection = var.deletion_protection

  depends_on = [
    google_project_iam_member.firestore_user,
    google_storage_bucket_iam_member.service_objects,
    google_secret_manager_secret_iam_member.webhook_reader,
  ]
}

# Only the push account (and, for the sweep, the scheduler account) may invoke the stages.
resource "google_cloud_run_v2_service_iam_member" "push_invoker" {
  for_each = toset(local.push_target_services)

  project  = var.project_id
  location = var.region
  name     = module.service[each.key].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.push.email}"
}

resource "google_cloud_run_v2_service_iam_member" "scheduler_invoker" {
  project  = var.project_id
  location = var.region
  name     = module.service[var.sweep_service].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}

resource "google_cloud_run_v2_service_iam_member" "public_invoker" {
  for_each = toset(local.public_services)
  #checkov:skip=CKV_MR_1:ingest is the public upload API (topology: services.ingest.public). Its push path is still guarded in the app by OIDC verification (PUSH_AUDIENCE + PUSH_SERVICE_ACCOUNT), and every other service is internal-only with IAM invokers.

  project  = var.project_id
  location = var.region
  name     = module.service[each.key].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# The console: operators reach it through IAP (roles/iap.httpsResourceAccessor), and IAP's own
# service agent invokes it. The app verifies IAP's assertion itself (services/console/auth.py).
resource "google_iap_web_cloud_run_service_iam_member" "operator_access" {
  for_each = {
    for pair in setproduct(local.operator_services, var.operators) : "${pair[0]}/${pair[1]}" => { service = pair[0], member = pair[1] }
  }

  project                = var.project_id
  location               = var.region
  cloud_run_service_name = module.service[each.value.service].name
  role                   = "roles/iap.httpsResourceAccessor"
  member                 = each.value.member
}

resource "google_cloud_run_v2_service_iam_member" "iap_invoker" {
  for_each = toset(local.operator_services)

  project  = var.project_id
  location = var.region
  name     = module.service[each.key].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-iap.iam.gserviceaccount.com"
}
