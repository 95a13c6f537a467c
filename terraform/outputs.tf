output "service_urls" {
  description = "run.app URL of each service."
  value       = { for name, svc in module.service : name => svc.uri }
}

output "upload_url" {
  description = "Where upload clients send media (POST <upload_url>/v1/uploads)."
  value       = local.public_base_url
}

output "image_repository" {
  description = "Push images here: <image_repository>/<service>:<tag>."
  value       = local.image_base
}

output "buckets" {
  description = "Bucket name per topology bucket key."
  value       = { for key, bucket in google_storage_bucket.bucket : key => bucket.name }
}

output "push_service_account" {
  description = "Identity in every push request's OIDC token (PUSH_SERVICE_ACCOUNT)."
  value       = google_service_account.push.email
}

output "runtime_service_accounts" {
  description = "Runtime identity of each service."
  value       = { for name, sa in google_service_account.service : name => sa.email }
}

output "dead_letter_subscriptions" {
  description = "Pull subscriptions operators read dead letters from, per source subscription."
  value       = { for name, sub in google_pubsub_subscription.dead_letter_ops : name => sub.name }
}

output "webhook_secret" {
  description = "Secret Manager secret that holds the webhook signing key (add versions out of band)."
  value       = google_secret_manager_secret.webhook_signing.id
}

output "playback_keys_secret" {
  description = "Secret Manager secret that holds PLAYBACK_TOKEN_KEYS (add versions out of band)."
  value       = google_secret_manager_secret.playback_keys.id
}

output "derivative_keys_secret" {
  description = "Secret Manager secret that holds DERIVATIVE_SIGNING_KEYS (add versions out of band)."
  value       = google_secret_manager_secret.derivative_keys.id
}

output "latest_revisions" {
  description = "Revision serving each service (note them before a rollout; see README, Rolling back)."
  value       = { for name, svc in module.service : name => svc.latest_ready_revision }
}
