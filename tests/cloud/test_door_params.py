"""Numeric query parameters are parsed strictly (400 naming the parameter, never 500), and one
client's burst of requests is held back (429 + Retry-After) while another's still get in."""
from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from localcloud import chaos, samples
from services.client import auth_headers


@pytest.mark.parametrize("path, name, value", [
    ("/v1/jobs", "limit", "\u00b2"), ("/v1/jobs", "limit", "\u0663"), ("/v1/jobs", "limit", "3.0"),
    ("/v1/jobs", "limit", " 3"), ("/v1/jobs", "limit", "0"), ("/v1/jobs", "limit", "101"),
    ("/v1/jobs", "limit", "9" * 40), ("/v1/stats", "days", "\u00b2"), ("/v1/stats", "days", "\u0663"),
    ("/v1/stats", "days", "-1"), ("/v1/stats", "days", "32"), ("/v1/stats", "days", ""),
])
def test_bad_numbers_are_400_naming_the_parameter(http, ingest_url, path, name, value):
    resp = http.get(f"{ingest_url}{path}", params={name: value}, timeout=30)
    assert resp.status_code == 400, resp.text
    assert resp.headers["Content-Type"] == "application/problem+json"
    body = resp.json()
    assert body["parameter"] == name and name in body["detail"], body


def test_good_numbers_still_work(http, ingest_url):
    assert http.get(f"{ingest_url}/v1/jobs", params={"limit": "3"}, timeout=30).status_code == 200
    assert http.get(f"{ingest_url}/v1/stats", params={"days": "31"}, timeout=30).status_code == 200


def _jpeg() -> bytes:
    return samples.jpeg_bytes(samples.photo("rocket")) + uuid.uuid4().bytes


def test_one_clients_burst_is_held_back_and_another_client_still_gets_in(stack, new_client):
    _, _, noisy = new_client("noisy")
    _, _, quiet = new_client("quiet")
    # One worker process: the buckets are per process (services/ingest/ratelimit.py says why that is enough).
    limits = {"CLIENT_RATE_PER_SECOND": "1", "CLIENT_RATE_BURST": "5", "WEB_CONCURRENCY": "1"}
    with chaos.extra_instance(stack, "ingest", limits) as url:
        def noisy_get(_):  # the cheapest authenticated route: what is measured is the limiter
            return requests.get(f"{url}/openapi.json", headers=auth_headers(noisy), timeout=30)

        started = time.monotonic()
        with ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(noisy_get, range(30)))
        elapsed = time.monotonic() - started
        codes = [r.status_code for r in answers]
        # The burst of 5, plus one a second refilled while the 30 were answered; the rest held back.
        assert 5 <= codes.count(200) <= 5 + int(elapsed) + 1 and codes.count(429) == 30 - codes.count(200), (codes, elapsed)
        held = next(r for r in answers if r.status_code == 429)
        assert held.headers["Content-Type"] == "application/problem+json"
        assert 1 <= int(held.headers["Retry-After"]) <= 2 and "CLIENT_RATE_PER_SECOND" in held.json()["detail"]
        # The other client is not starved: its upload gets in at once.
        resp = requests.post(f"{url}/v1/uploads", data=_jpeg(), timeout=30,
                             headers={**auth_headers(quiet), "Content-Type": "image/jpeg"})
        assert resp.status_code == 202, resp.text
