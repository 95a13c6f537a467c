# Two alert policies, one condition per subscription (derived from the topology):
# dead letters waiting for an operator, and push subscriptions that stopped draining.

resource "google_monitoring_alert_policy" "dead_letter_backlog" {
  project      = var.project_id
  display_name = "mediarelay: dead-lettered messages waiting"
  combiner     = "OR"
  severity     = "ERROR"

  dynamic "conditions" {
    for_each = local.push_subscriptions
    content {
      display_name = "${conditions.value.dead_letter_subscription} has undelivered messages"
      condition_threshold {
        filter          = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.label.subscription_id = \"${google_pubsub_subscription.dead_letter_ops[conditions.key].name}\""
        comparison      = "COMPARISON_GT"
        threshold_value = 0
        duration        = "300s"
        aggregations {
          alignment_period   = "300s"
          per_series_aligner = "ALIGN_MAX"
        }
        trigger {
          count = 1
        }
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Messages failed permanently or exhausted their delivery attempts and were dead-lettered. Inspect them with `mediarelay dlq list --stage <stage>` (or `dlq show`), fix the cause, then `mediarelay dlq replay` or `purge` (terraform/README.md, Operations)."
  }

  alert_strategy {
    auto_close = "86400s"
  }

  notification_channels = var.alert_notification_channels
}

resource "google_monitoring_alert_policy" "oldest_unacked_age" {
  project      = var.project_id
  display_name = "mediarelay: push subscription not draining"
  combiner     = "OR"
  severity     = "WARNING"

  dynamic "conditions" {
    for_each = local.push_subscriptions
    content {
      display_name = "${conditions.key} oldest unacked message too old"
      condition_threshold {
        filter     = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.label.subscription_id = \"${google_pubsub_subscription.push[conditions.key].name}\""
        comparison = "COMPARISON_GT"
        # A message older than its whole retry budget should have been acknowledged or
        # dead-lettered by now: the subscriber is down or failing on everything.
        threshold_value = ceil(var.unacked_age_alert_factor * conditions.value.max_delivery_attempts * (conditions.value.ack_deadline_seconds + conditions.value.retry_policy.maximum_backoff_seconds))
        duration        = "300s"
        aggregations {
          alignment_period   = "60s"
          per_series_aligner = "ALIGN_MAX"
        }
        trigger {
          count = 1
        }
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A push subscription's oldest unacknowledged message is older than its full retry budget. Check the target service's logs and error rate in Cloud Run; its revisions may be failing or unable to reach GCS/Firestore."
  }

  alert_strategy {
    auto_close = "86400s"
  }

  notification_channels = var.alert_notification_channels
}
