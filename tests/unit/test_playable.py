"""Playable before done (issue 23 item 5), in-process: the growing EVENT playlists the playback
route builds from render's finished prefix, the one `playable` event, and the job's timings.

The route runs in ingest's real app over the in-memory runtime with a real signer
(tests/support/playback.py); the event goes through the real segment plumbing (handon) with the
render stage's own hook; the end-to-end run is tests/cloud/test_playable.py."""
from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from services.common.errors import TransientError
from services.ingest import playback_token
from services.ingest.playback import job_view_playback
from services.ingest.public_job import public_job
from services.pipeline import jobstate
from services.pipeline.handon import SEGMENTS_PATH, FanOut, StageResult, result_name, segment_messages
from services.pipeline.playable import publish_playable
from services.pipeline.push import register_segments, register_stage
from services.pipeline.web import create_service_app
from services.render import hls
from services.render.video_stage import segment_stored
from tests.support.fakes import memory_runtime
from tests.support.playback import BUCKET, KEYS, playback_app
from tests.support.pushes import envelope

GROWING = "feedc0de0123456789abcdef01234567"
RUNGS = {"180p": (320, 180, "avc1.64000d"), "360p": (640, 360, "avc1.64001e")}


def result(index: int, per_span: int = 2) -> dict:
    """A render segment's stored result (video_stage.render_segment) with `per_span` media segments a rung."""
    rungs = {name: {"width": w, "height": h, "codecs": codecs, "frame_rate": 30.0,
                    "segments": [{"file": f"{name}/{k:02d}.ts", "start_s": 12.0 * index + 6 * k, "duration_s": 6.0,
                                  "bytes": 4000 * w // 320, "uri": f"gs://{BUCKET}/x", "generation": "1"}
                                 for k in range(per_span)]}
             for name, (w, h, codecs) in RUNGS.items()}
    return {"index": index, "ladder": {"rungs": rungs, "audio": True, "hdr": None}, "hls_segment_s": 6}


def lines(text: str) -> list[str]:
    return text.splitlines()


def uris(text: str) -> list[str]:
    return [ln for ln in lines(text) if ln and not ln.startswith("#")]


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")  # anonymous client; signing is local
    app = playback_app(tmp_path)
    app.rt.jobs.create(GROWING, {"owner": "c1", "kind": "video", "status": "rendering",
                                 "timings": {"playable_at": dt.datetime.now(dt.UTC)}})
    return app


def store_result(rt, index: int) -> None:
    rt.blobs.put_if_absent(BUCKET, result_name(GROWING, "render", index), json.dumps(result(index)).encode(),
                           "application/json")


def test_event_playlists_carry_no_endlist_and_vod_ones_do():
    segs = [{"uri": "0000-00.ts", "duration_s": 6.0}]
    growing, whole = hls.media_playlist(segs, 6, ended=False), hls.media_playlist(segs, 6)
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in lines(growing) and "#EXT-X-ENDLIST" not in growing
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in lines(whole) and lines(whole)[-1] == "#EXT-X-ENDLIST"


def test_the_media_playlists_grow_with_the_finished_prefix_then_turn_vod(app):
    rt, c = app.rt, app.test_client()
    token = playback_token.mint(KEYS, GROWING, int(time.time()), 3600)[0]
    assert c.get(f"/v1/play/{token}/master.m3u8").status_code == 404  # playable_at set but nothing stored: no crash
    store_result(rt, 0)
    store_result(rt, 2)  # span 1 is not in yet: span 2 waits for it (a player plays in order)

    master = c.get(f"/v1/play/{token}/master.m3u8")
    assert master.status_code == 200 and master.headers["Cache-Control"] == "private, no-cache"
    assert uris(master.text) == ["360p/index.m3u8", "180p/index.m3u8"]  # the top rung first

    first = c.get(f"/v1/play/{token}/360p/index.m3u8")
    assert first.status_code == 200 and first.headers["Cache-Control"] == "private, no-cache"
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in lines(first.text) and "#EXT-X-ENDLIST" not in first.text
    assert [u.split("?")[0].rsplit("/", 2)[-2:] for u in uris(first.text)] == [["360p", "0000-00.ts"], ["360p", "0000-01.ts"]]

    store_result(rt, 1)
    grown = c.get(f"/v1/play/{token}/360p/index.m3u8").text
    assert len(uris(grown)) == 6
    assert lines(grown)[:len(lines(first.text))] == lines(first.text)  # an EVENT playlist only grows at its end

    # render's fan-in: the stored VOD playlists on the job, then the results deleted
    stored = hls.media_playlist([{"uri": hls.media_segment_name(i, f"360p/{k:02d}.ts"), "duration_s": 6.0}
                                 for i in range(3) for k in range(2)], 6)
    ref = rt.blobs.put_if_absent(BUCKET, f"renditions/{GROWING}/hls/360p/index.m3u8", stored.encode(), "text/plain")
    rt.jobs.record(GROWING, {"video": {"hls": {"master": {"uri": ref.uri}}, "ladder": [
        {"name": "360p", "playlist": {"uri": ref.uri, "generation": ref.generation}}]}})
    rt.blobs.delete_prefix(BUCKET, f"work/{GROWING}/")
    final = c.get(f"/v1/play/{token}/360p/index.m3u8")
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in lines(final.text) and lines(final.text)[-1] == "#EXT-X-ENDLIST"
    assert uris(final.text) == uris(grown)  # the same segments, the same signed URLs
    assert final.headers["Cache-Control"].startswith("private, max-age=")


def test_beside_the_analysis_the_picture_segments_after_the_ladder_are_not_played(app):
    """Render beside the analysis stores n ladder results (0..n-1), then n picture results (n..2n-1,
    no ladder): the growing playlist is the ladder's prefix, never a picture segment."""
    rt, c = app.rt, app.test_client()
    token = playback_token.mint(KEYS, GROWING, int(time.time()), 3600)[0]
    for i in range(2):
        store_result(rt, i)
    pictures = {"index": 2, "span": 0, "ladder": None, "pictures": True, "stills": [], "poster": None, "tiles": None}
    rt.blobs.put_if_absent(BUCKET, result_name(GROWING, "render", 2), json.dumps(pictures).encode(), "application/json")
    grown = c.get(f"/v1/play/{token}/360p/index.m3u8")
    assert grown.status_code == 200 and len(uris(grown.text)) == 4


def test_a_job_that_ended_before_its_playlists_were_stored_plays_no_more(app):
    store_result(app.rt, 0)
    token = playback_token.mint(KEYS, GROWING, int(time.time()), 3600)[0]
    assert app.test_client().get(f"/v1/play/{token}/360p/index.m3u8").status_code == 200
    app.rt.jobs.record(GROWING, {"status": "failed"})
    assert app.test_client().get(f"/v1/play/{token}/360p/index.m3u8").status_code == 404


def test_a_playback_url_is_minted_once_playable_and_the_job_view_carries_it(app):
    rt = app.rt
    rt.jobs.create("notyet0123456789", {"owner": "c1", "kind": "video", "status": "rendering"})
    early = rt.jobs.get("notyet0123456789")
    assert job_view_playback(rt, early, "https://api.example.test") is None
    assert "timings" not in public_job(rt, early, with_urls=False)

    job = rt.jobs.get(GROWING)
    play = job_view_playback(rt, job, "https://api.example.test")
    assert play is not None and play["playback_url"].startswith("https://api.example.test/v1/play/")
    token = play["playback_url"].split("/v1/play/")[1].split("/")[0]
    assert playback_token.check(KEYS, token, int(time.time())).job_id == GROWING
    assert set(public_job(rt, job, with_urls=False)["timings"]) == {"playable_at"}


# --- the `playable` event ------------------------------------------------------------------------------------

SOURCE = {"uri": "gs://mediarelay-originals/originals/v", "bucket": "mediarelay-originals", "name": "originals/v",
          "generation": "1", "content_type": "video/mp4", "size": 10}


class Segments:
    """A stage's two endpoints with render's own `segment_stored` hook (the stage's media work is steered)."""

    def __init__(self, count: int = 3):
        self.rt = memory_runtime()
        self.count = count
        app, _ = create_service_app("analyze", runtime=self.rt)
        spans = [{"index": i, "start_s": 10.0 * i, "end_s": 10.0 * (i + 1)} for i in range(count)]

        def merge(rt, job, results):
            payload = {"job_id": job["job_id"], "kind": "video", "source": SOURCE,
                       "analysis": {"format": "mp4", "width": 4, "height": 3}}
            return StageResult(publish=[("media-analyzed", payload)], job_fields={"analysis": payload["analysis"]})

        def handle(rt, job, msg):
            return StageResult(fan_out=FanOut(segment_messages(msg, "analyze", spans, [{}] * count), {}, merge))

        register_stage(app, self.rt, "analyze", handle)
        register_segments(app, self.rt, "analyze", lambda rt, job, seg: {"index": seg["index"]}, merge, stored=segment_stored)
        self.client = app.test_client()

    def start(self, job_id: str) -> list[dict]:
        self.rt.jobs.create(job_id, {"kind": "video", "source": SOURCE})
        msg = {"job_id": job_id, "kind": "video", "source": SOURCE, "submitted_at": "2026-01-01T00:00:00Z"}
        assert self.client.post("/push", json=envelope(msg, "media-ingested.v1")).status_code == 204
        return [m.payload for m in self.rt.bus.on("video-segments-analyze", job_id)]

    def deliver(self, seg: dict) -> int:
        return self.client.post(SEGMENTS_PATH, json=envelope(seg, "video-segment.v1")).status_code

    def playable_events(self, job_id: str) -> list[dict]:
        return [m.payload for m in self.rt.bus.on("media-events", job_id) if m.payload["status"] == "playable"]


def test_segment_0_stored_publishes_one_playable_event_whatever_the_order_and_redeliveries():
    segs = Segments()
    job_id = "play00000001"
    messages = segs.start(job_id)
    assert segs.deliver(messages[2]) == 204 and segs.playable_events(job_id) == []  # a later span is not playable
    for seg in (messages[0], messages[0], messages[1]):
        assert segs.deliver(seg) == 204
    [event] = segs.playable_events(job_id)  # the bus checked it against media-events.v3
    assert event["id"] == f"{job_id}/playable" and event["type"] == "mediarelay.job.playable"
    assert event["links"]["playback"] == f"https://api.example.test/v1/jobs/{job_id}/playback"
    job = segs.rt.jobs.get(job_id)
    assert event["occurred_at"] == job["timings"]["playable_at"].isoformat().replace("+00:00", "Z")
    assert job["playable"]["published_at"] and job["playable"]["message_id"]


def test_notify_publishes_playable_before_the_final_event_when_no_segment_did_and_waits_for_a_fresh_claim():
    rt = memory_runtime()
    rt.jobs.create("one00000001", {"kind": "video", "status": "notifying"})
    assert publish_playable(rt, "one00000001", wait=True) is True
    assert publish_playable(rt, "one00000001", wait=True) is False  # out already: nothing more
    assert len(rt.bus.on("media-events", "one00000001")) == 1

    rt.jobs.create("busy00000001", {"kind": "video", "status": "rendering"})
    claim, _ = rt.jobs.claim_playable("busy00000001")  # a segment delivery claimed it and is publishing
    assert claim is jobstate.PlayableClaim.CLAIMED
    assert publish_playable(rt, "busy00000001") is False  # another segment delivery: no second copy
    with pytest.raises(TransientError):
        publish_playable(rt, "busy00000001", wait=True)  # notify: its final event must come after playable


def test_a_claim_whose_publisher_died_is_taken_again_after_its_lease_keeping_the_first_time():
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    job = {"job_id": "j", "status": "rendering", "stages": {}}
    claim, updates = jobstate.claim_playable(job, t0)
    assert claim is jobstate.PlayableClaim.CLAIMED and updates["timings.playable_at"] == t0
    job = jobstate.apply(job, updates)
    assert jobstate.claim_playable(job, t0 + dt.timedelta(seconds=5))[0] is jobstate.PlayableClaim.BUSY
    claim, again = jobstate.claim_playable(job, t0 + jobstate.FINAL_EVENT_LEASE + dt.timedelta(seconds=1))
    assert claim is jobstate.PlayableClaim.CLAIMED and "timings.playable_at" not in again
    published = jobstate.apply(job, jobstate.playable_published("m1", t0))
    assert jobstate.claim_playable(published, t0 + dt.timedelta(hours=1))[0] is jobstate.PlayableClaim.NO
    assert jobstate.claim_playable({**job, "status": "failed"}, t0)[0] is jobstate.PlayableClaim.NO


def test_completing_a_job_records_ready_at():
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    job = {"job_id": "j", "status": "notifying", "stages": {}}
    done, _ = jobstate.claim_final(job, "completed", {}, t0)
    assert done["timings"]["ready_at"] == t0
    failed, _ = jobstate.claim_final(job, "failed", {}, t0)
    assert "ready_at" not in (failed.get("timings") or {})


def test_a_reload_racing_the_fan_in_gets_the_stored_playlist_not_a_shorter_one(app, monkeypatch):
    # The route read the job before render's hand-off named the stored playlists; the fan-in then
    # deleted the results: the prefix it reads is empty. It must not answer a shrunk (or no) playlist.
    rt = app.rt
    store_result(rt, 0)
    before = rt.jobs.get(GROWING)
    stored = hls.media_playlist([{"uri": "0000-00.ts", "duration_s": 6.0}, {"uri": "0000-01.ts", "duration_s": 6.0}], 6)
    ref = rt.blobs.put_if_absent(BUCKET, f"renditions/{GROWING}/hls/360p/index.m3u8", stored.encode(), "text/plain")
    rt.jobs.record(GROWING, {"video": {"hls": {"master": {"uri": ref.uri}}, "ladder": [
        {"name": "360p", "playlist": {"uri": ref.uri, "generation": ref.generation}}]}})
    rt.blobs.delete_prefix(BUCKET, f"work/{GROWING}/")
    reads = iter([before])
    real_get = rt.jobs.get
    monkeypatch.setattr(rt.jobs, "get", lambda job_id: next(reads, None) or real_get(job_id))
    token = playback_token.mint(KEYS, GROWING, int(time.time()), 3600)[0]
    media = app.test_client().get(f"/v1/play/{token}/360p/index.m3u8")
    assert media.status_code == 200 and media.text.rstrip().endswith("#EXT-X-ENDLIST") and len(uris(media.text)) == 2
