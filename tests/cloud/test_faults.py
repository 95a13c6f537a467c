"""Fault injection: duplicates, crashes, a restarted cloud, flaky storage and Firestore,
poison messages, exhausted retries and replay. Runs on a stack of its own (it restarts things).

FAULT_JOBS sets the jobs per scenario (default 8; the note's figures use 200 via make bench).
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

import av
import pytest

from localcloud import chaos, samples
from localcloud.stack import private_stack
from localcloud.taps import TopicTap
from services.client import IngestClient, auth_headers
from services.pipeline.jobstore import JobStore
from tests.support.videoset import ClipSpec, ShotSpec, write_clip

from .conftest import TEST_RETRY_BACKOFF

JOBS = int(os.environ.get("FAULT_JOBS", "8"))
SEGMENT_SECONDS = 20  # the fault stack cuts the 60 s clip below into three segments
VIDEO_JOBS = 2


@pytest.fixture(scope="module")
def cloud(tmp_path_factory, stack):
    """Its own ports and state (it restarts things); the client variables point at it for the
    duration of the module and back at the session stack afterwards."""
    env = {"VIDEO_SEGMENT_SECONDS": str(SEGMENT_SECONDS), "VIDEO_FIRST_SEGMENT_SECONDS": "0"}
    with private_stack(tmp_path_factory.mktemp("faults"), "mediarelay-faults", env, retry_backoff=TEST_RETRY_BACKOFF) as cfg:
        yield cfg


def _assert_clean(result: chaos.Audit):
    assert result.lost == 0, result.notes
    assert result.completed == result.jobs
    assert result.duplicate_events == 0 and result.missing_events == 0
    assert result.renditions_written_twice == 0


def test_a_every_push_delivered_twice(cloud):
    result = chaos.scenario_duplicates(cloud, JOBS)
    _assert_clean(result)


def test_b_render_killed_mid_flight_then_restarted(cloud):
    result = chaos.scenario_kill_render(cloud, JOBS)
    _assert_clean(result)


def test_c_local_cloud_restarted_with_messages_pending(cloud):
    result = chaos.scenario_restart_cloud(cloud, JOBS)
    _assert_clean(result)
    assert result.redriven_by_sweep > 0  # the emulator forgot in-flight messages; the sweep found them


def test_d_a_fifth_of_storage_and_firestore_calls_fail(cloud):
    result = chaos.scenario_transient_faults(cloud, JOBS, rate=0.2)
    _assert_clean(result)
    assert result.retried_calls > 0  # the retries happened, and the job documents show them


def test_e_poison_message_is_dead_lettered_on_first_delivery(cloud):
    dlq = TopicTap(cloud.project, "analyze-media-ingested-dlq")
    events = TopicTap(cloud.project, "media-events")
    try:
        import requests

        resp = requests.post(f"{cloud.url('ingest')}/v1/uploads", data=samples.truncated_jpeg(uuid.uuid4().bytes),
                             headers={"Content-Type": "image/jpeg", **auth_headers(cloud.api_key)}, timeout=30)
        job_id = resp.json()["job_id"]
        [event] = events.wait_for_jobs([job_id], timeout=60)[job_id]
        assert event["status"] == "failed" and event["error"]["error_class"] == "corrupt-media"
        [(attrs, data)] = dlq.wait_and_get(job_id, timeout=30)
        assert attrs["error_class"] == "corrupt-media" and attrs["stage"] == "analyze" and attrs["error_reason"]
        assert data["job_id"] == job_id
        job = requests.get(f"{cloud.url('ingest')}/v1/jobs/{job_id}", headers=auth_headers(cloud.api_key),
                           timeout=10).json()
        assert job["status"] == "failed" and job["stages"]["analyze"]["attempts"] == 1  # first delivery, no retries
    finally:
        dlq.close()
        events.close()


def _cli(cloud, *args, timeout=120):
    env = {**os.environ, **cloud.client_env()}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_f_exhausted_retries_dead_letter_then_replay_completes(cloud):
    import requests

    chaos.restart_services(cloud, ["render"], extra_env={"FAULT_INJECTION": "stage.render=1"})
    dlq = TopicTap(cloud.project, "render-media-analyzed-dlq")  # a copy of what the operators' subscription gets
    try:
        resp = requests.post(f"{cloud.url('ingest')}/v1/uploads", data=chaos.small_jpeg(10_000),
                             headers={"Content-Type": "image/jpeg", **auth_headers(cloud.api_key)}, timeout=30)
        job_id = resp.json()["job_id"]
        # The emulator dead-letters after max_delivery_attempts (5), with the stack's backoff.
        assert dlq.wait_and_get(job_id, timeout=120), "never dead-lettered"
        listed = json.loads(_cli(cloud, "dlq", "list", "--job", job_id, "--json").stdout or "[]")
        [entry] = listed
        assert entry["stage"] == "render" and entry["error_class"] == "delivery-attempts-exhausted"
        job = JobStore(cloud.project).get(job_id)  # the operator's view: transient errors are not public
        assert job["status"] == "rendering" and job["stages"]["render"]["attempts"] >= 5
        assert "injected fault" in job["stages"]["render"]["error"]
    finally:
        dlq.close()
        chaos.restart_services(cloud, ["render"])  # the fix is deployed

    dry = _cli(cloud, "dlq", "replay", "--job", job_id, "--dry-run")
    assert dry.returncode == 0 and "would replay" in dry.stdout
    replay = _cli(cloud, "dlq", "replay", "--job", job_id)
    assert replay.returncode == 0 and "1 replayed" in replay.stdout, replay.stdout + replay.stderr
    docs = chaos.wait_final(cloud.url("ingest"), [job_id], timeout=60)
    assert docs[job_id]["status"] == "completed"
    assert json.loads(_cli(cloud, "dlq", "list", "--job", job_id, "--json").stdout) == []


# --- long videos: the same faults while segments are fanned out -----------------------------

@pytest.fixture(scope="module")
def segmented_clip(tmp_path_factory) -> Path:
    """60 s of 160x90 with sound and an IDR every 2 s: three segments of SEGMENT_SECONDS, one rung."""
    path = tmp_path_factory.mktemp("clips") / "segmented.mp4"
    shots = [ShotSpec("astronaut", 24 * 20, "pan", 1), ShotSpec("coffee", 24 * 20), ShotSpec("chelsea", 24 * 20, "zoom", 0.2)]
    write_clip(ClipSpec("segmented", shots, (160, 90), audio=True), path, (160, 90), preset="ultrafast", crf=30,
               keyframes_every_s=2.0)
    return path


def _submitter(cloud, path: Path):
    def submit(n: int) -> list[str]:
        client = IngestClient(cloud.url("ingest"), api_key=cloud.api_key)
        return [client.submit(path, idempotency_key=uuid.uuid4().hex)["job_id"] for _ in range(n)]

    return submit


def _once_segments(cloud, stage: str, done_at_least: int = 0, timeout: float = 120):
    """A `when`: returns once some job has fanned `stage` out (and finished that many segments)."""
    def when(job_ids: list[str]) -> None:
        store, deadline = JobStore(cloud.project), time.monotonic() + timeout
        while time.monotonic() < deadline:
            for job_id in job_ids:
                seg = ((store.get(job_id) or {}).get("stages", {}).get(stage) or {}).get("segments")
                if seg and len(store.segments_done(job_id, stage)) >= done_at_least:
                    return
            time.sleep(0.1)
        raise AssertionError(f"no job fanned {stage} out within {timeout} s")

    return when


def test_g_every_segment_push_delivered_twice(cloud, segmented_clip):
    result = chaos.scenario_duplicates(cloud, VIDEO_JOBS, submit=_submitter(cloud, segmented_clip))
    _assert_clean(result)


def test_h_render_killed_mid_segment_then_restarted(cloud, segmented_clip):
    result = chaos.scenario_kill_render(cloud, VIDEO_JOBS, submit=_submitter(cloud, segmented_clip),
                                        when=_once_segments(cloud, "render"))
    _assert_clean(result)


def test_i_local_cloud_restarted_mid_fan_in(cloud, segmented_clip):
    result = chaos.scenario_restart_cloud(cloud, VIDEO_JOBS, submit=_submitter(cloud, segmented_clip),
                                          when=_once_segments(cloud, "analyze", done_at_least=1))
    _assert_clean(result)
    assert result.redriven_by_sweep > 0


def test_j_a_segment_failing_permanently_fails_the_job_with_its_reason(cloud, segmented_clip, tmp_path):
    """The middle segment's video packets are garbage: that segment fails, the job fails with a
    reason for a person, one event; the segment message is dead-lettered for operators."""
    data = bytearray(segmented_clip.read_bytes())
    with av.open(str(segmented_clip)) as c:
        v = c.streams.video[0]
        for p in c.demux(v):
            if p.pts is not None and p.pos and 25 <= float(p.pts * v.time_base) < 35:
                data[p.pos:p.pos + p.size] = bytes(random.Random(p.pts).randrange(256) for _ in range(p.size))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bytes(data))
    dlq = TopicTap(cloud.project, "analyze-video-segments-dlq")
    events = TopicTap(cloud.project, "media-events")
    try:
        [job_id] = _submitter(cloud, broken)(1)
        [event] = events.wait_for_jobs([job_id], timeout=120)[job_id]
        assert event["status"] == "failed" and event["error"]["error_class"] == "corrupt-media"
        assert event["error"]["stage"] == "analyze" and "cannot be decoded" in event["error"]["reason"]
        [(attrs, data)] = dlq.wait_and_get(job_id, timeout=30)
        assert data["index"] == 1 and attrs["error_class"] == "corrupt-media"
        time.sleep(2)
        events.drain()
        assert len(events.for_job(job_id)) == 1  # the other segments finishing later change nothing
        assert JobStore(cloud.project).get(job_id)["status"] == "failed"
    finally:
        dlq.close()
        events.close()
