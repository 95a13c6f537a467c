"""Private playback with one credential: a playback token, and the playlist routes that honour it.

`POST /v1/jobs/{id}/playback` (the job's owner) -> `{playback_url, expires_at}`. The URL is
`/v1/play/{token}/master.m3u8`; with it a player fetches, from us, the master playlist, each
rung's media playlist (`{rung}/index.m3u8`, relative to the master, so the token travels in the
path) and the storyboard WebVTT (`storyboard.vtt`). Every other child (media segments, the
storyboard sprite) is named by a per-object V4 signed URL valid at least as long as the token:
segment bytes come straight from GCS (or a CDN), never through our instances.

From the `playable` event on (render's segment 0 stored), before render's fan-in wrote the
stored VOD playlists, the playlists are built from the finished prefix (growing.py): EVENT
playlists without EXT-X-ENDLIST, answered with `Cache-Control: no-cache` so a player's reload
sees each new span; once the job names its stored playlists, those are served (VOD, ENDLIST).

Signing cost: on Cloud Run one signature is one IAM signBlob call. A child URL is signed to the
end of the PLAYBACK_SIGN_BUCKET_SECONDS bucket its token expires in and kept per process, so a
re-fetched playlist, and every other token expiring in that bucket, costs no signing.
"""
from __future__ import annotations

import posixpath
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from flask import Flask, Response, jsonify, request

from ..common.errors import HTTPProblem
from ..pipeline.blobs import BlobStore
from ..pipeline.jobstate import FINAL, Job
from ..pipeline.runtime import Runtime
from . import playback_token
from .growing import GrowingLadder
from .playback_token import BadToken

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"  # Apple's HLS authoring spec and RFC 8216
VTT_TYPE = "text/vtt; charset=utf-8"
PLAY_PREFIX = "/v1/play/"
V4_MAX_SECONDS = 7 * 24 * 3600  # the longest a V4 signature can live
_URI_ATTR = re.compile(r'URI="([^"]*)"')
GROWING_CACHE = "private, no-cache"  # a growing playlist changes with every span render finishes


def playable(job: Job) -> bool:
    """The ladder plays: its stored playlists exist, or its first span is in (the `playable` event)
    and the job still runs."""
    return bool(job.get("video") or ((job.get("timings") or {}).get("playable_at") and job["status"] not in FINAL))


def mint_playback(rt: Runtime, job: Job, base_url: str) -> dict:
    """A playback URL (and the storyboard's) for a playable job, with its expiry."""
    s = rt.settings
    token, exp = playback_token.mint(s.playback_token_keys, job["job_id"], int(time.time()), s.playback_token_ttl_seconds)
    return {"playback_url": f"{base_url}{PLAY_PREFIX}{token}/master.m3u8",
            "storyboard_url": f"{base_url}{PLAY_PREFIX}{token}/storyboard.vtt" if job.get("storyboard") else None,
            "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp))}


def job_view_playback(rt: Runtime, job: Job, base_url: str) -> dict | None:
    """What the job view carries to play the video (from `playable` on), when playback is configured."""
    if not rt.settings.playback_token_keys or job.get("deleted") or not playable(job):
        return None
    return mint_playback(rt, job, base_url)


class ChildSigner:
    """Signed GET URLs of playlist children, one per (object, expiry bucket), kept per process."""

    MAX_ENTRIES = 200_000  # ~100 MB of URLs at most; beyond, expired buckets go first, then everything

    def __init__(self, blobs: BlobStore, key_file: str, endpoint: str, bucket_seconds: int, concurrency: int = 1):
        self.blobs, self.key_file, self.endpoint, self.bucket_seconds = blobs, key_file, endpoint, bucket_seconds
        self.concurrency = max(1, concurrency)
        self._urls: dict[tuple[str, str, int], str] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None  # made on first use: gunicorn forks after import

    def prefetch(self, bucket: str, names: Iterable[str], token_expires: int) -> None:
        """Sign the missing ones of `names` concurrently (a new bucket's first playlist answer would
        otherwise wait for one signBlob round trip per segment, one after another)."""
        until = self.valid_until(token_expires)
        missing = list(dict.fromkeys(n for n in names if (bucket, n, until) not in self._urls))
        if len(missing) < 2 or self.concurrency == 1:
            return
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="playback-sign")
        list(self._pool.map(lambda n: self.url(bucket, n, token_expires), missing))

    def valid_until(self, token_expires: int) -> int:
        """The end of the bucket the token's expiry falls in: never before the token's own end."""
        return -(-token_expires // self.bucket_seconds) * self.bucket_seconds

    def url(self, bucket: str, name: str, token_expires: int) -> str:
        key = (bucket, name, self.valid_until(token_expires))
        hit = self._urls.get(key)
        if hit is not None:
            return hit
        url = self.blobs.signed_get_url_until(bucket, name, key[2], self.key_file, self.endpoint)
        with self._lock:
            if len(self._urls) >= self.MAX_ENTRIES:
                now = time.time()
                self._urls = {k: v for k, v in self._urls.items() if k[2] > now}
                if len(self._urls) >= self.MAX_ENTRIES:
                    self._urls.clear()
            self._urls[key] = url
        return url


def _child_name(parent: str, uri: str, folder: str) -> str:
    """The object a relative child URI names, which must lie in the job's own folder."""
    name = posixpath.normpath(posixpath.join(posixpath.dirname(parent), uri))
    if not name.startswith(folder) or "://" in uri or uri.startswith("/"):
        raise ValueError(f"playlist child {uri[:100]!r} is outside {folder}")
    return name


def child_uris(text: str, vtt: bool = False) -> list[str]:
    """Every URI a playlist (or a storyboard's cues) names: what rewrite_playlist / rewrite_vtt pass to `child`."""
    uris = []
    for line in text.splitlines():
        stripped = line.strip()
        if vtt:
            if "#xywh=" in stripped and "-->" not in stripped:
                uris.append(stripped.partition("#")[0])
        elif stripped and not stripped.startswith("#"):
            uris.append(stripped)
        elif "URI=" in stripped:
            uris += _URI_ATTR.findall(stripped)
    return uris


def rewrite_playlist(text: str, child: Callable[[str], str]) -> str:
    """Every URI of an HLS playlist (URI lines and URI="..." attributes) through `child`."""
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            line = child(stripped)
        elif "URI=" in stripped:
            line = _URI_ATTR.sub(lambda m: f'URI="{child(m.group(1))}"', line)
        out.append(line)
    return "\n".join(out) + "\n"


def rewrite_vtt(text: str, child: Callable[[str], str]) -> str:
    """The storyboard's cue payloads `sprite.jpg#xywh=...` with the sprite's URL through `child`."""
    out = []
    for line in text.splitlines():
        if "#xywh=" in line and "-->" not in line:
            uri, _, frag = line.strip().partition("#")
            line = f"{child(uri)}#{frag}"
        out.append(line)
    return "\n".join(out) + "\n"


class Playback:
    def __init__(self, rt: Runtime):
        s = rt.settings
        if s.playback_token_ttl_seconds + s.playback_sign_bucket_seconds > V4_MAX_SECONDS:
            raise ValueError("PLAYBACK_TOKEN_TTL_SECONDS + PLAYBACK_SIGN_BUCKET_SECONDS must not exceed 7 days "
                             "(the longest life of a V4 signed URL)")
        self.rt = rt
        self.signer = ChildSigner(rt.blobs, s.signing_key_file, s.storage_read_endpoint, s.playback_sign_bucket_seconds,
                                  s.playback_sign_concurrency)
        self._playlists: OrderedDict[tuple, str] = OrderedDict()  # generation-pinned, so never stale
        self.growing = GrowingLadder(rt.blobs, s.renditions_bucket)
        self._lock = threading.Lock()

    # --- minting ---------------------------------------------------------------------------------------------
    def grant(self, job: Job, base_url: str) -> dict:
        s = self.rt.settings
        if not s.playback_token_keys:
            raise HTTPProblem(503, "Playback not configured", "this deployment has no PLAYBACK_TOKEN_KEYS")
        if not playable(job):
            if job["status"] in FINAL:
                raise HTTPProblem(404, "Nothing to play", f"job {job['job_id']} has no HLS ladder")
            raise HTTPProblem(409, "Not playable yet", f"job {job['job_id']} is {job['status']}; its HLS ladder is not "
                                                       "written yet")
        return mint_playback(self.rt, job, base_url)

    # --- serving ---------------------------------------------------------------------------------------------
    def _job(self, token: str) -> tuple[Job, playback_token.Grant]:
        try:
            grant = playback_token.check(self.rt.settings.playback_token_keys, token, int(time.time()))
        except BadToken:
            # One answer for every reason: a prober learns nothing about which part was wrong.
            raise HTTPProblem(403, "Playback token refused", "the token is expired, forged or not a playback token; "
                                                             "ask for a new one (POST /v1/jobs/{id}/playback)") from None
        job = self.rt.jobs.get(grant.job_id)
        if job is None or job.get("deleted") or not playable(job):  # a deleted job's tokens stop working
            raise HTTPProblem(404, "Nothing to play", "this job or its video no longer exists")
        return job, grant

    def _growing(self, job: Job) -> tuple[Job, tuple[str, dict[str, str]] | None]:
        """The prefix's playlists while the job names no stored ones, else (job, None). The job is
        read again after the prefix: render's fan-in writes the stored playlists before it deletes
        the results, so a job still without them means the prefix read was whole."""
        if job.get("video"):
            return job, None
        built = self.growing.playlists(job["job_id"])
        again = self.rt.jobs.get(job["job_id"]) or job
        if again.get("video") and not again.get("deleted"):
            return again, None
        if built is None or again["status"] in FINAL or again.get("deleted"):
            raise HTTPProblem(404, "Nothing to play", "this job's video is not being written (it ended or was removed)")
        return job, built

    def _text(self, ref: dict) -> str:
        bucket, _, name = ref["uri"].removeprefix("gs://").partition("/")
        key = (bucket, name, ref.get("generation"))
        with self._lock:
            if key in self._playlists:
                self._playlists.move_to_end(key)
                return self._playlists[key]
        text = self.rt.blobs.get_bytes(bucket, name, ref.get("generation")).decode()
        with self._lock:
            self._playlists[key] = text
            while len(self._playlists) > 512:
                self._playlists.popitem(last=False)
        return text

    def _signed_child(self, ref: dict, grant: playback_token.Grant, text: str, vtt: bool = False) -> Callable[[str], str]:
        bucket, _, parent = ref["uri"].removeprefix("gs://").partition("/")
        folder = f"renditions/{grant.job_id}/"
        self.signer.prefetch(bucket, (_child_name(parent, uri, folder) for uri in child_uris(text, vtt)), grant.expires_at)
        return lambda uri: self.signer.url(bucket, _child_name(parent, uri, folder), grant.expires_at)

    def master(self, token: str) -> Response:
        job, grant = self._job(token)
        job, growing = self._growing(job)
        if growing is not None:  # names "{rung}/index.m3u8" relative to itself: the token stays in the path
            return self._answer(growing[0], PLAYLIST_TYPE, grant, cache=GROWING_CACHE)
        rungs = {r["name"] for r in job["video"]["ladder"]}

        def variant(uri: str) -> str:
            rung, _, rest = uri.partition("/")
            if rung not in rungs or rest != "index.m3u8":
                raise ValueError(f"master names {uri[:100]!r}, not a rung of the ladder")
            return f"{rung}/index.m3u8"  # our route, relative to the master's URL: the token stays in the path

        return self._answer(rewrite_playlist(self._text(job["video"]["hls"]["master"]), variant), PLAYLIST_TYPE, grant)

    def media(self, token: str, rung: str) -> Response:
        job, grant = self._job(token)
        job, growing = self._growing(job)
        if growing is not None:
            if rung not in growing[1]:
                raise HTTPProblem(404, "No such rung", f"the ladder has no rung {rung[:40]!r}")
            text, where = growing[1][rung], self.growing.playlist_ref(job["job_id"], rung)
            return self._answer(rewrite_playlist(text, self._signed_child(where, grant, text)), PLAYLIST_TYPE, grant,
                                cache=GROWING_CACHE)
        ref = next((r["playlist"] for r in job["video"]["ladder"] if r["name"] == rung), None)
        if ref is None:
            raise HTTPProblem(404, "No such rung", f"the ladder has no rung {rung[:40]!r}")
        text = self._text(ref)
        return self._answer(rewrite_playlist(text, self._signed_child(ref, grant, text)), PLAYLIST_TYPE, grant)

    def storyboard(self, token: str) -> Response:
        job, grant = self._job(token)
        board = job.get("storyboard")
        if not board:
            raise HTTPProblem(404, "No storyboard", "this job has no storyboard")
        text = self._text(board["vtt"])
        return self._answer(rewrite_vtt(text, self._signed_child(board["vtt"], grant, text, vtt=True)), VTT_TYPE, grant)

    def _answer(self, text: str, content_type: str, grant: playback_token.Grant, cache: str | None = None) -> Response:
        resp = Response(text, content_type=content_type)
        # Never cached past the token: its children's signatures outlive it only by the bucket.
        resp.headers["Cache-Control"] = cache or f"private, max-age={max(0, grant.expires_at - int(time.time()))}"
        return resp


def register_playback_routes(app: Flask, rt: Runtime, own_job: Callable[[str], Job]) -> None:
    """The routes; `own_job` is ingest's owner check (the minting route is the owner's only).
    The /v1/play/ routes authenticate by their token alone (ingest's client check skips them)."""
    playback = Playback(rt)

    @app.post("/v1/jobs/<job_id>/playback")
    def playback_grant(job_id: str):
        base = rt.settings.public_base_url or request.host_url.rstrip("/")
        resp = jsonify(playback.grant(own_job(job_id), base))
        resp.headers["Cache-Control"] = "no-store"
        return resp

    app.add_url_rule(f"{PLAY_PREFIX}<token>/master.m3u8", "play_master", playback.master)
    app.add_url_rule(f"{PLAY_PREFIX}<token>/<rung>/index.m3u8", "play_media", playback.media)
    app.add_url_rule(f"{PLAY_PREFIX}<token>/storyboard.vtt", "play_storyboard", playback.storyboard)
