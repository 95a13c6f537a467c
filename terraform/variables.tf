variable "project_id" {
  description = "Google Cloud project that hosts everything."
  type        = string
}

variable "region" {
  description = "Region for Cloud Run, buckets, Artifact Registry and Cloud Scheduler."
  type        = string
  default     = "europe-west1"
}

variable "firestore_location" {
  description = "Firestore location: a multi-region (eur3, nam5) or a region. Cannot change after creation."
  type        = string
  default     = "eur3"
}

variable "name_prefix" {
  description = "Prefix of Cloud Run service, service account, bucket and job names."
  type        = string
  default     = "mediarelay-"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,14}$", var.name_prefix))
    error_message = "name_prefix: lowercase letters, digits and dashes, at most 15 characters (service account ids are limited to 30)."
  }
}

variable "image_tag" {
  description = "Tag of the four images in Artifact Registry (…/mediarelay/<service>:<tag>); the git commit is a good choice. Changing it rolls out new revisions; setting an older one rolls back."
  type        = string
}

variable "push_audience" {
  description = "OIDC audience of every push subscription and of the sweep job; the services verify tokens against it (PUSH_AUDIENCE). Static, so no service URL has to feed back into its own environment."
  type        = string
  default     = "mediarelay-push"

  validation {
    condition     = length(var.push_audience) > 0
    error_message = "push_audience must not be empty: an empty audience turns token verification off."
  }
}

variable "public_base_url" {
  description = "Where upload clients reach ingest (custom domain). Empty: ingest's deterministic run.app URL."
  type        = string
  default     = ""
}

variable "cors_allowed_origins" {
  description = "Browser origins (https://app.example.com) allowed to upload with signed/resumable URLs, fetch HLS segments and sprites from the buckets, and call ingest's playback and upload-URL routes (CORS_ALLOWED_ORIGINS). Empty: none, no web page can."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for o in var.cors_allowed_origins : can(regex("^https://[^/]+$", o))])
    error_message = "cors_allowed_origins are https origins without a path (https://app.example.com); a wildcard is not allowed in production."
  }
}

variable "cors_max_age_seconds" {
  description = "How long a browser keeps the buckets' CORS preflight answers."
  type        = number
  default     = 3600
}

variable "services" {
  description = <<-EOT
    Cloud Run sizing per service. concurrency is the most requests one instance takes at once
    (gunicorn runs `workers` processes with ceil(concurrency / workers) threads each);
    timeout_seconds is raised to the service's longest push ack deadline if it is shorter.
  EOT
  type = map(object({
    cpu             = string
    memory          = string
    concurrency     = number
    workers         = number
    timeout_seconds = number
    min_instances   = number
    max_instances   = number
  }))
  default = {
    # I/O bound: bodies of up to 32 MiB are read, hashed and written to GCS. One process and
    # 8 threads keep 8 bodies in flight (~8 x 3 copies x 32 MiB < 1 GiB). 300 s lets slow
    # clients finish an upload; pushes from the bucket notification answer well within 60 s.
    ingest = { cpu = "1", memory = "1Gi", concurrency = 8, workers = 1, timeout_seconds = 300, min_instances = 0, max_instances = 20 }
    # analyze and render also serve the video segments (/push/segments). Sized from the benches,
    # not from a video's size: a segment reads its source by byte ranges and writes none of it,
    # so its memory is the same for a 20 MB and a 2 GB source (tests/infra: ..._sized_from_the_benches).
    # - concurrency = workers = cpu: one media child per vCPU (bench/segments_bench.py encodes one
    #   span per core; its parallel run of two workers on two cores is the model's 2 slots).
    # - memory: per slot one child at MEDIA_MEMORY_LIMIT_BYTES (1.5 GiB: the cap an image's decode
    #   may use) + the stage's process (<= 400 MiB); a video segment's child stays far below the cap:
    #   `python -m bench ranged`: an analysis child 133 MiB on a 19 MiB source, 135 MiB on 191 MiB;
    #   `python -m bench bigupload` (1080p, docs/media.md): render's ladder child 437 MB on a 183 MB
    #   source, 446 MB on a 1.42 GB one; render's other processes ~360 MB. 2 x (1.5 GiB + 400 MiB) fits 4 GiB.
    # - max_instances: 50 for both fan-outs, the instance count of the segments bench's
    #   time-to-ready model of a 10-minute 1080p video (it gives analyze segments the same slots).
    # CPU bound (OpenCV: faces, scene cuts, hashes).
    analyze = { cpu = "2", memory = "4Gi", concurrency = 2, workers = 2, timeout_seconds = 120, min_instances = 0, max_instances = 50 }
    # CPU bound (AVIF/WebP encoders, crops, storyboards, the video ladder).
    render = { cpu = "2", memory = "4Gi", concurrency = 2, workers = 2, timeout_seconds = 180, min_instances = 0, max_instances = 50 }
    # I/O bound (Firestore transactions, webhook calls that wait on clients).
    notify = { cpu = "1", memory = "512Mi", concurrency = 16, workers = 1, timeout_seconds = 60, min_instances = 0, max_instances = 10 }
    # The operators' console: a few people's pages (Firestore queries, dead-letter pulls).
    console = { cpu = "1", memory = "512Mi", concurrency = 8, workers = 1, timeout_seconds = 60, min_instances = 0, max_instances = 2 }
  }

  validation {
    condition     = alltrue([for s in values(var.services) : contains(["1", "2", "4", "8"], s.cpu) && s.workers >= 1 && s.concurrency >= s.workers])
    error_message = "services: cpu must be 1, 2, 4 or 8; workers >= 1; concurrency >= workers."
  }
}

variable "app_env" {
  description = "Extra environment for every service: the limits of services/common/config.py (MAX_UPLOAD_BYTES, MAX_IMAGE_PIXELS, MAX_VIDEO_SECONDS, MAX_VIDEO_FRAMES, PUBLISH_TIMEOUT_SECONDS, ...)."
  type        = map(string)
  default     = {}
}

variable "log_level" {
  description = "LOG_LEVEL of the services."
  type        = string
  default     = "INFO"
}

variable "job_ttl_days" {
  description = "Days a job document lives (JOB_TTL_DAYS; Firestore TTL deletes it then). Originals are deleted by a lifecycle rule after the same time."
  type        = number
  default     = 30
}

variable "staging_ttl_days" {
  description = "Days before a big upload's staging object (the notification prefix, incoming/) is deleted; ingest takes it over within seconds."
  type        = number
  default     = 2
}

variable "renditions_retention_days" {
  description = "Days before renditions are deleted; 0 keeps them."
  type        = number
  default     = 0
}

variable "soft_delete_retention_days" {
  description = "Days a deleted or overwritten object can still be restored (GCS soft delete); 0 turns soft delete off."
  type        = number
  default     = 7

  validation {
    condition     = var.soft_delete_retention_days == 0 || (var.soft_delete_retention_days >= 7 && var.soft_delete_retention_days <= 90)
    error_message = "GCS soft delete keeps objects 7 to 90 days, or is off (0)."
  }
}

variable "dead_letter_retention_seconds" {
  description = "How long dead-lettered messages wait for an operator (topic and ops subscription). At most 7 days on the subscription."
  type        = number
  default     = 604800
}

variable "jobs_collection" {
  description = "Firestore collection of job documents (services/pipeline/jobstore.py)."
  type        = string
  default     = "jobs"
}

variable "sweep_service" {
  description = "The service that serves POST /ops/sweep (and republishes stage inputs)."
  type        = string
  default     = "notify"
}

variable "sweep_schedule" {
  description = "Cron schedule of the stuck-job sweep (UTC)."
  type        = string
  default     = "*/10 * * * *"
}

variable "webhook_services" {
  description = "The services that read the key sealing clients' webhook secrets: ingest creates and rotates endpoints, notify signs deliveries."
  type        = list(string)
  default     = ["ingest", "notify"]
}

variable "webhook_secret_version" {
  description = "Secret Manager version of the webhook secrets key the services read ('latest' or a number)."
  type        = string
  default     = "latest"
}

variable "playback_keys_version" {
  description = "Secret Manager version of PLAYBACK_TOKEN_KEYS ingest reads ('latest' or a number); a new version takes effect on the next revision."
  type        = string
  default     = "latest"
}

variable "derivative_keys_version" {
  description = "Secret Manager version of DERIVATIVE_SIGNING_KEYS ingest reads ('latest' or a number); a new version takes effect on the next revision."
  type        = string
  default     = "latest"
}

variable "event_subscribers" {
  description = "IAM members (e.g. serviceAccount:x@other-project.iam.gserviceaccount.com) allowed to attach subscriptions to the public topics (media-events)."
  type        = list(string)
  default     = []
}

variable "operators" {
  description = "IAM members who inspect, replay and purge dead-lettered messages: subscriber on the dead-letter ops subscriptions, publisher on the source topics."
  type        = list(string)
  default     = []
}

variable "alert_notification_channels" {
  description = "Cloud Monitoring notification channel ids for the alert policies."
  type        = list(string)
  default     = []
}

variable "unacked_age_alert_factor" {
  description = "Alert when a push subscription's oldest unacked message is older than this many times its full retry budget (max_delivery_attempts x (ack deadline + maximum backoff))."
  type        = number
  default     = 1
}

variable "image_retention_days" {
  description = "Images older than this are deleted from Artifact Registry, except the 20 most recent versions of each image."
  type        = number
  default     = 90
}

variable "deletion_protection" {
  description = "Protect the Cloud Run services from terraform destroy."
  type        = bool
  default     = true
}

variable "apis" {
  description = "APIs the system uses."
  type        = list(string)
  default = [
    "artifactregistry.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "iap.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ]
}

variable "client_token_audiences" {
  description = "Audiences of the Google-signed ID tokens ingest accepts from upload clients (e.g. ingest's URL for service accounts, the Firebase project id for Firebase Auth). Empty: API keys only."
  type        = list(string)
  default     = []
}

variable "client_token_issuers" {
  description = "Issuers of those ID tokens. Empty: Google's (accounts.google.com). Firebase Auth: [\"https://securetoken.google.com/<project>\"]."
  type        = list(string)
  default     = []
}

variable "client_token_certs_url" {
  description = "Where the ID tokens' signing keys are published. Empty: Google's. Firebase Auth: https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com."
  type        = string
  default     = ""
}

variable "renditions_base_url" {
  description = "A CDN in front of the renditions bucket: rendition URLs are built on it. Empty: short-lived signed URLs."
  type        = string
  default     = ""
}

variable "segment_work_ttl_days" {
  description = "Days segment results of long videos (work/ in the renditions bucket) are kept; a job fans in within hours."
  type        = number
  default     = 2
}
