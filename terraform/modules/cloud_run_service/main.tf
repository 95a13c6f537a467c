# One Cloud Run (v2) service of the pipeline: container, sizing, probes, environment.
# IAM (who may invoke it) stays with the caller, which knows the identities.

resource "google_cloud_run_v2_service" "this" {
  project             = var.project_id
  name                = var.name
  location            = var.location
  ingress             = var.ingress
  deletion_protection = var.deletion_protection
  # IAP in front of the service itself (no load balancer): only the principals granted
  # roles/iap.httpsResourceAccessor reach it, each request carrying IAP's signed assertion.
  iap_enabled  = var.iap_enabled
  launch_stage = var.iap_enabled ? "BETA" : null

  template {
    service_account                  = var.service_account_email
    timeout                          = "${var.timeout_seconds}s"
    max_instance_request_concurrency = var.concurrency
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    containers {
      image = var.image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        # Request-based billing: CPU only while requests are in flight (work happens inside
        # the push request, never in the background).
        cpu_idle          = true
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = var.env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = var.secret_env
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value.secret
              version = env.value.version
            }
          }
        }
      }

      # Traffic reaches a new instance only once the app answers its health path. No
      # liveness probe: a CPU-bound stage with every worker busy could not answer one and
      # would be restarted mid-request.
      startup_probe {
        initial_delay_seconds = 0
        period_seconds        = 3
        timeout_seconds       = 2
        failure_threshold     = 20

        http_get {
          path = var.health_path
        }
      }
    }
  }

  traffic {
    type    = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
    percent = 100
  }
}
