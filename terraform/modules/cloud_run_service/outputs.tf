output "name" {
  description = "Service name."
  value       = google_cloud_run_v2_service.this.name
}

output "id" {
  description = "Service id (projects/…/locations/…/services/…)."
  value       = google_cloud_run_v2_service.this.id
}

output "uri" {
  description = "The run.app URL the service answers on."
  value       = google_cloud_run_v2_service.this.uri
}

output "latest_ready_revision" {
  description = "Revision serving traffic (for rollbacks)."
  value       = google_cloud_run_v2_service.this.latest_ready_revision
}
