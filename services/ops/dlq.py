"""Dead-lettered messages: list, show, replay to their source topic, purge.

Each push subscription's dead-letter topic has a pull subscription for operators (from the
topology file). A message arrives there two ways: a stage dead-letters a permanent failure
itself (attributes `error_class`, `error_reason`, `stage`, `job_id`), or Pub/Sub moves it
after max delivery attempts (attributes `CloudPubSubDeadLetterSource*`). Messages are read
by pulling and, unless acted on, released again at once (ack deadline 0).
"""
from __future__ import annotations

import datetime as dt
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from google.cloud import pubsub_v1

from ..pipeline.handon import SEGMENTS_PATH, publish_final_event
from ..pipeline.jobstate import FINAL, STAGES, failure_fields
from ..pipeline.jobstore import utcnow
from ..pipeline.runtime import Runtime

DEAD_LETTER_ATTRIBUTES = (
    "CloudPubSubDeadLetterSourceDeliveryCount",
    "CloudPubSubDeadLetterSourceSubscription",
    "CloudPubSubDeadLetterSourceSubscriptionProject",
    "CloudPubSubDeadLetterSourceTopicPublishTime",
    "error_class",
    "error_reason",
    "source_message_id",
)
EXHAUSTED = "delivery-attempts-exhausted"  # error class of what Pub/Sub itself dead-lettered


@dataclass
class DeadLetter:
    subscription: str  # the operators' pull subscription (short name)
    stage: str
    source_topic: str
    message_id: str
    ack_id: str
    publish_time: dt.datetime
    attributes: dict
    data: bytes
    # A stage's input: replaying it only makes sense while its job is active, and purging it
    # ends an active job. (Webhook deliveries and events concern jobs that already ended.)
    stage_input: bool = True

    @property
    def job_id(self) -> str:
        return self.attributes.get("job_id", "")

    @property
    def error_class(self) -> str:
        return self.attributes.get("error_class", EXHAUSTED)

    @property
    def reason(self) -> str:
        if "error_reason" in self.attributes:
            return self.attributes["error_reason"]
        count = self.attributes.get("CloudPubSubDeadLetterSourceDeliveryCount", "?")
        return f"not acknowledged after {count} delivery attempts"

    @property
    def replay_count(self) -> int:
        """Any attribute value is survivable: str.isdigit() accepts '²', which int() refuses."""
        try:
            return max(0, int(self.attributes.get("replay_count", "0")))
        except ValueError:
            return 0

    def summary(self) -> dict:
        return {"message_id": self.message_id, "stage": self.stage, "job_id": self.job_id,
                "error_class": self.error_class, "reason": self.reason, "replay_count": self.replay_count,
                "dead_lettered_at": self.publish_time.isoformat(), "source_topic": self.source_topic,
                "subscription": self.subscription}


@dataclass
class Filters:
    stage: str | None = None
    job_id: str | None = None
    older_than: dt.timedelta | None = None
    error_class: str | None = None
    message_id: str | None = None
    subscription: str | None = None  # the operators' dead-letter subscription (the console's "replay all" of one)

    def match(self, m: DeadLetter, now: dt.datetime) -> bool:
        return ((self.stage is None or m.stage == self.stage)
                and (self.job_id is None or m.job_id == self.job_id)
                and (self.error_class is None or m.error_class == self.error_class)
                and (self.message_id is None or m.message_id == self.message_id)
                and (self.subscription is None or m.subscription == self.subscription)
                and (self.older_than is None or now - m.publish_time >= self.older_than))


@dataclass
class Report:
    matched: list[dict] = field(default_factory=list)
    done: list[dict] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)


class DeadLetters:
    def __init__(self, runtime: Runtime, subscriber: pubsub_v1.SubscriberClient | None = None):
        self.rt = runtime
        self.subscriber = subscriber or pubsub_v1.SubscriberClient()

    def _sub_path(self, name: str) -> str:
        return self.subscriber.subscription_path(self.rt.settings.project, name)

    def _pull_all(self, stage: str | None) -> list[DeadLetter]:
        """Every message now in the operators' subscriptions, held (not acked) until released."""
        found = []
        for sub in self.rt.topology.push_subscriptions.values():
            if stage and sub.service != stage:
                continue
            path = self._sub_path(sub.dead_letter_subscription)
            empty_pulls = 0
            while empty_pulls < 2:  # production pulls may come back empty while messages exist
                resp = self.subscriber.pull(request={"subscription": path, "max_messages": 100,
                                                     "return_immediately": True}, timeout=30)
                if not resp.received_messages:
                    empty_pulls += 1
                    continue
                for r in resp.received_messages:
                    found.append(DeadLetter(
                        subscription=sub.dead_letter_subscription, stage=sub.service, source_topic=sub.topic,
                        message_id=r.message.message_id, ack_id=r.ack_id,
                        publish_time=r.message.publish_time, attributes=dict(r.message.attributes),
                        data=bytes(r.message.data), stage_input=self._feeds_a_stage(sub)))
        return found

    def _release(self, messages: list[DeadLetter]) -> None:
        by_sub: dict[str, list[str]] = {}
        for m in messages:
            by_sub.setdefault(m.subscription, []).append(m.ack_id)
        for sub, ack_ids in by_sub.items():
            for i in range(0, len(ack_ids), 500):
                self.subscriber.modify_ack_deadline(request={"subscription": self._sub_path(sub),
                                                             "ack_ids": ack_ids[i:i + 500], "ack_deadline_seconds": 0})

    def _ack(self, m: DeadLetter) -> None:
        self.subscriber.acknowledge(request={"subscription": self._sub_path(m.subscription), "ack_ids": [m.ack_id]})
        self._acked.add(m.ack_id)

    @contextmanager
    def _held(self, filters: Filters):
        """The matching messages, oldest first, held while the block runs; every message the
        block did not acknowledge (matching or not, even after an error) is released on exit."""
        messages = self._pull_all(filters.stage)
        self._acked: set[str] = set()
        now = utcnow()
        try:
            yield sorted((m for m in messages if filters.match(m, now)), key=lambda m: m.publish_time)
        finally:
            self._release([m for m in messages if m.ack_id not in self._acked])

    def _feeds_a_stage(self, sub) -> bool:
        """A stage's input or one of its segments: both only matter while the job is active."""
        return sub.service in STAGES and (self.rt.topology.input_topic(sub.service) == sub.topic
                                          or sub.path == SEGMENTS_PATH)

    def list(self, filters: Filters) -> list[DeadLetter]:
        with self._held(filters) as matching:
            return matching

    def replay(self, filters: Filters, *, dry_run: bool = False, limit: int | None = None,
               rate: float | None = None, max_replays: int = 3) -> Report:
        """Republish matching messages to their source topic with replay_count + 1; each
        dead-letter copy is acknowledged only after its publish succeeded."""
        report = Report()
        with self._held(filters) as matching:
            for m in matching:
                if limit is not None and len(report.done) >= limit:
                    break
                report.matched.append(m.summary())
                job = self.rt.jobs.get(m.job_id) if m.job_id else None
                refusal = None
                if m.replay_count >= max_replays:
                    refusal = f"replayed {m.replay_count} times already (limit {max_replays}); purge it or raise --max-replays"
                elif m.stage_input and job is not None and job["status"] in FINAL:
                    refusal = f"job already {job['status']}: a replay would change nothing"
                if refusal or dry_run:
                    (report.refused if refusal else report.done).append({**m.summary(), "note": refusal or "would replay"})
                    continue
                attributes = {k: v for k, v in m.attributes.items() if k not in DEAD_LETTER_ATTRIBUTES and k != "stage"}
                attributes["replay_count"] = str(m.replay_count + 1)
                self.rt.bus.publish_raw(m.source_topic, m.data, attributes)  # raises on failure: copy kept
                self._ack(m)
                report.done.append({**m.summary(), "note": f"replayed to {m.source_topic}"})
                if rate:
                    time.sleep(1.0 / rate)
        return report

    def purge(self, filters: Filters) -> Report:
        """Acknowledge (delete) matching messages. A job still waiting on one of them (parked
        as dead-lettered, or stuck in a stage) is ended as failed, with its one `failed` event:
        nothing is left waiting forever."""
        report = Report()
        with self._held(filters) as matching:
            for m in matching:
                report.matched.append(m.summary())
                job = self.rt.jobs.get(m.job_id) if m.job_id else None
                ended = m.stage_input and job is not None and job["status"] not in FINAL
                if ended:
                    fields = failure_fields(m.stage, m.error_class, f"dead-lettered and purged by an operator: {m.reason}")
                    publish_final_event(self.rt, m.job_id, "failed", fields)
                self._ack(m)
                report.done.append({**m.summary(), "note": "purged, job failed" if ended else "purged"})
        return report
