"""Render beside analysis: the ladder fans out on analyze's plan while the analysis runs, and the one
fan-in joins the ladder with the analysis's pictures (services/render/video_stage.py `beside`, the
fan-out and claim of services/pipeline/handon.py), in-process over the in-memory store, bus and blobs.
The real planning of both stages' segment messages and the real join rule; the media work and the
merges are steered by the test (their media is tested in test_render_spans.py, test_segments.py)."""
from __future__ import annotations

import datetime as dt
import random
import threading

import pytest

from services.analyze.video_stage import planned
from services.ops import sweep as sweeping
from services.pipeline.handon import SEGMENTS_PATH, FanOut, StageResult, segment_messages
from services.pipeline.push import register_segments, register_stage
from services.pipeline.web import create_service_app
from services.render.presets import load
from services.render.video_stage import beside, on_the_clock, spans_of
from services.render.work import RenderOptions
from tests.support.fakes import memory_runtime
from tests.support.pushes import envelope

SOURCE = {"uri": "gs://mediarelay-originals/originals/v", "bucket": "mediarelay-originals", "name": "originals/v",
          "generation": "1", "content_type": "video/mp4", "size": 10}
N = 3
SPANS = [{"index": i, "start_s": 10.0 * i, "end_s": 10.0 * (i + 1)} for i in range(N)]
FACTS = {"format": "mp4", "width": 640, "height": 360, "audio": [], "start_s": 0.0, "duration_s": 30.0}
SHOTS = [{"start_ms": 0, "end_ms": 12000, "keyframe_ms": 5000, "visual_score": 0.4, "transition": None},
         {"start_ms": 12000, "end_ms": 30000, "keyframe_ms": 21000, "visual_score": 0.9,
          "transition": {"kind": "cut", "start_ms": 12000, "end_ms": 12000}}]


class Beside:
    """analyze and render, each with its stage input and segment endpoints; the test is Pub/Sub."""

    def __init__(self):
        self.rt = memory_runtime()
        self.opts = RenderOptions.build(self.rt.settings, load(self.rt.settings.render_presets_file))
        self.work_calls: dict[str, list] = {"analyze": [], "render": []}
        self.merges: dict[str, int] = {"analyze": 0, "render": 0}
        self.crash_render_merge = False
        self.lock = threading.Lock()
        self.clients = {}
        for stage, handle, work, merge in (("analyze", self.analyze, self.work, self.merge_analysis),
                                           ("render", self.render, self.work, self.merge_render)):
            app, _ = create_service_app(stage, runtime=self.rt)
            register_stage(app, self.rt, stage, handle)
            register_segments(app, self.rt, stage, work, merge)
            self.clients[stage] = app.test_client()

    # --- the stages: real segment planning, steered work ------------------------------------
    def analyze(self, rt, job, msg):
        plan = {"facts": FACTS, "segments": SPANS}
        messages = segment_messages(msg, "analyze", SPANS, [{"overlap_s": 1.0}] * N)
        return StageResult(fan_out=FanOut(messages, {"plan": plan}, self.merge_analysis,
                                          publish=[("media-analyzed", planned(msg, plan))]))

    def render(self, rt, job, msg):
        msg["analysis"] = on_the_clock(msg["analysis"])
        return StageResult(fan_out=beside(self.opts, job, msg, spans_of(msg["analysis"]), self.merge_render))

    def work(self, rt, job, seg):
        with self.lock:
            self.work_calls[seg["stage"]].append(seg["index"])
        return {"index": seg["index"], **({"task": seg["params"]["task"], "span": seg["params"]["span"]}
                                         if seg["stage"] == "render" else {})}

    def merge_analysis(self, rt, job, results):
        self.merges["analyze"] += 1
        analysis = {**FACTS, "shots": SHOTS, "segments": SPANS}
        payload = {"job_id": job["job_id"], "kind": "video", "source": SOURCE, "analysis": analysis}
        return StageResult(publish=[("media-analyzed", payload)], job_fields={"analysis": analysis})

    def merge_render(self, rt, job, results):
        self.merges["render"] += 1
        if self.crash_render_merge:
            self.crash_render_merge = False
            raise RuntimeError("the fan-in's process failed")
        tasks = [(r["task"], r["span"]) for r in results]
        assert tasks == [("ladder", i) for i in range(N)] + [("pictures", i) for i in range(N)]
        assert "shots" in job["analysis"]  # the join: the analysis is on the job
        payload = {"job_id": job["job_id"], "kind": "video", "source": SOURCE, "analysis": job["analysis"],
                   "renditions": []}
        return StageResult(publish=[("media-rendered", payload)], job_fields={"renditions": []})

    # --- Pub/Sub's part ---------------------------------------------------------------------
    def seed(self, job_id="job-00000001"):
        self.rt.jobs.create(job_id, {"kind": "video", "source": SOURCE})
        return job_id

    def start(self, job_id):
        msg = {"job_id": job_id, "kind": "video", "source": SOURCE, "submitted_at": "2026-01-01T00:00:00Z"}
        assert self.clients["analyze"].post("/push", json=envelope(msg, "media-ingested.v1")).status_code == 204

    def to_render(self, msg):
        return self.clients["render"].post("/push", json=envelope(msg, "media-analyzed.v6"))

    def deliver(self, seg):
        return self.clients[seg["stage"]].post(SEGMENTS_PATH, json=envelope(seg, "video-segment.v1"))

    def segments(self, stage, job_id, task=None):
        return [m.payload for m in self.rt.bus.on(f"video-segments-{stage}", job_id)
                if task is None or m.payload["params"].get("task") == task]

    def analyzed(self, job_id, planned_only):
        return [m.payload for m in self.rt.bus.on("media-analyzed", job_id) if bool(m.payload.get("planned")) == planned_only]

    def rendered(self, job_id):
        return self.rt.bus.on("media-rendered", job_id)

    def job(self, job_id):
        return self.rt.jobs.get(job_id)


@pytest.fixture
def b():
    return Beside()


def _ladder_started(b, job_id):
    b.start(job_id)
    [plan] = b.analyzed(job_id, planned_only=True)
    assert b.to_render(plan).status_code == 204
    return plan


def test_the_ladder_fans_out_on_the_plan_while_the_analysis_runs(b):
    job_id = b.seed()
    plan = _ladder_started(b, job_id)
    assert plan["analysis"]["segments"] == SPANS and "shots" not in plan["analysis"]
    ladder = b.segments("render", job_id)
    assert [s["index"] for s in ladder] == [0, 1, 2] and {s["count"] for s in ladder} == {2 * N}
    assert {s["params"]["task"] for s in ladder} == {"ladder"} and ladder[0]["params"]["rungs"]
    assert len(b.segments("analyze", job_id)) == N and b.analyzed(job_id, planned_only=False) == []
    job = b.job(job_id)
    # Both stages run; the status names the earliest still working.
    assert job["stages"]["analyze"]["state"] == "running" and job["stages"]["render"]["state"] == "running"
    assert job["status"] == "analyzing"
    for seg in b.segments("render", job_id):  # the ladder can finish before the analysis does: no hand-on yet
        assert b.deliver(seg).status_code == 204
    assert b.rendered(job_id) == [] and b.merges["render"] == 0


def test_a_stage_input_without_a_plan_or_hand_off_before_it_is_still_out_of_order(b):
    job_id = b.seed()
    early = planned({"job_id": job_id, "kind": "video", "source": SOURCE}, {"facts": FACTS, "segments": SPANS})
    assert b.to_render(early).status_code == 204  # analyze has not fanned out: nothing to be beside
    assert b.segments("render", job_id) == [] and b.job(job_id)["stages"]["render"]["state"] == "pending"
    dead = b.rt.bus.on(b.rt.topology.subscription_for_service("render").dead_letter_topic)
    assert [m.attributes["error_class"] for m in dead] == ["bad-message"]


def _analysis_done(b, job_id):
    for seg in b.segments("analyze", job_id):
        assert b.deliver(seg).status_code == 204
    [analysis] = b.analyzed(job_id, planned_only=False)
    return analysis


@pytest.mark.parametrize("ladder_first", [True, False], ids=["ladder-first", "analysis-first"])
def test_whichever_finishes_second_joins_exactly_once(b, ladder_first):
    job_id = b.seed()
    _ladder_started(b, job_id)
    ladder = b.segments("render", job_id)
    if ladder_first:
        for seg in ladder:
            b.deliver(seg)
    analysis = _analysis_done(b, job_id)
    assert b.job(job_id)["status"] == "analyzing"  # handed off, render's input not delivered yet
    assert b.to_render(analysis).status_code == 204
    assert b.job(job_id)["status"] == "rendering"
    pictures = b.segments("render", job_id, "pictures")
    assert [s["index"] for s in pictures] == [3, 4, 5] and len(b.segments("render", job_id, "ladder")) == N  # none twice
    assert [len(s["params"]["moments"]) > 0 for s in pictures] == [True, True, True]
    for seg in pictures + ([] if ladder_first else ladder):
        assert b.rendered(job_id) == []
        assert b.deliver(seg).status_code == 204
    assert len(b.rendered(job_id)) == 1 and b.merges["render"] == 1
    job = b.job(job_id)
    assert job["stages"]["render"]["state"] == "done" and b.rt.jobs.segments_done(job_id, "render") == {}


def test_every_message_of_both_stages_delivered_twice_in_any_order_hands_on_once(b):
    job_id = b.seed()
    b.start(job_id)
    rng = random.Random(11)
    delivered: set[str] = set()
    # Pub/Sub: everything published so far, each twice, shuffled, until nothing new appears.
    while True:
        pending = [m for m in b.rt.bus.messages if m.message_id not in delivered
                   and m.topic in ("media-analyzed", "video-segments-analyze", "video-segments-render")]
        if not pending:
            break
        batch = pending * 2
        rng.shuffle(batch)
        for m in batch:
            delivered.add(m.message_id)
            resp = b.to_render(m.payload) if m.topic == "media-analyzed" else b.deliver(m.payload)
            assert resp.status_code == 204
    assert len(b.rendered(job_id)) == 1 and b.merges == {"analyze": 1, "render": 1}
    assert sorted(set(b.work_calls["render"])) == list(range(2 * N))
    assert b.job(job_id)["stages"]["render"]["state"] == "done"


def test_a_fan_in_that_fails_between_claim_and_hand_off_is_joined_by_the_redelivery(b):
    job_id = b.seed()
    _ladder_started(b, job_id)
    for seg in b.segments("render", job_id):
        b.deliver(seg)
    b.to_render(_analysis_done(b, job_id))
    *pictures, last = b.segments("render", job_id, "pictures")
    for seg in pictures:
        b.deliver(seg)
    b.crash_render_merge = True
    assert b.deliver(last).status_code == 503  # claimed, merge failed: the claim is given back
    assert b.rendered(job_id) == []
    assert b.deliver(last).status_code == 204  # Pub/Sub redelivers
    assert len(b.rendered(job_id)) == 1 and b.merges["render"] == 2


def test_the_analysis_arriving_before_the_plan_fans_out_everything_and_the_late_plan_adds_nothing(b):
    job_id = b.seed()
    b.start(job_id)
    analysis = _analysis_done(b, job_id)  # the plan's delivery is delayed (a retry backoff)
    assert b.to_render(analysis).status_code == 204
    assert [s["index"] for s in b.segments("render", job_id)] == list(range(2 * N))
    [plan] = b.analyzed(job_id, planned_only=True)
    assert b.to_render(plan).status_code == 204
    assert len(b.segments("render", job_id)) == 2 * N  # nothing published twice
    for seg in b.segments("render", job_id):
        b.deliver(seg)
    assert len(b.rendered(job_id)) == 1


def test_a_lost_plan_and_lost_segments_are_re_driven_by_the_sweep(b):
    job_id = b.seed()
    b.start(job_id)  # the plan message is lost (a restart of the bus)
    for seg in b.segments("analyze", job_id)[:2]:
        b.deliver(seg)  # and one analysis segment with it
    b.rt.jobs._write(job_id, {"updated_at": dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)})
    rows = sweeping.sweep(b.rt, older_than=dt.timedelta(seconds=-1))
    assert [(r["stage"], r["action"]) for r in rows] == [("analyze", "re-driven")]
    redriven = b.rt.bus.on("media-ingested", job_id)[-1].payload
    assert b.clients["analyze"].post("/push", json=envelope(redriven, "media-ingested.v1")).status_code == 204
    plans = b.analyzed(job_id, planned_only=True)
    assert len(plans) == 2  # the plan sent again with the re-driven fan-out
    assert b.to_render(plans[-1]).status_code == 204
    for seg in b.segments("analyze", job_id)[N:] + b.segments("render", job_id):
        b.deliver(seg)  # the re-published analysis segment, the ladder
    [analysis] = b.analyzed(job_id, planned_only=False)
    # The analysis reaches render, then the bus loses its picture segments: the sweep re-drives render.
    assert b.to_render(analysis).status_code == 204
    b.rt.jobs._write(job_id, {"updated_at": dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)})
    before = len(b.segments("render", job_id, "pictures"))
    rows = sweeping.sweep(b.rt, older_than=dt.timedelta(seconds=-1))
    assert [(r["stage"], r["action"]) for r in rows] == [("render", "re-driven")]
    assert b.to_render(b.rt.bus.on("media-analyzed", job_id)[-1].payload).status_code == 204
    republished = b.segments("render", job_id)[-N:]
    assert len(b.segments("render", job_id, "pictures")) == before + N
    assert {s["params"]["task"] for s in republished} == {"pictures"}  # the ladder's are recorded: not again
    for seg in republished:
        b.deliver(seg)
    assert len(b.rendered(job_id)) == 1 and b.job(job_id)["stages"]["render"]["state"] == "done"


def test_the_sweep_leaves_alone_a_job_whose_ladder_keeps_finishing_while_its_analysis_is_slow(b):
    job_id = b.seed()
    _ladder_started(b, job_id)
    b.deliver(b.segments("render", job_id)[0])  # the ladder progresses; no analysis segment has finished
    b.rt.jobs._write(job_id, {"updated_at": dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)})
    assert sweeping.sweep(b.rt, older_than=dt.timedelta(minutes=30)) == []
    rows = sweeping.sweep(b.rt, older_than=dt.timedelta(seconds=-1))  # no record recent: re-driven, analyze first
    assert [(r["stage"], r["action"]) for r in rows] == [("analyze", "re-driven")]
