"""Issue 21 end to end: a truncated MP4 ends failed with where its data stops, and a whole video's event says
its first shot begins with no transition (published by analyze as media-analyzed.v5, read by render)."""
from __future__ import annotations

import pytest

from tests.cloud.conftest import wait_for_status
from tests.support.videoset import write_clip
from tests.unit.test_video_truncation import CLIP, SECONDS, SIZE, _faststart


def _upload(http, ingest_url: str, data: bytes, name: str) -> str:
    resp = http.post(f"{ingest_url}/v1/uploads", files={"file": (name, data, "application/octet-stream")}, timeout=30)
    assert resp.status_code == 202, resp.text
    return resp.json()["job_id"]


@pytest.fixture(scope="module")
def whole_mp4(tmp_path_factory) -> bytes:
    root = tmp_path_factory.mktemp("hardening")
    write_clip(CLIP, root / "plain.mp4", SIZE, keyframes_every_s=1.0)
    _faststart(root / "plain.mp4", root / "whole.mp4")
    return (root / "whole.mp4").read_bytes()


def test_a_truncated_mp4_fails_corrupt_media_saying_where_its_data_ends(http, ingest_url, events, whole_mp4):
    job_id = _upload(http, ingest_url, whole_mp4[:len(whole_mp4) // 2], "cut.mp4")
    [event] = events.wait_for_jobs([job_id], timeout=90)[job_id]
    assert event["status"] == "failed" and event["error"]["stage"] == "analyze"
    assert event["error"]["error_class"] == "corrupt-media"
    reason = event["error"]["reason"]
    assert "truncated" in reason and f"of the {SECONDS:.1f} s" in reason, reason
    doc = wait_for_status(http, ingest_url, job_id)
    assert doc["status"] == "failed" and doc["error"]["reason"] == reason
    assert doc["stages"]["render"]["state"] == "pending"  # nothing rendered from half a file


def test_a_whole_video_completes_and_its_first_shot_has_no_transition(http, ingest_url, events, whole_mp4):
    job_id = _upload(http, ingest_url, whole_mp4, "whole.mp4")
    [event] = events.wait_for_jobs([job_id], timeout=180)[job_id]
    assert event["status"] == "completed", event.get("error")
    first, *rest = event["analysis"]["shots"]
    assert first["transition"] is None and rest and all(s["transition"]["kind"] for s in rest)
    assert event["analysis"]["duration_s"] == pytest.approx(SECONDS, abs=0.05)
