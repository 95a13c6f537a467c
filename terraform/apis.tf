resource "google_project_service" "enabled" {
  for_each = toset(var.apis)

  project = var.project_id
  service = each.key
  # Leave the APIs on when this configuration is destroyed: other workloads may use them.
  disable_on_destroy = false
}
