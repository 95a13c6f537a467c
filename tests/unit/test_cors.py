"""CORS on the routes a web page calls (playback, upload URLs): ingest's real app in-process, and
the local storage front, both following CORS_ALLOWED_ORIGINS."""
from __future__ import annotations

import threading
import urllib.request

import pytest

from localcloud.storage_front import Verifier, make_handler
from tests.support.playback import playback_app

APP = "https://app.example.com"


@pytest.fixture
def make(tmp_path, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")  # anonymous client; signing is local
    return lambda origins: playback_app(tmp_path, cors_allowed_origins=origins).test_client()


def _preflight(client, path: str, origin: str = APP, method: str = "POST"):
    return client.options(path, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                         "Access-Control-Request-Headers": "authorization,content-type"})


@pytest.mark.parametrize("path,method", [("/v1/upload-urls", "POST"), ("/v1/jobs/0123456789abcdef/playback", "POST"),
                                         ("/v1/play/tok/master.m3u8", "GET"), ("/v1/play/tok/360p/index.m3u8", "GET")])
def test_an_allowed_origin_gets_its_preflight_answered_without_credentials(make, path, method):
    resp = _preflight(make((APP,)), path, method=method)
    assert resp.status_code == 204  # answered before authentication: a preflight carries no Authorization
    assert resp.headers["Access-Control-Allow-Origin"] == APP and "Origin" in resp.headers.get("Vary", "")
    assert method in resp.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
    assert int(resp.headers["Access-Control-Max-Age"]) == 600


def test_no_origin_is_allowed_by_default_and_another_origin_is_refused(make):
    for client, origin in ((make(()), APP), (make((APP,)), "https://evil.example")):
        resp = _preflight(client, "/v1/upload-urls", origin)
        assert "Access-Control-Allow-Origin" not in resp.headers
        assert client.get("/v1/play/tok/master.m3u8", headers={"Origin": origin}).headers.get(
            "Access-Control-Allow-Origin") is None


def test_answers_of_the_playback_routes_carry_the_origin_even_a_refusal(make):
    """hls.js must be able to read a 403 (expired token) to tell the viewer, not a CORS error."""
    resp = make(("*",)).get("/v1/play/forged/master.m3u8", headers={"Origin": APP})
    assert resp.status_code == 403 and resp.headers["Access-Control-Allow-Origin"] == "*"


def test_the_storage_front_follows_the_same_setting(tmp_path):
    from http.server import ThreadingHTTPServer

    def preflight(origins):
        server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(Verifier({}), "http://127.0.0.1:9", origins))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{server.server_port}/b/o", method="OPTIONS",
                                         headers={"Origin": APP, "Access-Control-Request-Method": "GET"})
            with urllib.request.urlopen(req, timeout=5) as resp:
                return dict(resp.headers)
        finally:
            server.shutdown()
            server.server_close()

    assert preflight(("*",))["Access-Control-Allow-Origin"] == "*"
    assert preflight((APP,))["Access-Control-Allow-Origin"] == APP
    assert "Access-Control-Allow-Origin" not in preflight(("https://other.example",))
