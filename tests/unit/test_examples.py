"""The runnable examples in examples/ run as a newcomer would run them, on a clip made here."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import pytest

from localcloud import samples

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """12 s with sound, a keyframe every 2 s: more than one span at a 5 s target."""
    return samples.long_video_mp4(tmp_path_factory.mktemp("examples") / "clip.mp4", seconds=12.0, size=(320, 180))


def _run(script: str, *args) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / script), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_probe_tells_type_and_video_facts(clip, tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(samples.jpeg_bytes(samples.photo("rocket")))
    out = _run("probe.py", clip, photo)
    video, image = (json.loads(doc) for doc in out.replace("}\n{", "}\n\x00{").split("\n\x00"))
    assert video["kind"] == "video" and abs(video["video"]["container"]["duration_s"] - 12.0) < 0.1
    assert video["video"]["audio"] and video["video"]["video"]["coded_width"] == 320
    assert image["kind"] == "image" and image["declared"]["width"] == samples.photo("rocket").width


def test_plan_spans_starts_each_span_on_a_keyframe(clip):
    out = _run("plan_spans.py", clip, 5)
    spans = [line for line in out.splitlines() if line.strip().startswith("span ")]
    assert len(spans) == 2, out  # keyframes every 2 s: boundary at the first keyframe at/after 5 s -> 6 s; the 12 s tail
    assert "0.000 ->    6.000" in spans[0]


def test_encode_span_writes_each_rung_s_media_segments(clip, tmp_path):
    out = _run("encode_span.py", clip, tmp_path, 0, 6)
    assert '"audio": true' in out
    rungs = sorted(p.name for p in tmp_path.iterdir())
    assert rungs and all(list((tmp_path / r).glob("*.ts")) for r in rungs), out
    with av.open(str(sorted((tmp_path / rungs[0]).glob("*.ts"))[0])) as ts:
        assert {s.type for s in ts.streams} == {"video", "audio"}
