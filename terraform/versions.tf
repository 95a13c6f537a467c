terraform {
  # Write-only/ephemeral features are not used; 1.5 brings `check` blocks and import blocks.
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # Written against the 6.x-8.x documentation: deletion_protection on Cloud Run v2 (6.0),
      # soft_delete_policy on buckets, cleanup_policies on Artifact Registry. No beta-only
      # resource is used, so the google-beta provider is not needed.
      version = ">= 6.0.0, < 9.0.0"
    }
  }
}
