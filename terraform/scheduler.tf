# The periodic sweep that re-drives jobs stuck in a stage (POST /ops/sweep), authenticated
# with an OIDC token of the scheduler account and the same audience as the pushes.

resource "google_cloud_scheduler_job" "sweep" {
  project     = var.project_id
  region      = var.region
  name        = "${var.name_prefix}sweep"
  description = "Re-drives mediarelay jobs stuck in a stage past their deadline."
  schedule    = var.sweep_schedule
  time_zone   = "Etc/UTC"
  # Within Cloud Run's request timeout of the sweep service.
  attempt_deadline = "${min(local.timeout_of_service[var.sweep_service], 1800)}s"

  # The next run sweeps again; no pile-up of retries.
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "${module.service[var.sweep_service].uri}/ops/sweep"
    headers = {
      "Content-Type" = "application/json"
    }
    body = base64encode("{}")

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = var.push_audience
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.scheduler_invoker]
}
