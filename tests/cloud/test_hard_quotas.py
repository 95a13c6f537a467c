"""Quotas are hard: however many uploads of one client arrive at once, never more than its
quota is accepted; signed and resumable uploads count their actual bytes once finalized, and a
refused upload gives its reservation back. Real HTTP against the stack."""
from __future__ import annotations

import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests

from localcloud import samples

from .conftest import wait_for_status

BURST = 36  # uploads fired at once


def _same_size_jpegs(n: int) -> list[bytes]:
    """n distinct JPEGs of one length (distinct: no de-duplication by content hash)."""
    head = samples.jpeg_bytes(samples.photo("rocket"))
    return [head + uuid.uuid4().bytes for _ in range(n)]


def _fire(session, ingest_url: str, bodies: list[bytes]) -> list[int]:
    def one(body):
        # A connection each, as that many separate callers would (the session's pool holds 10).
        return requests.post(f"{ingest_url}/v1/uploads", data=body, headers={"Content-Type": "image/jpeg"},
                             auth=session.auth, timeout=120).status_code

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(one, bodies))


def _used(session, ingest_url: str) -> dict:
    [row] = session.get(f"{ingest_url}/v1/stats", params={"days": 1}, timeout=30).json()["days"]
    return row


def test_a_burst_of_uploads_never_exceeds_the_uploads_per_day_quota(stack, ingest_url, new_client):
    _, c, _ = new_client("burst-uploads", quotas={"uploads_per_day": 5})
    codes = _fire(c, ingest_url, _same_size_jpegs(BURST))
    assert sorted(codes) == [202] * 5 + [429] * (BURST - 5), Counter(codes)
    assert _used(c, ingest_url)["uploads"] == 5


def test_a_burst_of_uploads_never_exceeds_the_bytes_per_day_quota(stack, ingest_url, new_client):
    bodies = _same_size_jpegs(BURST)
    quota = 6 * len(bodies[0]) + len(bodies[0]) // 2  # room for 6 and a half
    _, c, _ = new_client("burst-bytes", quotas={"bytes_per_day": quota})
    codes = _fire(c, ingest_url, bodies)
    assert sorted(codes) == [202] * 6 + [429] * (BURST - 6), Counter(codes)
    used = _used(c, ingest_url)
    assert used["bytes"] == 6 * len(bodies[0]) and used["uploads"] == 6


def _grant(session, ingest_url, size, **extra):
    return session.post(f"{ingest_url}/v1/upload-urls", json={"content_type": "image/jpeg", "size": size, **extra},
                        timeout=10)


def _until(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def test_signed_uploads_count_their_actual_bytes_and_a_refused_one_gives_its_reservation_back(
        stack, ingest_url, new_client):
    data = _same_size_jpegs(1)[0]
    quota = 10 * len(data)
    _, c, _ = new_client("signed-bytes", quotas={"bytes_per_day": quota, "uploads_per_day": 3})
    # Announced at the whole quota: while it is granted, nothing else fits.
    g = _grant(c, ingest_url, quota).json()
    assert _grant(c, ingest_url, 1000).status_code == 429
    assert requests.put(g["upload_url"], data=data, headers=g["headers"], timeout=30).ok
    assert wait_for_status(c, ingest_url, g["job_id"])["status"] == "completed"
    # Once finalized it counts what arrived, not what was announced.
    assert _until(lambda: _used(c, ingest_url)["bytes"] == len(data)), _used(c, ingest_url)
    # A refused upload (not media) gives back its upload and its bytes.
    bad = _grant(c, ingest_url, 1000).json()
    assert requests.put(bad["upload_url"], data=b"MZ not media", headers=bad["headers"], timeout=30).ok
    assert wait_for_status(c, ingest_url, bad["job_id"])["status"] == "failed"
    assert _until(lambda: (_used(c, ingest_url)["uploads"], _used(c, ingest_url)["bytes"]) == (1, len(data))), \
        _used(c, ingest_url)
    # So two more uploads fit the quota of 3, and the fourth does not.
    r = _grant(c, ingest_url, len(data), resumable=True)
    assert r.status_code == 201, r.text
    assert c.post(f"{ingest_url}/v1/uploads", data=_same_size_jpegs(1)[0], headers={"Content-Type": "image/jpeg"},
                  timeout=30).status_code == 202
    assert _grant(c, ingest_url, 10).status_code == 429
