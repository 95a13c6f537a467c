"""Taps on the local cloud: free ports, and pull subscriptions that collect what a topic carries."""
from __future__ import annotations

import json
import socket
import time
import uuid

from google.cloud import pubsub_v1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TopicTap:
    """A pull subscription of our own on a topic: collects every message published to it."""

    def __init__(self, project: str, topic: str):
        self.subscriber = pubsub_v1.SubscriberClient()
        self.name = self.subscriber.subscription_path(project, f"test-tap-{topic}-{uuid.uuid4().hex[:6]}")
        self.topic = self.subscriber.topic_path(project, topic)
        self.create()
        self.messages: list[tuple[dict, dict]] = []  # (attributes, data)

    def create(self) -> None:
        self.subscriber.create_subscription(request={"name": self.name, "topic": self.topic, "ack_deadline_seconds": 60})

    def drain(self) -> None:
        while True:
            resp = self.subscriber.pull(
                request={"subscription": self.name, "max_messages": 100, "return_immediately": True}, timeout=10
            )
            if not resp.received_messages:
                return
            for m in resp.received_messages:
                self.messages.append((dict(m.message.attributes), json.loads(m.message.data)))
            self.subscriber.acknowledge(
                request={"subscription": self.name, "ack_ids": [m.ack_id for m in resp.received_messages]}
            )

    def for_job(self, job_id: str, *, with_playable: bool = False) -> list[tuple[dict, dict]]:
        """The job's messages. On media-events a video's `playable` lifecycle event (issue 23) comes
        before its final event; it is left out unless asked for, so "one final event" stays countable."""
        return [(a, d) for a, d in self.messages
                if a.get("job_id") == job_id and (with_playable or d.get("status") != "playable")]

    def wait_for_jobs(self, job_ids, timeout: float = 120.0, *, with_playable: bool = False) -> dict[str, list[dict]]:
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            found = {j: [d for _, d in self.for_job(j, with_playable=with_playable)] for j in job_ids}
            if all(found.values()) or time.monotonic() > deadline:
                return found
            time.sleep(0.3)

    def wait_and_get(self, job_id: str, timeout: float = 30.0) -> list[tuple[dict, dict]]:
        deadline = time.monotonic() + timeout
        while not self.for_job(job_id) and time.monotonic() < deadline:
            self.drain()
            time.sleep(0.2)
        return self.for_job(job_id)

    def close(self) -> None:
        self.subscriber.delete_subscription(request={"subscription": self.name})
