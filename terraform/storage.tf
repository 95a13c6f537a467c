# Media buckets (keys, and the env variable each is announced in, come from the topology file)
# and the object-finalize notification that hands big uploads to ingest.

locals {
  cors_upload_headers = ["Content-Type", "Content-Range", "Content-Length", "Range", "ETag", "x-goog-content-length-range",
  "x-goog-meta-filename", "x-goog-meta-owner", "x-goog-resumable", "x-goog-generation"]
  cors_read_headers = ["Content-Type", "Content-Length", "Content-Range", "Range", "ETag", "Accept-Ranges"]

  # Lifecycle per bucket key. The object-name prefixes are those the services write:
  # originals/<job_id> (services/ingest), renditions/<job_id>/... (services/render).
  lifecycle_rules = {
    for key in keys(local.buckets) : key => concat(
      # Big uploads are staged under the notification prefix until ingest takes them over.
      [for prefix in local.staging_prefixes_of_bucket[key] : { prefixes = [prefix], age = var.staging_ttl_days }],
      # An original is needed while its job lives; the job document expires after job_ttl_days.
      key == "originals" ? [{ prefixes = ["originals/"], age = var.job_ttl_days }] : [],
      key == "renditions" && var.renditions_retention_days > 0 ? [{ prefixes = ["renditions/"], age = var.renditions_retention_days }] : [],
      # Segment results and work files (services/pipeline/handon.py) only matter until their job fans
      # in, which deletes them; this rule is the backstop.
      key == "renditions" ? [{ prefixes = ["work/"], age = var.segment_work_ttl_days }] : [],
    )
  }
}

resource "google_storage_bucket" "bucket" {
  for_each = local.buckets
  #checkov:skip=CKV_GCP_62:Access is audited with Cloud Audit Logs (Data Access logs for storage.googleapis.com), not legacy usage-log buckets, which would be one more bucket to secure.
  #checkov:skip=CKV_GCP_78:Objects are write-once (generation precondition 0, deterministic names), so versions would never accumulate; accidental deletes are covered by the soft-delete policy below.

  project       = var.project_id
  name          = "${var.project_id}-${each.value.default}"
  location      = upper(var.region)
  storage_class = "STANDARD"

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  soft_delete_policy {
    retention_duration_seconds = var.soft_delete_retention_days * 86400
  }

  dynamic "lifecycle_rule" {
    for_each = local.lifecycle_rules[each.key]
    content {
      condition {
        age            = lifecycle_rule.value.age
        matches_prefix = lifecycle_rule.value.prefixes
      }
      action {
        type = "Delete"
      }
    }
  }

  # CORS for web pages of var.cors_allowed_origins (none when empty). Originals: uploads with a
  # signed PUT URL (the headers signed_put_url makes the client send) or a resumable session
  # (chunk PUTs with Content-Range; a 308 answer's Range header says what arrived). Renditions:
  # hls.js fetches segments and the storyboard sprite with GET (and Range). `response_header`
  # lists both the request headers allowed and the response headers a page may read.
  dynamic "cors" {
    for_each = length(var.cors_allowed_origins) > 0 ? [each.key] : []
    content {
      origin          = var.cors_allowed_origins
      method          = cors.value == "originals" ? ["PUT"] : ["GET", "HEAD"]
      response_header = cors.value == "originals" ? local.cors_upload_headers : local.cors_read_headers
      max_age_seconds = var.cors_max_age_seconds
    }
  }

  # Resumable or XML multipart uploads that were never completed.
  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  depends_on = [google_project_service.enabled]
}

# GCS publishes object-finalize notifications as its own service agent.
data "google_storage_project_service_account" "gcs" {
  project = var.project_id

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic_iam_member" "gcs_notification_publisher" {
  for_each = local.gcs_notifications

  project = var.project_id
  topic   = google_pubsub_topic.topic[each.key].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

resource "google_storage_notification" "upload" {
  for_each = local.gcs_notifications

  bucket             = google_storage_bucket.bucket[each.value.bucket].name
  topic              = google_pubsub_topic.topic[each.key].id
  payload_format     = each.value.payload_format
  event_types        = each.value.event_types
  object_name_prefix = each.value.object_prefix

  depends_on = [google_pubsub_topic_iam_member.gcs_notification_publisher]
}
