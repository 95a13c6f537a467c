"""Creates buckets and the Pub/Sub topology in the emulators, from schemas/topology.json.

Idempotent: existing topics are kept, existing push subscriptions get their endpoint and
policies updated (local ports may change between runs).
"""
from __future__ import annotations

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1, storage
from google.protobuf import duration_pb2, field_mask_pb2
from google.pubsub_v1.types import DeadLetterPolicy, ExpirationPolicy, PushConfig, RetryPolicy, Subscription

from services.pipeline.topology import PushSubscription, Topology


def _seconds(n: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=n)


def create_buckets(project: str, topology: Topology) -> None:
    client = storage.Client(project=project)
    for spec in topology.buckets.values():
        try:
            client.create_bucket(spec["default"])
        except gexc.Conflict:
            pass


def push_subscription(project: str, sub: PushSubscription, endpoint: str,
                      retry_backoff: tuple[int, int] | None = None) -> Subscription:
    """The emulator's subscription for `sub`: the topology's policies, except the retry
    backoff when a test stack asks for a shorter one (the emulator honours it)."""
    minimum, maximum = retry_backoff or (sub.minimum_backoff_seconds, sub.maximum_backoff_seconds)
    return Subscription(
        name=pubsub_v1.SubscriberClient.subscription_path(project, sub.name),
        topic=pubsub_v1.PublisherClient.topic_path(project, sub.topic),
        push_config=PushConfig(push_endpoint=endpoint),
        ack_deadline_seconds=sub.ack_deadline_seconds,
        retry_policy=RetryPolicy(minimum_backoff=_seconds(minimum), maximum_backoff=_seconds(maximum)),
        dead_letter_policy=DeadLetterPolicy(
            dead_letter_topic=pubsub_v1.PublisherClient.topic_path(project, sub.dead_letter_topic),
            max_delivery_attempts=sub.max_delivery_attempts,
        ),
        expiration_policy=ExpirationPolicy(ttl=None),
    )


def create_topology(project: str, topology: Topology, service_urls: dict,
                    retry_backoff: tuple[int, int] | None = None) -> None:
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic_path = lambda t: publisher.topic_path(project, t)  # noqa: E731
    sub_path = lambda s: subscriber.subscription_path(project, s)  # noqa: E731

    topics = list(topology.topics) + [s.dead_letter_topic for s in topology.push_subscriptions.values()]
    for name in topics:
        try:
            publisher.create_topic(name=topic_path(name))
        except gexc.AlreadyExists:
            pass

    for sub in topology.push_subscriptions.values():
        desired = push_subscription(project, sub, service_urls[sub.service] + sub.path, retry_backoff)
        try:
            subscriber.create_subscription(request=desired)
        except gexc.AlreadyExists:
            mask = field_mask_pb2.FieldMask(
                paths=["push_config", "ack_deadline_seconds", "retry_policy", "dead_letter_policy"]
            )
            subscriber.update_subscription(request={"subscription": desired, "update_mask": mask})
        # Operators read dead letters through a pull subscription; without one they are lost.
        try:
            subscriber.create_subscription(
                request=Subscription(
                    name=sub_path(sub.dead_letter_subscription),
                    topic=topic_path(sub.dead_letter_topic),
                    ack_deadline_seconds=60,
                    expiration_policy=ExpirationPolicy(ttl=None),
                )
            )
        except gexc.AlreadyExists:
            pass
