# Topics, push subscriptions and dead-letter plumbing, all derived from schemas/topology.json.

resource "google_pubsub_topic" "topic" {
  for_each = local.topics
  #checkov:skip=CKV_GCP_83:Google-managed encryption at rest. Messages carry object references and job metadata, never media bytes; CMEK would add a KMS key ring and service-agent grants for no gain here.

  project                    = var.project_id
  name                       = each.key
  message_retention_duration = "${each.value.message_retention_seconds}s"

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_subscription" "push" {
  for_each = local.push_subscriptions

  project              = var.project_id
  name                 = each.key
  topic                = google_pubsub_topic.topic[each.value.topic].id
  ack_deadline_seconds = each.value.ack_deadline_seconds

  push_config {
    push_endpoint = "${module.service[each.value.service].uri}${each.value.path}"

    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = var.push_audience
    }
  }

  retry_policy {
    minimum_backoff = "${each.value.retry_policy.minimum_backoff_seconds}s"
    maximum_backoff = "${each.value.retry_policy.maximum_backoff_seconds}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[each.key].id
    max_delivery_attempts = each.value.max_delivery_attempts
  }

  # Never expire for inactivity (the default deletes a subscription idle for 31 days).
  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_service_account_iam_member.pubsub_mints_push_tokens,
    google_cloud_run_v2_service_iam_member.push_invoker,
  ]
}

# One dead-letter topic per push subscription, each with a pull subscription for operators:
# a dead-letter topic without a subscription would drop what it receives.
resource "google_pubsub_topic" "dead_letter" {
  for_each = local.push_subscriptions
  #checkov:skip=CKV_GCP_83:Google-managed encryption at rest, as for the main topics.

  project                    = var.project_id
  name                       = each.value.dead_letter_topic
  message_retention_duration = "${var.dead_letter_retention_seconds}s"

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_subscription" "dead_letter_ops" {
  for_each = local.push_subscriptions

  project                    = var.project_id
  name                       = each.value.dead_letter_subscription
  topic                      = google_pubsub_topic.dead_letter[each.key].id
  ack_deadline_seconds       = 60
  message_retention_duration = "${min(var.dead_letter_retention_seconds, 604800)}s"

  expiration_policy {
    ttl = ""
  }
}

# Dead-lettering is done by the Pub/Sub service agent: it publishes to the dead-letter topic
# and acknowledges on the source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_agent_publisher" {
  for_each = local.push_subscriptions

  project = var.project_id
  topic   = google_pubsub_topic.dead_letter[each.key].name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_agent_subscriber" {
  for_each = local.push_subscriptions

  project      = var.project_id
  subscription = google_pubsub_subscription.push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# Services publish what the topology says they publish (plus the sweep's republishing) ...
resource "google_pubsub_topic_iam_member" "service_publisher" {
  for_each = local.publisher_grants

  project = var.project_id
  topic   = google_pubsub_topic.topic[each.value.topic].name
  role    = "roles/pubsub.publisher"
  member  = local.service_member[each.value.service]
}

# ... and each stage dead-letters permanent failures itself, to its own subscription's topic.
resource "google_pubsub_topic_iam_member" "service_dead_letter_publisher" {
  for_each = local.push_subscriptions

  project = var.project_id
  topic   = google_pubsub_topic.dead_letter[each.key].name
  role    = "roles/pubsub.publisher"
  member  = local.service_member[each.value.service]
}

# Outside subscribers may attach their own subscriptions to the public topics.
resource "google_pubsub_topic_iam_member" "public_subscriber" {
  for_each = {
    for pair in setproduct(local.public_topics, var.event_subscribers) : "${pair[0]}/${pair[1]}" => { topic = pair[0], member = pair[1] }
  }

  project = var.project_id
  topic   = google_pubsub_topic.topic[each.value.topic].name
  role    = "roles/pubsub.subscriber"
  member  = each.value.member
}

# Operators: read dead letters, and replay them to their source topics.
resource "google_pubsub_subscription_iam_member" "operator_dead_letter" {
  for_each = {
    for pair in setproduct(keys(local.push_subscriptions), var.operators) : "${pair[0]}/${pair[1]}" => { subscription = pair[0], member = pair[1] }
  }

  project      = var.project_id
  subscription = google_pubsub_subscription.dead_letter_ops[each.value.subscription].name
  role         = "roles/pubsub.subscriber"
  member       = each.value.member
}

resource "google_pubsub_topic_iam_member" "operator_replay" {
  for_each = {
    for pair in setproduct(distinct([for s in values(local.push_subscriptions) : s.topic]), var.operators) : "${pair[0]}/${pair[1]}" => { topic = pair[0], member = pair[1] }
  }

  project = var.project_id
  topic   = google_pubsub_topic.topic[each.value.topic].name
  role    = "roles/pubsub.publisher"
  member  = each.value.member
}

# The console reads, replays and purges dead letters for its operators (services/console).
resource "google_pubsub_subscription_iam_member" "console_dead_letter" {
  for_each = local.push_subscriptions

  project      = var.project_id
  subscription = google_pubsub_subscription.dead_letter_ops[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.service_member["console"]
}
