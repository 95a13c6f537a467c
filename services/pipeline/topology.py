"""Reads schemas/topology.json, the single declaration of topics and subscriptions."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..common.config import TOPOLOGY_FILE


@dataclass(frozen=True)
class PushSubscription:
    name: str
    topic: str
    service: str
    path: str
    ack_deadline_seconds: int
    minimum_backoff_seconds: int
    maximum_backoff_seconds: int
    max_delivery_attempts: int
    dead_letter_topic: str
    dead_letter_subscription: str


@dataclass(frozen=True)
class Topology:
    topics: dict[str, dict[str, Any]]  # name -> {"schema": ..., ...}
    push_subscriptions: dict[str, PushSubscription]
    buckets: dict[str, Any]
    services: dict[str, dict[str, Any]]  # name -> {"publishes": [...], ...}

    def subscription_for_service(self, service: str, path: str = "/push") -> PushSubscription:
        """The subscription pushing to `service` at `path` (a stage's input is at /push; a
        service with one subscription is found whatever its path)."""
        mine = [s for s in self.push_subscriptions.values() if s.service == service]
        for sub in mine:
            if sub.path == path or len(mine) == 1:
                return sub
        raise KeyError(f"no push subscription targets {service!r} at {path!r}")

    def input_topic(self, service: str) -> str:
        """The topic whose messages start `service` (what the sweep republishes to re-drive it)."""
        return self.subscription_for_service(service).topic

    def schema_of_topic(self, topic: str) -> str:
        return str(self.topics[topic]["schema"])

    def subscription_by_dead_letter_topic(self, dlq_topic: str) -> PushSubscription:
        for sub in self.push_subscriptions.values():
            if sub.dead_letter_topic == dlq_topic:
                return sub
        raise KeyError(dlq_topic)


def parse_topology(raw: dict[str, Any]) -> Topology:
    subs: dict[str, PushSubscription] = {}
    for name, s in raw["push_subscriptions"].items():
        subs[name] = PushSubscription(
            name=name,
            topic=s["topic"],
            service=s["service"],
            path=s["path"],
            ack_deadline_seconds=s["ack_deadline_seconds"],
            minimum_backoff_seconds=s["retry_policy"]["minimum_backoff_seconds"],
            maximum_backoff_seconds=s["retry_policy"]["maximum_backoff_seconds"],
            max_delivery_attempts=s["max_delivery_attempts"],
            dead_letter_topic=s["dead_letter_topic"],
            dead_letter_subscription=s["dead_letter_subscription"],
        )
    return Topology(topics=raw["topics"], push_subscriptions=subs, buckets=raw["buckets"], services=raw["services"])


@lru_cache(maxsize=4)
def load_topology(path: Path = TOPOLOGY_FILE) -> Topology:
    return parse_topology(json.loads(Path(path).read_text()))
