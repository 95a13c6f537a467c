"""An in-memory ingest app holding one video job with a two-rung ladder of SEGMENTS segments and a
storyboard, for the playback tests and bench/playback_bench.py. Signing is real (a throwaway key;
no network call), storage and the job store are tests/support/fakes.py's."""
from __future__ import annotations

import os
from pathlib import Path

from flask import Flask

from localcloud.stack import local_signing_key
from services.ingest.app import create_app
from tests.support.fakes import memory_runtime

JOB = "0123456789abcdef0123456789abcdef"
BUCKET = "mediarelay-renditions"
KEYS = (("k2", b"n" * 32), ("k1", b"o" * 32))  # k2 signs; k1 (the previous key) still verifies
SEGMENTS = 300
READ_ENDPOINT = "http://127.0.0.1:4444"


def media_playlist(n: int) -> str:
    return "".join(["#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n",
                    *(f"#EXTINF:2,\n{i:04d}-00.ts\n" for i in range(n)), "#EXT-X-ENDLIST\n"])


MASTER = ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n"
          '#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360,CODECS="avc1.64001e"\n360p/index.m3u8\n'
          '#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=320x180,CODECS="avc1.64000d"\n180p/index.m3u8\n')
VTT = "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nstoryboard.jpg#xywh=0,0,160,90\n\n"


def playback_app(key_dir: Path, **settings) -> Flask:
    """The app, with `.rt` (its runtime) set. Needs STORAGE_EMULATOR_HOST set (an anonymous client)."""
    assert os.environ.get("STORAGE_EMULATOR_HOST"), "set STORAGE_EMULATOR_HOST: the storage client must not look for credentials"
    rt = memory_runtime(playback_token_keys=KEYS, playback_token_ttl_seconds=3600, playback_sign_bucket_seconds=900,
                        signing_key_file=str(local_signing_key(key_dir)), storage_read_endpoint=READ_ENDPOINT,
                        **settings)
    refs = {}
    for name, text in {"master.m3u8": MASTER, "360p/index.m3u8": media_playlist(SEGMENTS),
                       "180p/index.m3u8": media_playlist(SEGMENTS), "../storyboard.vtt": VTT}.items():
        obj = f"renditions/{JOB}/hls/{name}".replace("hls/../", "")
        stored = rt.blobs.put_if_absent(BUCKET, obj, text.encode(), "text/plain")
        refs[name] = {"uri": stored.uri, "generation": stored.generation}
    video = {"hls": {"master": refs["master.m3u8"]}, "ladder": [{"name": r, "playlist": refs[f"{r}/index.m3u8"]}
                                                                 for r in ("360p", "180p")]}
    rt.jobs.create(JOB, {"owner": "c1", "video": video, "storyboard": {"vtt": refs["../storyboard.vtt"]}})
    app = create_app(rt.settings, rt)
    app.rt = rt  # type: ignore[attr-defined]
    return app


