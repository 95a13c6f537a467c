"""The local cloud and the four services, started once per test session on free ports.

Everything is real: the official emulators, fake-gcs-server, gunicorn, HTTP on 127.0.0.1.
"""
from __future__ import annotations

import os

import pytest
import requests

from localcloud.stack import DEFAULT_PORTS, StackConfig, down, up
from localcloud.taps import TopicTap, free_port

# Small enough that a test can exceed it quickly; large enough for every sample.
TEST_MAX_UPLOAD_BYTES = 6 * 1024 * 1024


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    cfg = StackConfig(
        state_dir=tmp_path_factory.mktemp("local"),
        project="mediarelay-test",
        ports={name: free_port() for name in DEFAULT_PORTS},
        service_env={"MAX_UPLOAD_BYTES": str(TEST_MAX_UPLOAD_BYTES), "LOG_LEVEL": "INFO"},
    )
    saved = {k: os.environ.get(k) for k in cfg.client_env()}
    os.environ.update(cfg.client_env())
    try:
        up(cfg, say=lambda *_: None)
        yield cfg
    finally:
        down(cfg, say=lambda *_: None)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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
