"""The local cloud: topology created from the one file, processes stopped exactly and wholly."""
from __future__ import annotations

from google.cloud import pubsub_v1

from services.pipeline.topology import load_topology


def test_emulator_topology_matches_the_topology_file(stack):
    topology = load_topology()
    subscriber = pubsub_v1.SubscriberClient()
    publisher = pubsub_v1.PublisherClient()
    project = f"projects/{stack.project}"
    topics = {t.name.rsplit("/", 1)[1] for t in publisher.list_topics(request={"project": project})}
    expected_topics = set(topology.topics) | {s.dead_letter_topic for s in topology.push_subscriptions.values()}
    assert expected_topics <= topics

    subs = {s.name.rsplit("/", 1)[1]: s for s in subscriber.list_subscriptions(request={"project": project})}
    for name, spec in topology.push_subscriptions.items():
        sub = subs[name]
        assert sub.topic.endswith(f"/topics/{spec.topic}")
        assert sub.push_config.push_endpoint == stack.url(spec.service) + spec.path
        assert sub.ack_deadline_seconds == spec.ack_deadline_seconds
        assert sub.dead_letter_policy.dead_letter_topic.endswith(f"/topics/{spec.dead_letter_topic}")
        assert sub.dead_letter_policy.max_delivery_attempts == spec.max_delivery_attempts
        # The test stack shortens the backoff (conftest); push_subscription's test below
        # pins that every other stack gets the topology's.
        assert stack.retry_backoff is not None
        assert sub.retry_policy.minimum_backoff.total_seconds() == stack.retry_backoff[0]
        assert sub.retry_policy.maximum_backoff.total_seconds() == stack.retry_backoff[1]
        dlq_sub = subs[spec.dead_letter_subscription]
        assert dlq_sub.topic.endswith(f"/topics/{spec.dead_letter_topic}") and not dlq_sub.push_config.push_endpoint


