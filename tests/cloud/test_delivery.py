"""Delivery end to end, for what only the real servers show: the sweep's Firestore query and
its CLI and endpoint, versioned messages and dead letters on the emulator, the operators'
purge, an operator's cancel of a running render. Each rule on its own is pinned down
in-process by tests/unit/test_delivery_rules.py."""
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
from services.pipeline.jobstore import JobStore
from tests.support.pushes import envelope, seed_job

from .conftest import wait_for_status


@pytest.fixture(scope="module")
def failing_analyze(stack):
    with chaos.extra_instance(stack, "analyze", {"FAULT_INJECTION": "stage.analyze=1"}) as url:
        yield url + "/push"


def test_sweep_redrives_a_job_stuck_in_a_stage_and_dry_run_touches_nothing(http, stack, events):
    # A job whose media-ingested was lost: created, never published, no progress for an hour.
    payload = seed_job(stack)
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
    assert wait_for_status(http, stack.url("ingest"), job_id, timeout=60)["status"] == "completed"
    assert len(events.wait_for_jobs([job_id])[job_id]) == 1


def test_previous_message_version_is_still_accepted_during_a_rolling_deploy(http, stack, events):
    """A media-analyzed.v1 (before analyze grew v2) still renders: versions of the expected
    type are validated against their own schema, not refused as wrong-schema."""
    analyzed = {"analyze": {"state": "done", "attempts": 1}, "render": {"state": "pending", "attempts": 0},
                "notify": {"state": "pending", "attempts": 0}}
    payload = seed_job(stack, stages=analyzed)  # an old analyze handed this job on
    v1 = {**payload, "analysis": {"format": "jpeg", "width": 320, "height": 240, "orientation": 1,
                                  "mean_color": [120, 120, 120]}}
    v1.pop("submitted_at")
    resp = http.post(f"{stack.url('render')}/push", json=envelope(v1, "media-analyzed.v1"), timeout=60)
    assert resp.status_code == 204
    done = wait_for_status(http, stack.url("ingest"), payload["job_id"], timeout=60)
    assert done["status"] == "completed" and done["renditions"]
    assert [e["status"] for e in events.wait_for_jobs([payload["job_id"]])[payload["job_id"]]] == ["completed"]
    dlq = TopicTap(stack.project, "render-media-analyzed-dlq")
    try:
        wrong = http.post(f"{stack.url('render')}/push", json=envelope(v1, "media-ingested.v1"), timeout=30)
        assert wrong.status_code == 204  # acknowledged, never retried: it can never be right
        [(attrs, data)] = dlq.wait_and_get(payload["job_id"])
        assert attrs["error_class"] == "bad-message" and "expected a media-analyzed" in attrs["error_reason"]
        assert data == v1
    finally:
        dlq.close()
    assert JobStore(stack.project).get(payload["job_id"])["status"] == "completed"


def test_purge_ends_a_parked_job_failed_with_one_event(http, stack, events, failing_analyze):
    """What Pub/Sub does after max attempts (copy to the DLQ with CloudPubSubDeadLetter*
    attributes), then an operator gives up: the message goes, the job ends failed."""
    from google.cloud import pubsub_v1

    payload = seed_job(stack)
    job_id = payload["job_id"]
    http.post(failing_analyze, json=envelope(payload, "media-ingested.v1", delivery_attempt=5), timeout=30)
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


def test_an_operator_cancels_a_running_render_and_it_writes_nothing_more(http, stack, events):
    """`jobs cancel` mid-render: the job ends failed/cancelled with one event; render stops at
    its next check and no rendition is written after the cancel."""
    import io

    import numpy as np
    from google.cloud import storage
    from PIL import Image

    from services.common.config import get_settings
    from services.ops.jobs import cancel
    from services.pipeline.runtime import Runtime

    # A big, smooth photo-like JPEG: small to upload, seconds to render. Made channel by
    # channel from broadcast ramps (a full int64 grid of 48 Mpx is gigabytes and seconds).
    y, x = np.arange(6000, dtype=np.int32)[:, None], np.arange(8000, dtype=np.int32)[None, :]
    pixels = np.empty((6000, 8000, 3), np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = (x // 31) % 256, (y // 23) % 256, ((x + y) // 47) % 256
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=70)
    resp = http.post(f"{stack.url('ingest')}/v1/uploads", data=buf.getvalue(), headers={"Content-Type": "image/jpeg"},
                     timeout=60)
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]
    wait_for_status(http, stack.url("ingest"), job_id, ("rendering",), timeout=60)
    row = cancel(Runtime.build(get_settings()), job_id, "wrong file")
    assert row["action"] == "cancelled" and row["stage"] == "render"

    [event] = events.wait_for_jobs([job_id], timeout=30)[job_id]
    assert event["status"] == "failed" and event["error"]["error_class"] == "cancelled"
    assert "wrong file" in event["error"]["reason"]
    store = JobStore(stack.project)
    deadline = time.monotonic() + 120
    while "stopped" not in store.get(job_id)["stages"]["render"] and time.monotonic() < deadline:
        time.sleep(0.2)  # render notices at its next check (before an output write)
    job = store.get(job_id)
    assert "cancel" in job["stages"]["render"]["stopped"] or "wrong file" in job["stages"]["render"]["stopped"]
    assert job["status"] == "failed" and "renditions" not in job
    written = storage.Client(project=stack.project).list_blobs("mediarelay-renditions", prefix=f"renditions/{job_id}/")
    assert all(b.time_created <= job["finished_at"] for b in written)
    assert len(events.wait_for_jobs([job_id])[job_id]) == 1

    # The same through the command line, on a job that is not running.
    seeded = seed_job(stack)["job_id"]
    env = {**os.environ, **stack.client_env()}
    out = subprocess.run([sys.executable, "-m", "services.cli", "jobs", "cancel", seeded, "--reason", "test", "--json"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0 and json.loads(out.stdout)["action"] == "cancelled", out.stderr
    assert store.get(seeded)["error"]["error_class"] == "cancelled"
