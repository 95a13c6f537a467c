"""The front door: who may call ingest, and whose jobs they see. Real HTTP against the stack."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid

import pytest
import requests
from google.cloud import storage
from PIL import Image

from localcloud import chaos, samples
from services.pipeline.jobstore import JobStore
from tests.support.tokens import jwks_server, new_key, token

from .conftest import wait_for_status

CLIENT_AUDIENCE = "mediarelay-clients-test"


def _originals() -> set[str]:
    return {b.name for b in storage.Client().list_blobs("mediarelay-originals")}


def _jpeg() -> bytes:
    return samples.jpeg_bytes(samples.photo("coffee")) + uuid.uuid4().bytes


def _upload(session, url, data, **headers):
    return session.post(f"{url}/v1/uploads", data=data, headers={"Content-Type": "image/jpeg", **headers}, timeout=30)


@pytest.mark.parametrize("authorization", [None, "Bearer ", "Basic dXNlcjpwYXNz", "Bearer mr_nosuchclient_secret",
                                           "Bearer not-a-key-nor-a-token"])
def test_no_or_bad_credentials_are_401_and_nothing_is_stored(stack, ingest_url, authorization):
    before = _originals()
    headers = {"Authorization": authorization} if authorization is not None else {}
    for method, path, kwargs in [("POST", "/v1/uploads", {"data": _jpeg()}),
                                 ("POST", "/v1/upload-urls", {"json": {"content_type": "image/jpeg", "size": 10}}),
                                 ("GET", "/v1/jobs", {}), ("GET", "/v1/jobs/abcdefghijklmnop", {}),
                                 ("GET", "/openapi.json", {})]:
        resp = requests.request(method, f"{ingest_url}{path}", headers=headers, timeout=10, **kwargs)
        assert resp.status_code == 401, (path, resp.text)
        assert resp.headers["Content-Type"] == "application/problem+json"
        assert resp.headers["WWW-Authenticate"].startswith('Bearer realm="mediarelay"')
    assert _originals() == before
    assert requests.get(f"{ingest_url}/healthz", timeout=10).status_code == 200  # the one open door


def test_a_revoked_key_stops_working(stack, ingest_url, new_client):
    client_id, session, key = new_client("soon-revoked")
    assert _upload(session, ingest_url, _jpeg()).status_code == 202
    out = subprocess.run([sys.executable, "-m", "services.cli", "clients", "revoke", client_id],
                         capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    # The stack's ingest caches client documents for API_KEY_CACHE_SECONDS; a fresh instance
    # has no cache, as after that time.
    with chaos.extra_instance(stack, "ingest", {}) as fresh:
        before = _originals()
        resp = _upload(requests, fresh, _jpeg(), Authorization=f"Bearer {key}")
        assert resp.status_code == 401 and "revoked" in resp.json()["detail"]
        assert _originals() == before
    # A key with the right client id and a wrong secret is no better.
    _, _, other_key = new_client("other")
    wrong = other_key[: other_key.rindex("_") + 1] + "x" * 43
    assert _upload(requests, ingest_url, _jpeg(), Authorization=f"Bearer {wrong}").status_code == 401


def test_cli_clients_create_list_revoke(stack):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "services.cli", "clients", *args], capture_output=True, text=True,
                              timeout=60, env=dict(os.environ))

    made = cli("create", "cli-made")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("mr_")
    listed = json.loads(cli("list", "--json").stdout)
    [row] = [r for r in listed if r["name"] == "cli-made"]
    assert key.split("_")[1] == row["client_id"] and not row["revoked_at"]
    assert key not in cli("list").stdout and "key_sha256" not in json.dumps(listed)  # only a hash is stored, never shown
    stored = JobStore(stack.project).client.collection("clients").document(row["client_id"]).get().to_dict()
    assert key.split("_", 2)[2] not in json.dumps(stored, default=str) and len(stored["key_sha256"]) == 64
    assert cli("revoke", row["client_id"]).returncode == 0
    assert [r for r in json.loads(cli("list", "--json").stdout) if r["name"] == "cli-made"][0]["revoked_at"]
    assert cli("revoke", "nosuchclient").returncode == 1


def test_clients_see_only_their_own_jobs(stack, ingest_url, new_client, events):
    _, a, _ = new_client("client-a")
    _, b, _ = new_client("client-b")
    data = _jpeg()
    first = _upload(a, ingest_url, data, **{"Idempotency-Key": "shared-key"})
    assert first.status_code == 202
    job_a = first.json()["job_id"]
    # Same bytes, same Idempotency-Key, another client: its own job, never A's.
    second = _upload(b, ingest_url, data, **{"Idempotency-Key": "shared-key"})
    assert second.status_code == 202 and "Idempotent-Replayed" not in second.headers
    job_b = second.json()["job_id"]
    assert job_b != job_a
    no_key = _upload(b, ingest_url, data)  # content-hash dedupe is per client as well
    assert no_key.status_code == 202 and no_key.json()["job_id"] not in (job_a,)
    assert _upload(b, ingest_url, data).json()["job_id"] == no_key.json()["job_id"]  # ...and works within one

    done = wait_for_status(a, ingest_url, job_a)
    assert done["status"] == "completed"
    name = done["renditions"][0]["name"]
    for path in (f"/v1/jobs/{job_a}", f"/v1/jobs/{job_a}/renditions/{name}"):
        resp = b.get(f"{ingest_url}{path}", timeout=10, allow_redirects=False)
        assert resp.status_code == 404 and resp.headers["Content-Type"] == "application/problem+json", path
    assert job_a not in {j["job_id"] for j in b.get(f"{ingest_url}/v1/jobs", timeout=10).json()["jobs"]}
    assert {j["job_id"] for j in a.get(f"{ingest_url}/v1/jobs", timeout=10).json()["jobs"]} == {job_a}
    # The owner's rendition link redirects to a URL that serves the rendition.
    resp = a.get(f"{ingest_url}/v1/jobs/{job_a}/renditions/{name}", timeout=10, allow_redirects=False)
    assert resp.status_code == 302 and resp.headers["Cache-Control"] == "private, no-store"
    got = requests.get(resp.headers["Location"], timeout=10)
    assert got.status_code == 200
    r = done["renditions"][0]
    assert Image.open(io.BytesIO(got.content)).size == (r["width"], r["height"])
    assert a.get(f"{ingest_url}/v1/jobs/{job_a}/renditions/nope.jpg", timeout=10).status_code == 404


def test_job_ids_are_not_derived_from_the_content(stack, ingest_url, new_client):
    _, a, _ = new_client("ids-a")
    _, b, _ = new_client("ids-b")
    data = _jpeg()
    ids = {_upload(s, ingest_url, data).json()["job_id"] for s in (a, b)}
    assert len(ids) == 2
    assert all(len(i) == 26 and i.isalnum() for i in ids)  # 128 random bits, base32


def test_public_job_is_the_documented_view_not_the_internal_document(stack, ingest_url, http, events):
    import jsonschema

    job_id = _upload(http, ingest_url, _jpeg()).json()["job_id"]
    doc = wait_for_status(http, ingest_url, job_id)
    from services.common.config import REPO_ROOT

    contract = json.loads((REPO_ROOT / "services" / "ingest" / "openapi.json").read_text())
    # The document as the root, so the component's $refs resolve: its other keys are not keywords.
    jsonschema.Draft202012Validator({**contract, "$ref": "#/components/schemas/Job"}).validate(doc)
    text = json.dumps(doc)
    for secret in ("handoff", "gs://", "mediarelay-originals", "mediarelay-renditions\"", "idempotency_key",
                   "owner", "generation", "originals/"):
        assert secret not in text, secret
    assert doc["schema"] == "job.v1" and doc["stages"]["analyze"]["duration_ms"] >= 0
    internal = JobStore(stack.project).get(job_id)
    assert internal["handoff"] and internal["source"]["bucket"] == "mediarelay-originals"


def test_listing_filters_by_status_newest_first_a_page_at_a_time(stack, ingest_url, new_client):
    _, c, _ = new_client("lister")
    made = [_upload(c, ingest_url, _jpeg()).json()["job_id"] for _ in range(5)]
    bad = _upload(c, ingest_url, samples.truncated_jpeg(uuid.uuid4().bytes)).json()["job_id"]
    for job_id in [*made, bad]:
        wait_for_status(c, ingest_url, job_id)
    seen, cursor = [], None
    while True:
        page = c.get(f"{ingest_url}/v1/jobs", params={"limit": 2, **({"cursor": cursor} if cursor else {})},
                     timeout=10).json()
        assert len(page["jobs"]) <= 2
        seen += [j["job_id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [bad, *reversed(made)]  # newest first, every job once
    failed = c.get(f"{ingest_url}/v1/jobs", params={"status": "failed"}, timeout=10).json()
    assert [j["job_id"] for j in failed["jobs"]] == [bad] and failed["next_cursor"] is None
    for params in ({"status": "nonsense"}, {"limit": "0"}, {"limit": "x"}, {"cursor": "not-a-cursor-of-mine"}):
        resp = c.get(f"{ingest_url}/v1/jobs", params=params, timeout=10)
        assert resp.status_code == 400 and resp.headers["Content-Type"] == "application/problem+json", params


def test_google_id_tokens_are_accepted_for_the_configured_audience(stack, http):
    key = new_key()
    with jwks_server(key) as (certs_url, _):
        env = {"CLIENT_TOKEN_AUDIENCES": f"{CLIENT_AUDIENCE},other-aud", "CLIENT_TOKEN_CERTS_URL": certs_url}
        with chaos.extra_instance(stack, "ingest", env) as url:
            def as_token(tok):
                return _upload(requests, url, _jpeg(), Authorization=f"Bearer {tok}")

            ok = as_token(token(key, aud=CLIENT_AUDIENCE, sub="server-1", email="svc@example.iam.gserviceaccount.com"))
            assert ok.status_code == 202, ok.text
            job_id = ok.json()["job_id"]
            same = {"Authorization": f"Bearer {token(key, aud='other-aud', sub='server-1')}"}
            assert requests.get(f"{url}/v1/jobs/{job_id}", headers=same, timeout=10).status_code == 200
            other = {"Authorization": f"Bearer {token(key, aud=CLIENT_AUDIENCE, sub='someone-else')}"}
            assert requests.get(f"{url}/v1/jobs/{job_id}", headers=other, timeout=10).status_code == 404
            before = _originals()
            for bad in (token(key, aud="not-ours"), token(new_key()), token(key, iss="https://evil.example"),
                        token(key, aud=CLIENT_AUDIENCE, exp=1, iat=0)):
                resp = as_token(bad)
                assert resp.status_code == 401 and "WWW-Authenticate" in resp.headers, resp.text
            assert _originals() == before
    # Without configured audiences, ingest accepts no ID token at all.
    resp = _upload(requests, stack.url("ingest"), _jpeg(), Authorization=f"Bearer {token(key, aud=CLIENT_AUDIENCE)}")
    assert resp.status_code == 401 and "CLIENT_TOKEN_AUDIENCES" in resp.json()["detail"]


def test_quota_exceeded_is_429_and_nothing_is_stored(stack, ingest_url, new_client):
    _, c, _ = new_client("small-quota", quotas={"uploads_per_day": 2})
    assert [_upload(c, ingest_url, _jpeg()).status_code for _ in range(2)] == [202, 202]
    before = _originals()
    data = _jpeg()
    resp = _upload(c, ingest_url, data)
    assert resp.status_code == 429, resp.text
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert 0 < int(resp.headers["Retry-After"]) <= 86400  # until the next UTC day
    assert "QUOTA_UPLOADS_PER_DAY" in resp.json()["detail"]
    grant = c.post(f"{ingest_url}/v1/upload-urls", json={"content_type": "image/jpeg", "size": 10}, timeout=10)
    assert grant.status_code == 429
    assert _originals() == before
    # Bytes per day, per client: another client is not affected by this one's use.
    _, d, _ = new_client("byte-quota", quotas={"bytes_per_day": len(data) + 10})
    assert _upload(d, ingest_url, data).status_code == 202
    over = _upload(d, ingest_url, _jpeg())
    assert over.status_code == 429 and "QUOTA_BYTES_PER_DAY" in over.json()["detail"]
    assert _upload(d, ingest_url, data).status_code == 202  # a replay is never refused: nothing new is stored


def test_stats_per_day_and_outcome_own_or_all_for_operators(stack, ingest_url, new_client, http):
    client_id, c, _ = new_client("stats-client")
    good = _upload(c, ingest_url, _jpeg()).json()["job_id"]
    bad = _upload(c, ingest_url, samples.truncated_jpeg(uuid.uuid4().bytes)).json()["job_id"]
    for job_id in (good, bad):
        wait_for_status(c, ingest_url, job_id)
    body = c.get(f"{ingest_url}/v1/stats", params={"days": 1}, timeout=30).json()
    [row] = body["days"]
    assert row["client_id"] == client_id
    assert (row["uploads"], row["completed"], row["failed"], row["in_progress"]) == (2, 1, 1, 0)
    assert row["bytes"] > 0 and body["limits"]["uploads_per_day"] == 10000
    assert c.get(f"{ingest_url}/v1/stats", params={"all": "true"}, timeout=30).status_code == 403
    # The stack's local client is an operator: it sees every client, this one included.
    everyone = http.get(f"{ingest_url}/v1/stats", params={"days": 1, "all": "true"}, timeout=60).json()
    assert row in everyone["days"] and len({r["client_id"] for r in everyone["days"]}) > 1
    out = subprocess.run([sys.executable, "-m", "services.cli", "stats", "--days", "1", "--url", ingest_url],
                         capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert out.returncode == 0 and "uploads" in out.stdout and "your quotas per day" in out.stdout, out.stderr
