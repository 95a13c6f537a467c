# The one declaration of the message topology, shared with the local cloud (localcloud/).
# Every topic, subscription, push endpoint, retry policy, dead-letter policy and bucket key
# in this configuration is derived from it: nothing about the topology is written here twice.
# tests/test_terraform.py evaluates these expressions against the file and fails on drift.

locals {
  topology = jsondecode(file("${path.module}/../schemas/topology.json"))

  topics             = local.topology.topics
  push_subscriptions = local.topology.push_subscriptions
  services           = local.topology.services
  buckets            = local.topology.buckets

  # Topics fed by a bucket's object notifications (big uploads), not by a service.
  gcs_notifications = {
    for name, topic in local.topics : name => topic.gcs_notification if can(topic.gcs_notification)
  }

  # Topics a public subscriber may attach its own subscription to (media-events).
  public_topics = [for name, topic in local.topics : name if try(topic.public, false)]

  # Services whose HTTP endpoint is public (ingest: upload clients).
  public_services = [for name, svc in local.services : name if try(svc.public, false)]

  # Services for operators (the console): reached from the internet through IAP only.
  operator_services = [for name, svc in local.services : name if try(svc.operators, false)]

  # Services that receive Pub/Sub pushes: the push service account must be able to invoke them.
  push_target_services = distinct([for name, sub in local.push_subscriptions : sub.service])

  # The longest ack deadline among the subscriptions that push to each service. Pub/Sub
  # waits exactly that long for an answer, so the service's request timeout must not be shorter.
  ack_deadline_of_service = {
    for svc in keys(local.services) : svc => max(0, [
      for name, sub in local.push_subscriptions : sub.ack_deadline_seconds if sub.service == svc
    ]...)
  }

  # Stage inputs the periodic sweep republishes (every push source topic a service publishes
  # to, i.e. everything but the bucket-notification topics).
  sweep_topics = distinct([
    for name, sub in local.push_subscriptions : sub.topic if !contains(keys(local.gcs_notifications), sub.topic)
  ])

  # roles/pubsub.publisher grants for the runtime service accounts, keyed "service/topic":
  # what the topology says each service publishes, plus the sweep's republishing.
  publisher_grants = merge(
    {
      for pair in flatten([
        for svc, spec in local.services : [for topic in spec.publishes : { service = svc, topic = topic }]
      ]) : "${pair.service}/${pair.topic}" => pair
    },
    { for topic in local.sweep_topics : "${var.sweep_service}/${topic}" => { service = var.sweep_service, topic = topic } },
  )

  # Object-name prefixes that only stage big uploads until ingest has taken them over
  # (the notification prefixes of each bucket): deleted by a short lifecycle rule.
  staging_prefixes_of_bucket = {
    for key, bucket in local.buckets : key => [
      for topic, n in local.gcs_notifications : n.object_prefix if n.bucket == key
    ]
  }
}
