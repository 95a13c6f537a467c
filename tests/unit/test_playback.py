"""Playback tokens and the playlist routes, in-process: ingest's real app on an in-memory runtime
and a real BlobStore signer (a throwaway key; signing makes no network call)."""
from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from localcloud.storage_front import Verifier, public_keys
from services.ingest import playback_token
from services.ingest.playback import rewrite_vtt
from tests.support.playback import BUCKET, JOB, KEYS, SEGMENTS, VTT, playback_app


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")  # anonymous client; signing is local
    return playback_app(tmp_path)


def _token(job=JOB, ttl=3600, keys=KEYS) -> str:
    return playback_token.mint(keys, job, int(time.time()), ttl)[0]


def test_the_master_names_our_media_routes_and_media_playlists_name_signed_segments(app):
    c = app.test_client()
    token = _token()
    master = c.get(f"/v1/play/{token}/master.m3u8")
    assert master.status_code == 200 and master.content_type == "application/vnd.apple.mpegurl"
    assert [ln for ln in master.text.splitlines() if not ln.startswith("#")] == ["360p/index.m3u8", "180p/index.m3u8"]
    cache = master.headers["Cache-Control"]
    assert cache.startswith("private, max-age=") and 3590 <= int(cache.split("=")[1]) <= 3600

    media = c.get(f"/v1/play/{token}/360p/index.m3u8")
    assert media.status_code == 200 and media.content_type == "application/vnd.apple.mpegurl"
    uris = [ln for ln in media.text.splitlines() if ln and not ln.startswith("#")]
    assert len(uris) == SEGMENTS
    first = urllib.parse.urlsplit(uris[0])
    assert f"{first.scheme}://{first.netloc}" == "http://127.0.0.1:4444"
    assert first.path == f"/{BUCKET}/renditions/{JOB}/hls/360p/0000-00.ts"
    q = dict(urllib.parse.parse_qsl(first.query))
    signed_until = time.mktime(time.strptime(q["X-Goog-Date"], "%Y%m%dT%H%M%SZ")) - time.timezone + int(q["X-Goog-Expires"])
    token_exp = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["exp"]
    assert token_exp <= signed_until <= token_exp + 900  # valid the token's whole life, at most a bucket longer
    # Signatures GCS (here: the local storage front) accepts, on the address it was given for reads.
    verifier = Verifier(public_keys([Path(app.rt.settings.signing_key_file)]))
    for uri in (uris[0], uris[-1]):
        parts = urllib.parse.urlsplit(uri)
        verifier.check("GET", parts.path, parts.query, {"host": parts.netloc}, dt.datetime.now(dt.UTC))

    vtt = c.get(f"/v1/play/{token}/storyboard.vtt")
    assert vtt.status_code == 200 and vtt.content_type.startswith("text/vtt")
    cue = vtt.text.splitlines()[3]
    assert cue.startswith(f"http://127.0.0.1:4444/{BUCKET}/renditions/{JOB}/storyboard.jpg?") and cue.endswith("#xywh=0,0,160,90")


def test_a_repeated_playlist_request_makes_no_new_signature(app):
    """Each signature is one IAM signBlob call on Cloud Run: count them."""
    c, blobs = app.test_client(), app.rt.blobs
    now = int(time.time())
    token, exp = playback_token.mint(KEYS, JOB, now, 3600)
    # Another viewer's token, expiring earlier but in the same PLAYBACK_SIGN_BUCKET_SECONDS bucket.
    same_bucket = playback_token.mint(KEYS, JOB, now - (exp - 1) % 900, 3600)[0]
    before = blobs.signatures
    assert c.get(f"/v1/play/{token}/360p/index.m3u8").status_code == 200
    first = blobs.signatures - before
    assert c.get(f"/v1/play/{token}/360p/index.m3u8").status_code == 200
    again = blobs.signatures - before - first
    assert c.get(f"/v1/play/{same_bucket}/360p/index.m3u8").status_code == 200
    other_viewer = blobs.signatures - before - first - again
    assert (first, again, other_viewer) == (SEGMENTS, 0, 0)
    # A token expiring in the next bucket gets (and keeps) signatures of its own.
    later = playback_token.mint(KEYS, JOB, now + 900, 3600)[0]
    assert c.get(f"/v1/play/{later}/360p/index.m3u8").status_code == 200
    assert blobs.signatures - before == 2 * SEGMENTS


def test_a_cold_playlist_signs_its_segments_concurrently(app):
    """A new bucket's first answer must not wait for 300 signBlob round trips one after another."""
    blobs, real = app.rt.blobs, type(app.rt.blobs).signed_get_url_until
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def slow_sign(*args, **kwargs):  # the real signature, with an IAM round trip's wait
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.005)
        try:
            return real(blobs, *args, **kwargs)
        finally:
            with lock:
                in_flight[0] -= 1

    blobs.signed_get_url_until = slow_sign
    resp = app.test_client().get(f"/v1/play/{_token()}/180p/index.m3u8")
    assert resp.status_code == 200 and resp.text.count("X-Goog-Signature=") == SEGMENTS
    assert most[0] == app.rt.settings.playback_sign_concurrency, most


@pytest.mark.parametrize("case", ["expired", "forged", "tampered-job", "unknown-key", "alg-none", "garbage",
                                  "other-scope"])
def test_a_bad_token_gets_403_on_every_playlist(app, case):
    c = app.test_client()
    now = int(time.time())
    good = _token()
    header, body, sig = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))

    def enc(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    token = {
        "expired": playback_token.mint(KEYS, JOB, now - 7200, 3600)[0],
        "forged": playback_token.mint((("k2", b"x" * 32),), JOB, now, 3600)[0],
        "tampered-job": f"{header}.{enc({**claims, 'sub': 'f' * 32})}.{sig}",
        "unknown-key": playback_token.mint((("k0", b"o" * 32),), JOB, now, 3600)[0],
        "alg-none": f"{enc({'alg': 'none', 'kid': 'k2'})}.{body}.",
        "garbage": "not-a-token",
        "other-scope": _scoped("download"),
    }[case]
    for path in ("master.m3u8", "360p/index.m3u8", "storyboard.vtt"):
        resp = c.get(f"/v1/play/{token}/{path}")
        assert resp.status_code == 403, (case, path)
        assert resp.content_type == "application/problem+json"


def _scoped(scope: str) -> str:
    import hashlib
    import hmac

    def enc(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    now = int(time.time())
    head = enc({"alg": "HS256", "kid": "k2"})
    body = enc({"iss": "mediarelay", "sub": JOB, "scope": scope, "iat": now, "exp": now + 60})
    sig = base64.urlsafe_b64encode(hmac.new(b"n" * 32, f"{head}.{body}".encode(), hashlib.sha256).digest()).rstrip(b"=")
    return f"{head}.{body}.{sig.decode()}"


def test_keys_rotate_with_an_overlap(app):
    c = app.test_client()
    previous = _token(keys=(("k1", b"o" * 32),))  # minted before k2 was put first
    assert c.get(f"/v1/play/{previous}/master.m3u8").status_code == 200
    assert playback_token.check(KEYS, _token(), int(time.time())).kid == "k2"
    # Once k1 is dropped from the list, its tokens stop working.
    with pytest.raises(playback_token.BadToken):
        playback_token.check(KEYS[:1], previous, int(time.time()))


def test_a_token_of_a_job_that_is_gone_is_404_and_unknown_rungs_are_404(app):
    c = app.test_client()
    assert c.get(f"/v1/play/{_token(job='e' * 32)}/master.m3u8").status_code == 404
    assert c.get(f"/v1/play/{_token()}/9999p/index.m3u8").status_code == 404


def test_vtt_rewrite_keeps_timings_and_fragments():
    out = rewrite_vtt(VTT, lambda uri: f"https://x/{uri}?sig")
    assert out.splitlines()[2] == "00:00:00.000 --> 00:00:02.000"
    assert out.splitlines()[3] == "https://x/storyboard.jpg?sig#xywh=0,0,160,90"
