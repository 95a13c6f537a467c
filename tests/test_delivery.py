"""Delivery contracts the emulator cannot show by itself (it sends no deliveryAttempt), and
idempotence of stages, checked over real HTTP against real services and the local cloud."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time

import pytest

from localcloud import chaos
from localcloud.taps import TopicTap
from services.common.status import JobStore


def _wait_status(http, stack, job_id, statuses, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = http.get(f"{stack.url('ingest')}/v1/jobs/{job_id}", timeout=10).json()
        if doc["status"] in statuses:
            return doc
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} stayed {doc['status']}")


@pytest.fixture(scope="module")
def failing_analyze(stack):
    with chaos.extra_instance(stack, "analyze", {"FAULT_INJECTION": "stage.analyze=1"}) as url:
        yield url + "/push"


def test_last_delivery_attempt_of_a_transient_failure_parks_the_job_and_a_replay_resumes_it(
        http, stack, failing_analyze, events):
    payload = chaos.seed_job(stack)
    job_id = payload["job_id"]
    early = http.post(failing_analyze, json=chaos.envelope(payload, "media-ingested.v1", delivery_attempt=2), timeout=30)
    assert early.status_code == 503 and early.json()["retry"] is True
    job = JobStore(stack.project).get(job_id)
    assert job["status"] == "analyzing" and "injected fault" in job["stages"]["analyze"]["error"]

    last = http.post(failing_analyze, json=chaos.envelope(payload, "media-ingested.v1", delivery_attempt=5), timeout=30)
    assert last.status_code == 503  # still non-2xx: Pub/Sub moves it to the dead-letter topic
    job = JobStore(stack.project).get(job_id)
    assert job["status"] == "dead-lettered"
    assert job["dead_letter"]["stage"] == "analyze" and "5 delivery attempts" in job["dead_letter"]["reason"]
    assert job["stages"]["analyze"]["attempts"] == 2

    # What `dlq replay` does after the fix: the same message, delivered to a healthy analyze.
    replayed = http.post(f"{stack.url('analyze')}/push", json=chaos.envelope(payload, "media-ingested.v1"), timeout=30)
    assert replayed.status_code == 204
    done = _wait_status(http, stack, job_id, ("completed", "failed"))
    assert done["status"] == "completed" and "dead_letter" not in JobStore(stack.project).get(job_id)
    assert [e["status"] for e in events.wait_for_jobs([job_id])[job_id]] == ["completed"]


def test_redelivery_of_a_finished_stage_does_no_work_and_publishes_nothing(http, stack, events):
    payload = chaos.seed_job(stack)
    job_id = payload["job_id"]
    analyzed = TopicTap(stack.project, "media-analyzed")
    try:
        first = http.post(f"{stack.url('analyze')}/push", json=chaos.envelope(payload, "media-ingested.v1"), timeout=30)
        assert first.status_code == 204
        _wait_status(http, stack, job_id, ("completed",))
        before = JobStore(stack.project).get(job_id)
        for _ in range(2):  # a duplicate, and a late copy after the job completed
            again = http.post(f"{stack.url('analyze')}/push", json=chaos.envelope(payload, "media-ingested.v1"), timeout=30)
            assert again.status_code == 204
        after = JobStore(stack.project).get(job_id)
        assert after["stages"]["analyze"]["attempts"] == before["stages"]["analyze"]["attempts"] == 1
        assert after["status"] == "completed" and after["updated_at"] == before["updated_at"]
        time.sleep(0.5)
        analyzed.drain()
        assert len(analyzed.for_job(job_id)) == 1
        events.drain()
        assert len(events.for_job(job_id)) == 1
    finally:
        analyzed.close()


def test_unknown_job_is_dead_lettered_not_retried(http, stack):
    dlq = TopicTap(stack.project, "render-media-analyzed-dlq")
    try:
        payload = {"job_id": "ghostjob00001", "kind": "image",
                   "source": {"uri": "gs://b/o", "bucket": "bkt", "name": "o", "generation": "1",
                              "content_type": "image/jpeg", "size": 1},
                   "analysis": {"format": "jpeg", "width": 1, "height": 1}}
        resp = http.post(f"{stack.url('render')}/push", json=chaos.envelope(payload, _topic_schema("media-analyzed")),
                         timeout=30)
        assert resp.status_code == 204
        [(attrs, _)] = dlq.wait_and_get("ghostjob00001")
        assert attrs["error_class"] == "bad-message" and "no such job" in attrs["error_reason"]
    finally:
        dlq.close()


def _topic_schema(topic: str) -> str:
    from services.common.topology import load_topology

    return load_topology().schema_of_topic(topic)


def test_sweep_redrives_a_job_stuck_in_a_stage_and_dry_run_touches_nothing(http, stack, events):
    # A job whose media-ingested was lost: created, never published, no progress for an hour.
    payload = chaos.seed_job(stack)
    job_id = payload["job_id"]
    store = JobStore(stack.project)
    hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    store.client.collection("jobs").document(job_id).update({"updated_at": hour_ago})

    env = {**os.environ, **stack.client_env()}
    dry = subprocess.run([sys.executable, "-m", "services.cli", "sweep", "--older-than", "30m", "--dry-run", "--json"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert dry.returncode == 0, dry.stderr
    [row] = [r for r in json.loads(dry.stdout) if r["job_id"] == job_id]
    assert row["action"] == "would re-drive" and row["stage"] == "analyze"
    assert store.get(job_id)["status"] == "received"

    resp = http.post(f"{stack.url('notify')}/ops/sweep", params={"older_than_seconds": 1800}, timeout=60)
    assert resp.status_code == 200
    assert job_id in [r["job_id"] for r in resp.json()["jobs"] if r["action"] == "re-driven"]
    assert _wait_status(http, stack, job_id, ("completed", "failed"))["status"] == "completed"
    assert len(events.wait_for_jobs([job_id])[job_id]) == 1


def test_previous_message_version_is_still_accepted_during_a_rolling_deploy(http, stack, events):
    """A media-analyzed.v1 (before analyze grew v2) still renders: versions of the expected
    type are validated against their own schema, not refused as wrong-schema."""
    payload = chaos.seed_job(stack)
    v1 = {**payload, "analysis": {"format": "jpeg", "width": 320, "height": 240, "orientation": 1,
                                  "mean_color": [120, 120, 120]}}
    v1.pop("submitted_at")
    resp = http.post(f"{stack.url('render')}/push", json=chaos.envelope(v1, "media-analyzed.v1"), timeout=60)
    assert resp.status_code == 204
    done = _wait_status(http, stack, payload["job_id"], ("completed", "failed"))
    assert done["status"] == "completed" and done["renditions"]
    assert [e["status"] for e in events.wait_for_jobs([payload["job_id"]])[payload["job_id"]]] == ["completed"]
    wrong = http.post(f"{stack.url('render')}/push", json=chaos.envelope(v1, "media-ingested.v1"), timeout=30)
    assert wrong.status_code == 204  # acknowledged and dead-lettered, never retried
    assert JobStore(stack.project).get(payload["job_id"])["status"] == "completed"


def test_purge_ends_a_parked_job_failed_with_one_event(http, stack, events, failing_analyze):
    """What Pub/Sub does after max attempts (copy to the DLQ with CloudPubSubDeadLetter*
    attributes), then an operator gives up: the message goes, the job ends failed."""
    from google.cloud import pubsub_v1

    payload = chaos.seed_job(stack)
    job_id = payload["job_id"]
    http.post(failing_analyze, json=chaos.envelope(payload, "media-ingested.v1", delivery_attempt=5), timeout=30)
    assert JobStore(stack.project).get(job_id)["status"] == "dead-lettered"
    publisher = pubsub_v1.PublisherClient()
    publisher.publish(publisher.topic_path(stack.project, "analyze-media-ingested-dlq"), json.dumps(payload).encode(),
                      job_id=job_id, schema="media-ingested.v1", CloudPubSubDeadLetterSourceDeliveryCount="5",
                      CloudPubSubDeadLetterSourceSubscription="analyze-media-ingested").result(timeout=30)

    env = {**os.environ, **stack.client_env()}
    cli = [sys.executable, "-m", "services.cli", "dlq"]
    unconfirmed = subprocess.run([*cli, "purge", "--job", job_id], capture_output=True, text=True, timeout=60, env=env)
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
    listed = json.loads(subprocess.run([*cli, "list", "--job", job_id, "--json"], capture_output=True, text=True,
                                       timeout=60, env=env).stdout)
    assert [m["error_class"] for m in listed] == ["delivery-attempts-exhausted"]

    purged = subprocess.run([*cli, "purge", "--job", job_id, "--yes"], capture_output=True, text=True, timeout=60, env=env)
    assert purged.returncode == 0 and "purged, job failed" in purged.stdout, purged.stdout + purged.stderr
    job = JobStore(stack.project).get(job_id)
    assert job["status"] == "failed" and "purged by an operator" in job["error"]["reason"]
    [event] = events.wait_for_jobs([job_id])[job_id]
    assert event["status"] == "failed" and event["error"]["stage"] == "analyze"
    assert json.loads(subprocess.run([*cli, "list", "--job", job_id, "--json"], capture_output=True, text=True,
                                     timeout=60, env=env).stdout) == []
