"""`mediarelay jobs cancel` on a long video while its render segments run, end to end: the
running segments' media children are killed within seconds (not at their deadline), their
partial outputs are deleted, and no segment starts or finishes after the cancel.

The clip is test_segments.py's (tests/support/longclip.py: 181 s of 720p, 5 segments of 40 s on
the test stack); a 40 s span's ladder takes far longer than the cancel has to land here.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time

from google.cloud import storage

from services.client import IngestClient
from services.pipeline.jobstore import JobStore
from tests.cloud.conftest import wait_for_status
from tests.support.longclip import long_clip

STOPPED_WITHIN_S = 5.0


def test_cancel_kills_running_segments_within_seconds_and_removes_their_partial_outputs(stack, http, events):
    clip = long_clip()
    job_id = IngestClient(stack.url("ingest"), api_key=stack.api_key).submit(clip.path, signed=True)["job_id"]
    # Render's ladder fans out beside the analysis (the status says `analyzing` until it is done).
    wait_for_status(http, stack.url("ingest"), job_id, ("analyzing", "rendering"), timeout=600)
    store = JobStore(stack.project)
    deadline = time.monotonic() + 60
    while not (store.get(job_id)["stages"]["render"].get("segments") or {}).get("count") and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # the segment deliveries are in their media children by now

    env = {**os.environ, **stack.client_env()}
    out = subprocess.run([sys.executable, "-m", "services.cli", "jobs", "cancel", job_id, "--reason", "wrong file",
                          "--json"], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0 and json.loads(out.stdout)["action"] == "cancelled", out.stdout + out.stderr
    cancelled_at = store.get(job_id)["finished_at"]

    deadline = time.monotonic() + 60
    while "stopped_at" not in store.get(job_id)["stages"]["render"] and time.monotonic() < deadline:
        time.sleep(0.1)
    job = store.get(job_id)
    render = job["stages"]["render"]
    assert "wrong file" in render["stopped"], render.get("stopped")
    assert render["stopped_at"] - cancelled_at < dt.timedelta(seconds=STOPPED_WITHIN_S)

    time.sleep(STOPPED_WITHIN_S)  # every running segment has stopped and cleaned up by now
    done = store.segments_done(job_id, "render")
    assert len([i for i in done if i < len(clip.plan)]) < len(clip.plan)  # the cancel landed while ladder segments ran
    assert all(at <= cancelled_at + dt.timedelta(seconds=1) for at in done.values())  # none finished after it
    bucket = storage.Client(project=stack.project).bucket("mediarelay-renditions")
    names = [b.name for b in bucket.list_blobs(prefix=f"renditions/{job_id}/hls/")]
    names += [b.name for b in bucket.list_blobs(prefix=f"work/{job_id}/render/")]
    for index in set(range(len(clip.plan))) - set(done):  # a segment stopped midway left nothing behind
        assert not [n for n in names if f"/{index:04d}-" in n], (index, names)
    [event] = events.wait_for_jobs([job_id], timeout=30)[job_id]
    assert event["status"] == "failed" and event["error"]["error_class"] == "cancelled"
