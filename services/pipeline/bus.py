"""Publishing to Pub/Sub: validated against the topic's schema, futures awaited.

A push is answered only after its publishes are confirmed, so an acknowledged message has
always handed its work on.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from ..common.errors import TransientError
from ..common.logs import current_trace, new_traceparent
from . import schemas, usage
from .retrying import RETRYABLE, maybe_fail
from .topology import Topology


def encode(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


class Bus:
    def __init__(self, project: str, topology: Topology, schemas_dir: Path, timeout: float = 30.0):
        self.project = project
        self.topology = topology
        self.schemas_dir = schemas_dir
        self.timeout = timeout
        self._publisher: pubsub_v1.PublisherClient | None = None

    @property
    def publisher(self) -> pubsub_v1.PublisherClient:
        if self._publisher is None:
            self._publisher = pubsub_v1.PublisherClient()
        return self._publisher

    def topic_path(self, topic: str) -> str:
        return f"projects/{self.project}/topics/{topic}"

    def publish(self, topic: str, payload: Mapping[str, Any], *, job_id: str, attributes: dict[str, str] | None = None) -> str:
        """Validate `payload` against the topic's schema and publish it; return the message id."""
        schema = self.topology.schema_of_topic(topic)
        schemas.validate(self.schemas_dir, schema, payload)
        attrs = {"job_id": job_id, "schema": schema, "traceparent": new_traceparent(current_trace())}
        attrs.update(attributes or {})
        data = encode(payload)
        usage.published(len(data) + sum(len(k) + len(v) for k, v in attrs.items()))
        return self.publish_raw(topic, data, attrs)

    def publish_raw(self, topic: str, data: bytes, attributes: dict[str, str]) -> str:
        """Publish bytes as they are (dead-letter copies, replays)."""
        try:
            maybe_fail("pubsub")
            future = self.publisher.publish(self.topic_path(topic), data, **attributes)
            return str(future.result(timeout=self.timeout))  # the message id
        except (*RETRYABLE, gexc.NotFound, TimeoutError) as exc:
            # The client library already retried with its own backoff; Pub/Sub redelivers.
            raise TransientError(f"publish to {topic} failed: {type(exc).__name__}: {exc}") from exc
