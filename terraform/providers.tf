provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = {
    app        = "mediarelay"
    managed-by = "terraform"
  }
}

data "google_project" "this" {
  project_id = var.project_id
}
