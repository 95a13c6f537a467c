"""The operators' console on the local cloud: behind the local stand-in for IAP, verifying the
assertion itself; its pages show live jobs and dead letters; actions are audit-logged; and an
operator in a real browser (Debian's chromium) finds a failed job's reason and replays a
dead-lettered message until its job completes."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from localcloud.iap_front import COOKIE, ISSUER
from localcloud.stack import LOCAL_CONSOLE_AUDIENCE
from services.console.auth import IAP_HEADER
from services.pipeline.jobstore import JobStore
from tests.support.console import PARKED_REASON, failed_upload, parked_job
from tests.support.tokens import new_key, token

from .conftest import wait_for_status

BROWSER_DIR = Path(__file__).resolve().parents[1] / "browser"
OPERATOR = "ops@example.com"


@pytest.fixture(scope="module")
def console(stack) -> str:
    return stack.url("iap")


@pytest.fixture(scope="module")
def operator(console):
    with requests.Session() as s:
        s.cookies.set(COOKIE, OPERATOR)
        yield s


@pytest.fixture(scope="module")
def failed_job(stack, http) -> str:
    job_id = failed_upload(stack)
    wait_for_status(http, stack.url("ingest"), job_id, ("failed",), timeout=60)
    return job_id


def test_only_a_verified_operator_gets_a_page(stack, console, operator):
    direct = stack.url("console")  # around the front: as a request that did not come through IAP
    assert requests.get(f"{direct}/jobs", timeout=10).status_code == 401
    forged = token(new_key(), iss=ISSUER, aud=LOCAL_CONSOLE_AUDIENCE, email="mallory@example.com")
    assert requests.get(f"{direct}/jobs", headers={IAP_HEADER: forged}, timeout=10).status_code == 401
    assert requests.get(f"{console}/jobs", allow_redirects=False, timeout=10).headers["Location"].startswith("/_iap/sign-in")
    page = operator.get(f"{console}/jobs", timeout=30)
    assert page.status_code == 200 and OPERATOR in page.text


def test_jobs_filters_counts_and_a_failed_jobs_reason(console, operator, failed_job):
    listed = operator.get(f"{console}/api/jobs", params={"state": "failed", "error_class": "corrupt-media"}, timeout=30).json()
    assert failed_job in [j["job_id"] for j in listed["jobs"]]
    assert listed["counts"]["failed"] >= 1 and set(listed["counts"]) >= {"completed", "failed", "dead-lettered"}
    completed = operator.get(f"{console}/api/jobs", params={"state": "completed"}, timeout=30).json()["jobs"]
    assert failed_job not in [j["job_id"] for j in completed]
    job = operator.get(f"{console}/api/jobs/{failed_job}", timeout=30).json()
    assert job["job"]["error"]["error_class"] == "corrupt-media" and job["job"]["error"]["reason"]
    assert [s["name"] for s in job["waterfall"]][:1] == ["analyze"]
    found = operator.get(f"{console}/jobs", params={"q": failed_job}, timeout=30)
    assert found.url.endswith(f"/jobs/{failed_job}") and job["job"]["error"]["reason"][:40] in found.text
    assert operator.get(f"{console}/jobs", params={"state": "nonsense"}, timeout=30).status_code == 400


def test_health_and_dead_letter_pages_render(console, operator, failed_job):
    health = operator.get(f"{console}/api/health", timeout=60).json()
    assert health["total_failed"] >= 1 and dict(health["failures"]).get("corrupt-media", 0) >= 1
    assert any(c["name"] == "local" for c in health["clients"])
    for path in ("/health", "/dead-letters", "/audit", "/"):
        resp = operator.get(f"{console}{path}", timeout=60)
        assert resp.status_code == 200, (path, resp.text[:500])
    assert operator.get(f"{console}/health", timeout=60).text.count("<svg") == 2  # throughput, latency


def test_a_purge_asks_for_confirmation_and_both_actions_are_audited(stack, console, operator):
    job_id = parked_job(stack)
    unconfirmed = operator.post(f"{console}/api/dead-letters/purge", data={"job": job_id}, timeout=60)
    assert unconfirmed.status_code == 400 and "confirm" in unconfirmed.text
    asks = operator.get(f"{console}/dead-letters/purge", params={"job": job_id}, timeout=60)
    assert "Purge 1 dead-lettered message?" in asks.text and PARKED_REASON in asks.text
    cross_site = operator.post(f"{console}/api/dead-letters/purge", data={"job": job_id, "confirm": "yes"},
                               headers={"Origin": "https://evil.example"}, timeout=60)
    assert cross_site.status_code == 403
    purged = operator.post(f"{console}/api/dead-letters/purge", json={}, params={"job": job_id, "confirm": "yes"},
                           timeout=60).json()
    assert [m["note"] for m in purged["done"]] == ["purged, job failed"]
    job = JobStore(stack.project).get(job_id)
    assert job["status"] == "failed" and "purged by an operator" in job["error"]["reason"]
    [entry] = [e for e in operator.get(f"{console}/api/audit", timeout=30).json()["entries"]
               if e["action"] == "dlq.purge" and e["target"].get("job_id") == job_id]
    assert entry["operator"] == OPERATOR and entry["outcome"]["done"] == 1


@pytest.mark.skipif(not shutil.which("node") or not (BROWSER_DIR / "node_modules" / "playwright-core").exists(),
                    reason="make browser-deps installs playwright-core (node)")
def test_an_operator_finds_a_failure_and_replays_a_dead_letter_in_a_browser(stack, console, failed_job):
    parked = parked_job(stack)
    run = subprocess.run(["node", str(BROWSER_DIR / "console.mjs"), "check", console, failed_job, parked],
                         capture_output=True, text=True, timeout=180, cwd=BROWSER_DIR)
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert not seen["errors"], seen
    assert seen["sign_in_page"] == "/_iap/sign-in" and seen["signed_in_as"] == "operator@example.com"
    assert seen["failed_class"] == "corrupt-media" and seen["failed_reason"], seen
    assert seen["dead_letter_reason"] == PARKED_REASON
    assert seen["purge_asks"].startswith("Purge 1")
    assert seen["replay_notice"] == "replayed 1", seen
    assert seen["parked_job_status"] == "completed" and seen["thumbnails"] >= 1, seen
    assert any("dlq.replay" in row and "operator@example.com" in row for row in seen["audit"]), seen["audit"]


def test_the_cli_is_the_same_action_and_audited_under_its_operator(stack, console, operator, http):
    """`mediarelay jobs redrive` calls what the console's Re-drive button calls; the console's audit
    log shows it under the CLI's operator, and the parked job completes."""
    import os
    import sys

    job_id = parked_job(stack)
    env = {**os.environ, **stack.client_env(), "MEDIARELAY_OPERATOR": "cli-op@example.com"}
    run = subprocess.run([sys.executable, "-m", "services.cli", "jobs", "redrive", job_id, "--json"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0 and json.loads(run.stdout)["action"] == "re-driven", run.stdout + run.stderr
    assert wait_for_status(http, stack.url("ingest"), job_id, ("completed",), timeout=60)["status"] == "completed"
    entries = operator.get(f"{console}/api/audit", timeout=30).json()["entries"]
    assert any(e["action"] == "job.redrive" and e["target"] == {"job_id": job_id} and e["operator"] == "cli-op@example.com"
               for e in entries)
