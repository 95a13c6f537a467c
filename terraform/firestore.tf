# Job status store: the (default) database, TTL on the expiry field, and the composite index
# of the stuck-job sweep.

resource "google_firestore_database" "default" {
  project     = var.project_id
  name        = "(default)"
  location_id = var.firestore_location
  type        = "FIRESTORE_NATIVE"

  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  # terraform destroy forgets the database instead of deleting job history.
  deletion_policy = "ABANDON"

  depends_on = [google_project_service.enabled]
}

# Documents are deleted once expires_at (created_at + JOB_TTL_DAYS) has passed. The field is
# never queried, so its single-field indexes are dropped (an always-increasing timestamp index
# is a write hotspot).
resource "google_firestore_field" "job_expiry" {
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = var.jobs_collection
  field      = "expires_at"

  ttl_config {}

  index_config {}
}

# The sweep: where status == S and updated_at < cutoff order by updated_at.
resource "google_firestore_index" "jobs_status_updated_at" {
  project     = var.project_id
  database    = google_firestore_database.default.name
  collection  = var.jobs_collection
  query_scope = "COLLECTION"

  fields {
    field_path = "status"
    order      = "ASCENDING"
  }

  fields {
    field_path = "updated_at"
    order      = "ASCENDING"
  }
}

# GET /v1/jobs (services/ingest/listing.py): a client's jobs, newest first, optionally by status.
resource "google_firestore_index" "jobs_owner_created_at" {
  project     = var.project_id
  database    = google_firestore_database.default.name
  collection  = var.jobs_collection
  query_scope = "COLLECTION"

  fields {
    field_path = "owner"
    order      = "ASCENDING"
  }

  fields {
    field_path = "created_at"
    order      = "DESCENDING"
  }
}

# `mediarelay stats` (services/ingest/quotas.py _cost): sum() of a client's job costs per day; the
# summed field must be in the index (Firestore computes sum() from index entries).
resource "google_firestore_index" "jobs_owner_created_at_cost" {
  project     = var.project_id
  database    = google_firestore_database.default.name
  collection  = var.jobs_collection
  query_scope = "COLLECTION"

  fields {
    field_path = "owner"
    order      = "ASCENDING"
  }

  fields {
    field_path = "created_at"
    order      = "ASCENDING"
  }

  fields {
    field_path = "cost.total_usd"
    order      = "ASCENDING"
  }
}

resource "google_firestore_index" "jobs_owner_status_created_at" {
  project     = var.project_id
  database    = google_firestore_database.default.name
  collection  = var.jobs_collection
  query_scope = "COLLECTION"

  fields {
    field_path = "owner"
    order      = "ASCENDING"
  }

  fields {
    field_path = "status"
    order      = "ASCENDING"
  }

  fields {
    field_path = "created_at"
    order      = "DESCENDING"
  }
}

# Idempotency-Key / content-hash records (services/ingest/jobs.py) live as long as their job.
resource "google_firestore_field" "job_key_expiry" {
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = "job_keys"
  field      = "expires_at"

  ttl_config {}

  index_config {}
}

# Upload grants (services/ingest/grants.py): what a signed URL or resumable session allows and the
# quota it reserved; needed until finalize, kept as long as the job's records.
resource "google_firestore_field" "upload_grant_expiry" {
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = "upload_grants"
  field      = "expires_at"

  ttl_config {}

  index_config {}
}

# Finished-segment records of a fan-out (jobs/{job}/segments/{stage}-NNNN, services/pipeline/
# jobstore.py): the fan-in deletes them; TTL (VIDEO_SEGMENT_RECORD_TTL_DAYS) is the backstop for
# those whose fan-in never came. Their count query filters on `stage` (automatic single-field
# index); the expiry is never queried.
resource "google_firestore_field" "segment_expiry" {
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = "segments"
  field      = "expires_at"

  ttl_config {}

  index_config {}
}

# The operators' console (services/console/queries.py): jobs newest first under any mix of equality
# filters. Firestore merges these per-field indexes (with jobs_owner_created_at above) for a mix,
# so one index per filter field, not one per combination (tests/unit/test_console_indexes.py).
resource "google_firestore_index" "console_jobs" {
  for_each = toset(["status", "kind", "error.error_class"])

  project     = var.project_id
  database    = google_firestore_database.default.name
  collection  = var.jobs_collection
  query_scope = "COLLECTION"

  fields {
    field_path = each.key
    order      = "ASCENDING"
  }

  fields {
    field_path = "created_at"
    order      = "DESCENDING"
  }
}

# The operators' audit log (services/ops/audit.py): kept 400 days, then removed by TTL.
resource "google_firestore_field" "audit_log_expiry" {
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = "audit_log"
  field      = "expires_at"

  ttl_config {}

  index_config {}
}

# Each client's near-duplicate index (services/pipeline/neardup.py): near_duplicates/{owner}/hashes/{job}.
# Its one query is `bands` array-contains-any: only that field's CONTAINS index is kept. `phash` and
# `created_at` are read from the candidates, never queried: not indexed (fewer index writes per upload,
# and no always-increasing timestamp index).
resource "google_firestore_field" "near_duplicate_bands" {
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = "hashes"
  field      = "bands"

  index_config {
    indexes {
      array_config = "CONTAINS"
      query_scope  = "COLLECTION"
    }
  }
}

resource "google_firestore_field" "near_duplicate_unindexed" {
  for_each   = toset(["phash", "created_at"])
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = "hashes"
  field      = each.key

  index_config {}
}
