"""The local cloud and the four services, started once per test session on free ports.

Everything is real: the official emulators, fake-gcs-server, gunicorn, HTTP on 127.0.0.1.
"""
from __future__ import annotations

import pytest
import requests

from localcloud.stack import private_stack
from localcloud.taps import TopicTap

# Small enough that a test can exceed it quickly; large enough for every sample.
TEST_MAX_UPLOAD_BYTES = 6 * 1024 * 1024
# Pub/Sub's redelivery backoff on test stacks (the topology's is 5-300 s): five attempts take
# ~16 s instead of ~33 s on the emulator. Every attempt is still made; only the wait between
# them shrinks. Not shorter: a render killed mid-flight must be back before the last attempt.
TEST_RETRY_BACKOFF = (2, 20)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    env = {"MAX_UPLOAD_BYTES": str(TEST_MAX_UPLOAD_BYTES), "LOG_LEVEL": "INFO"}
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


@pytest.fixture(scope="session")
def http():
    with requests.Session() as s:
        yield s


def pytest_collection_modifyitems(items):
    """Every test that uses the local cloud is marked `cloud`: `make test-unit` runs the rest,
    with no Java, emulator or Terraform; nothing to remember when a test is added."""
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cloud)
