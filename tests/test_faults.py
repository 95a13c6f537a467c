"""Fault injection: duplicates, crashes, a restarted cloud, flaky storage and Firestore,
poison messages, exhausted retries and replay. Runs on a stack of its own (it restarts things).

FAULT_JOBS sets the jobs per scenario (default 8; the note's figures use 200 via make bench).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from localcloud import chaos, samples
from localcloud.stack import private_stack
from localcloud.taps import TopicTap
from services.client import auth_headers
from services.common.status import JobStore

from .conftest import TEST_RETRY_BACKOFF

JOBS = int(os.environ.get("FAULT_JOBS", "8"))


@pytest.fixture(scope="module")
def cloud(tmp_path_factory, stack):
    """Its own ports and state (it restarts things); the client variables point at it for the
    duration of the module and back at the session stack afterwards."""
    with private_stack(tmp_path_factory.mktemp("faults"), "mediarelay-faults", retry_backoff=TEST_RETRY_BACKOFF) as cfg:
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
