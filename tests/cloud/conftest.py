"""The local cloud and the four services, started once per test session on free ports.

Everything is real: the official emulators, fake-gcs-server, gunicorn, HTTP on 127.0.0.1.
"""
from __future__ import annotations

import time

import pytest
import requests

from localcloud.stack import private_stack
from localcloud.taps import TopicTap
from services.pipeline.jobstate import FINAL

# Small enough that a test can exceed it quickly; large enough for every sample.
TEST_MAX_UPLOAD_BYTES = 6 * 1024 * 1024
# Pub/Sub's redelivery backoff on test stacks (the topology's is 5-300 s): five attempts take
# ~16 s instead of ~33 s on the emulator. Every attempt is still made; only the wait between
# them shrinks. Not shorter: a render killed mid-flight must be back before the last attempt.
TEST_RETRY_BACKOFF = (2, 20)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    # VIDEO_SEGMENT_SECONDS: tests/longclip.py's clip is planned for 40 s segments, with no short first one
    # (the short first segment is exercised by test_playable's stack and tests/unit/test_span_plan.py).
    env = {"MAX_UPLOAD_BYTES": str(TEST_MAX_UPLOAD_BYTES), "WEBHOOK_MAX_ENDPOINTS": "3", "LOG_LEVEL": "INFO",
           "VIDEO_SEGMENT_SECONDS": "40", "VIDEO_FIRST_SEGMENT_SECONDS": "0"}
    with private_stack(tmp_path_factory.mktemp("local"), "mediarelay-test", env, TEST_RETRY_BACKOFF) as cfg:
        yield cfg


@pytest.fixture(scope="session")
def ingest_url(stack) -> str:
    return stack.url("ingest")


@pytest.fixture(scope="session")
def events(stack):
    tap = TopicTap(stack.project, "media-events")
    yield tap
    tap.close()


class IngestKey(requests.auth.AuthBase):
    """Adds the client's API key to requests for ingest (only; other services and the signed
    storage URLs get none), unless the request sets its own Authorization."""

    def __init__(self, ingest_url: str, key: str):
        self.ingest_url, self.key = ingest_url, key

    def __call__(self, r):
        if r.url.startswith(self.ingest_url + "/") and "Authorization" not in r.headers:
            r.headers["Authorization"] = f"Bearer {self.key}"
        return r


@pytest.fixture(scope="session")
def http(stack):
    """A session authenticated as the stack's local client, for every test that talks to ingest."""
    with requests.Session() as s:
        s.auth = IngestKey(stack.url("ingest"), stack.api_key)
        yield s


def pytest_collection_modifyitems(items):
    """Every test that uses the local cloud is marked `cloud`: `make test-unit` runs the rest,
    with no Java, emulator or Terraform; nothing to remember when a test is added."""
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cloud)


@pytest.fixture(scope="session")
def new_client(stack):
    """new_client(name) -> (client id, a requests session authenticated as that new client)."""
    from services.ingest.clients import ClientStore

    store = ClientStore(stack.project, cache_seconds=0)
    sessions = []

    def make(name: str = "test-client", **fields):
        doc, key = store.create(name, **fields)
        s = requests.Session()
        s.auth = IngestKey(stack.url("ingest"), key)
        sessions.append(s)
        return doc["client_id"], s, key

    yield make
    for s in sessions:
        s.close()


def wait_for_status(session, ingest_url: str, job_id: str, statuses=FINAL, timeout: float = 90.0) -> dict:
    """The job as `session`'s client reads it through ingest, once its status is one of `statuses`."""
    deadline = time.monotonic() + timeout
    doc: dict = {}
    while time.monotonic() < deadline:
        doc = session.get(f"{ingest_url}/v1/jobs/{job_id}", timeout=10).json()
        if doc.get("status") in statuses:
            return doc
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} stayed {doc.get('status')} for {timeout} s, not one of {statuses}")
