"""The `mediarelay` command line, run as a user runs it, against the test stack."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid

import pytest

from localcloud import samples
from localcloud.stack import DEFAULT_PORTS
from localcloud.taps import free_port

CLI = [sys.executable, "-m", "services.cli"]


def run_cli(*args, env=None, timeout=120):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_submit_wait_status_and_events(stack, tmp_path):
    photo = tmp_path / "cli photo.jpg"
    photo.write_bytes(samples.jpeg_bytes(samples.photo("rocket")) + uuid.uuid4().bytes)
    out = run_cli("submit", str(photo), "--wait", "--url", stack.url("ingest"))
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.splitlines()[0].split("\t")[1]
    assert f"{job_id}\tcompleted" in out.stdout

    status = run_cli("status", job_id, "--url", stack.url("ingest"))
    assert status.returncode == 0 and json.loads(status.stdout)["status"] == "completed"

    # events: its own pull subscription sees an event published after it starts.
    tail = subprocess.Popen([*CLI, "events", "--count", "1", "--timeout", "60"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        tail.stderr.readline()  # "tailing ..." once the subscription exists
        other = tmp_path / "other.jpg"
        other.write_bytes(samples.jpeg_bytes(samples.photo("coffee")) + uuid.uuid4().bytes)
        assert run_cli("submit", str(other), "--url", stack.url("ingest")).returncode == 0
        stdout, _ = tail.communicate(timeout=90)
    finally:
        tail.kill()
    event = json.loads(stdout.splitlines()[0])
    assert event["type"] in ("mediarelay.job.completed", "mediarelay.job.failed") and event["job_id"]


def test_cli_errors_name_the_file_and_the_problem(stack, tmp_path):
    missing = run_cli("submit", str(tmp_path / "nope.jpg"), "--url", stack.url("ingest"))
    assert missing.returncode == 2 and "nope.jpg: no such file" in missing.stderr
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    rejected = run_cli("submit", str(text), "--url", stack.url("ingest"))
    assert rejected.returncode == 1 and "notes.txt: rejected: HTTP 415" in rejected.stderr
    unknown = run_cli("status", "nosuchjob000", "--url", stack.url("ingest"))
    assert unknown.returncode == 1 and "404" in unknown.stderr


@pytest.mark.cloud  # starts a local cloud of its own
def test_local_run_once_completes_every_sample_and_leaves_nothing_running(tmp_path):
    """`make run ONCE=1`, on its own ports and state folder, start to finish."""
    env = {f"MEDIARELAY_{n.upper()}_PORT": str(free_port()) for n in DEFAULT_PORTS}
    env["MEDIARELAY_STATE_DIR"] = str(tmp_path / "state")
    for var in ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST"):
        env[var] = ""  # the run must set its own
    out = run_cli("local", "run", "--once", env=env, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [line for line in out.stdout.splitlines() if line.split() and line.split()[0].endswith((".jpg", ".png", ".mp4"))
            and not line.startswith("submitted")]
    assert len(rows) == 6 and all(" completed " in row for row in rows), out.stdout
    long_row = next(r for r in rows if r.startswith("long-75s.mp4"))
    segments = re.search(r"HLS 240p \+ MP4 \((\d+) segments\)", long_row)
    assert segments and int(segments.group(1)) > 1, long_row  # the long sample is fanned out
    assert "play the HLS ladder with  ffplay http://127.0.0.1:" in out.stdout
    assert "local cloud down" in out.stdout
    assert "MEDIARELAY_API_KEY=mr_" in out.stdout  # the local client's key, printed for the user
    assert not list((tmp_path / "state" / "pids").glob("*.json"))
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path / "state")], capture_output=True, text=True).stdout
    ports = [env[k] for k in env if k.endswith("_PORT")]
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
    assert not leftovers and not any(f":{p} " in listening for p in ports), listening


def test_an_operator_deletes_a_job_from_the_cli(stack, tmp_path):
    """`mediarelay jobs delete`: the same deletion as the owner's DELETE /v1/jobs/{id} (services/ops/jobs.py)."""
    import time

    from services.pipeline.jobstore import JobStore

    photo = tmp_path / "gone.jpg"
    photo.write_bytes(samples.jpeg_bytes(samples.photo("coffee")) + uuid.uuid4().bytes)
    out = run_cli("submit", str(photo), "--wait", "--url", stack.url("ingest"))
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.splitlines()[0].split("\t")[1]
    deleted = run_cli("jobs", "delete", job_id, "--json", env=stack.client_env())
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert json.loads(deleted.stdout) == {"job_id": job_id, "status": "deleting"}
    store, deadline = JobStore(stack.project), time.monotonic() + 60
    while not (store.get(job_id).get("deleted") or {}).get("published_at"):
        assert time.monotonic() < deadline, "not erased within 60 s"
        time.sleep(0.5)
    assert "source" not in store.get(job_id)
    assert run_cli("jobs", "delete", "no-such-job-000", env=stack.client_env()).returncode == 1
