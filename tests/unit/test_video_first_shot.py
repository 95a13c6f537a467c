"""The first shot of a video begins with the video, not with a transition: its `transition` is null.

Issue 21: every video's first shot said `transition: {kind: "cut"}` at its own start, a cut from nothing.
Checked on the whole-file pass and on the merge of segments (the path long videos take), and against the
message schema analyze publishes (media-analyzed.v5; v4 required an object there, so old v4 readers keep
getting v4-valid messages only from v4 publishers).
"""
from __future__ import annotations

import json

import pytest

from services.analyze.segmented import analyze_span, file_facts, merge
from services.analyze.video import analyze_video
from services.common.config import REPO_ROOT
from services.common.errors import BadMessage
from services.media.spans import Span
from services.media.video import VideoFile, VideoLimits
from services.pipeline.schemas import validate
from services.pipeline.topology import load_topology
from tests.support.videoset import ClipSpec, ShotSpec, write_clip

SIZE = (320, 180)
CLIP = ClipSpec("first-shot", [ShotSpec("astronaut", 36), ShotSpec("coffee", 36),
                               ShotSpec("rocket", 36, join="dissolve", mix=12)], SIZE)
LIMITS = VideoLimits(600, 36000)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("first-shot") / "clip.mp4"
    write_clip(CLIP, path, SIZE, keyframes={0, 48})
    return str(path)


def _segmented(path: str) -> dict:
    with VideoFile(path) as video:
        facts = file_facts(video, ".mp4")
        end = video.keyframe_times()[1]
    spans = [Span(0, 0.0, 2.0), Span(1, 2.0, round(end, 6))]
    return merge(facts, [json.loads(json.dumps(analyze_span(path, s.start_s, s.end_s, 1.0, LIMITS))) for s in spans])


def test_the_first_shot_has_no_transition_and_the_others_keep_theirs(clip):
    for analysis in (analyze_video(clip, ".mp4", LIMITS.max_seconds, LIMITS.max_frames), _segmented(clip)):
        first, *rest = analysis["shots"]
        assert first["start_ms"] == 0 and first["transition"] is None
        assert [s["transition"]["kind"] for s in rest] == ["cut", "dissolve"]


def test_the_message_analyze_publishes_carries_it_in_a_new_schema_version(clip):
    analysis = analyze_video(clip, ".mp4", LIMITS.max_seconds, LIMITS.max_frames)
    msg = {"job_id": "job-00000001", "kind": "video", "analysis": analysis,
           "source": {"uri": "gs://bkt/o", "bucket": "bkt", "name": "o", "generation": "1", "content_type": "video/mp4",
                      "size": 1}}
    schemas = REPO_ROOT / "schemas"
    published = load_topology(schemas / "topology.json").schema_of_topic("media-analyzed")
    assert published in ("media-analyzed.v5", "media-analyzed.v6")  # v6 added `planned` (render beside analysis)
    validate(schemas, published, msg)
    validate(schemas, "media-analyzed.v5", msg)
    with pytest.raises(BadMessage, match="transition"):  # why a new version: a v4 reader would refuse it
        validate(schemas, "media-analyzed.v4", msg)
