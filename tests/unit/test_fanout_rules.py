"""Fan-out / fan-in of segments (services/pipeline/handon.py), in-process: the real stage and
segment plumbing over the in-memory store, bus and blobs (compare-and-set kept), with work
and merge functions the test steers. The media work itself is tested in test_render_ladder.py,
test_analyze_segments.py and end to end in test_segments.py."""
from __future__ import annotations

import datetime as dt
import random
import threading

import pytest

from services.common.errors import CorruptMedia, TransientError
from services.ops import jobs as job_ops
from services.ops import sweep as sweeping
from services.pipeline import jobstate
from services.pipeline.handon import (
    SEGMENTS_PATH,
    FanOut,
    StageResult,
    ensure_job_active,
    result_name,
    segment_messages,
    segment_prefix,
)
from services.pipeline.push import register_segments, register_stage
from services.pipeline.web import create_service_app
from tests.support.fakes import memory_runtime
from tests.support.pushes import envelope

SOURCE = {"uri": "gs://mediarelay-originals/originals/v", "bucket": "mediarelay-originals", "name": "originals/v",
          "generation": "1", "content_type": "video/mp4", "size": 10}
ANALYSIS = {"format": "mp4", "width": 4, "height": 3}


class FanHarness:
    """analyze's two endpoints (stage input, segments) with steerable work and merge."""

    def __init__(self, count: int = 4):
        self.rt = memory_runtime()
        self.count = count
        self.work_calls: list[int] = []
        self.merge_calls = 0
        self.fail: dict[int, Exception] = {}  # index -> raised by the work, once
        self.during = None  # called inside the work: (runtime, segment message)
        self.lock = threading.Lock()
        app, _ = create_service_app("analyze", runtime=self.rt)
        register_stage(app, self.rt, "analyze", self.handle)
        register_segments(app, self.rt, "analyze", self.work, lambda rt, job, results: self.merge(rt, job, results))
        self.client = app.test_client()

    def spans(self):
        return [{"index": i, "start_s": 10.0 * i, "end_s": 10.0 * (i + 1)} for i in range(self.count)]

    def handle(self, rt, job, msg):
        messages = segment_messages(msg, "analyze", self.spans(), [{"overlap_s": 1.0}] * self.count)
        return StageResult(fan_out=FanOut(messages, {"plan": {"segments": self.spans()}}, self.merge))

    def work(self, rt, job, seg):
        with self.lock:
            self.work_calls.append(seg["index"])
            exc = self.fail.pop(seg["index"], None)
        if exc is not None:
            raise exc
        if self.during:
            self.during(rt, seg)
        return {"index": seg["index"], "shots": [seg["start_s"]]}

    def merge(self, rt, job, results):
        with self.lock:
            self.merge_calls += 1
        assert [r["index"] for r in results] == list(range(self.count))
        payload = {"job_id": job["job_id"], "kind": "video", "source": SOURCE,
                   "analysis": {**ANALYSIS, "shots_seen": [r["shots"][0] for r in results]}}
        return StageResult(publish=[("media-analyzed", payload)], job_fields={"analysis": payload["analysis"]})

    # --- Pub/Sub's part -------------------------------------------------------------------
    def seed(self, job_id="job-00000001"):
        self.rt.jobs.create(job_id, {"kind": "video", "source": SOURCE})
        return job_id

    def start(self, job_id):
        msg = {"job_id": job_id, "kind": "video", "source": SOURCE, "submitted_at": "2026-01-01T00:00:00Z"}
        return self.client.post("/push", json=envelope(msg, "media-ingested.v1"))

    def segments_published(self, job_id):
        return [m.payload for m in self.rt.bus.on("video-segments-analyze", job_id)]

    def deliver(self, seg, attempt=None):
        return self.client.post(SEGMENTS_PATH, json=envelope(seg, "video-segment.v1", delivery_attempt=attempt))

    def analyzed(self, job_id):
        return self.rt.bus.on("media-analyzed", job_id)

    def job(self, job_id):
        return self.rt.jobs.get(job_id)


@pytest.fixture
def fan():
    return FanHarness()


def test_a_long_video_fans_out_one_message_per_segment_and_the_stage_waits(fan):
    job_id = fan.seed()
    assert fan.start(job_id).status_code == 204
    segs = fan.segments_published(job_id)
    assert [s["index"] for s in segs] == [0, 1, 2, 3] and {s["count"] for s in segs} == {4}
    assert [(s["start_s"], s["end_s"]) for s in segs] == [(0, 10), (10, 20), (20, 30), (30, 40)]
    job = fan.job(job_id)
    assert job["status"] == "analyzing" and job["stages"]["analyze"]["state"] == "running"
    assert fan.rt.jobs.segments_done(job_id, "analyze") == {} and not fan.analyzed(job_id)


def test_every_segment_delivered_twice_in_any_order_fans_in_once(fan):
    job_id = fan.seed()
    fan.start(job_id)
    segs = fan.segments_published(job_id) * 2
    random.Random(7).shuffle(segs)
    for seg in segs:
        assert fan.deliver(seg).status_code == 204
    assert sorted(fan.work_calls) == [0, 1, 2, 3]  # a redelivery finds its result stored: no work twice
    assert fan.merge_calls == 1 and len(fan.analyzed(job_id)) == 1
    assert fan.analyzed(job_id)[0].payload["analysis"]["shots_seen"] == [0, 10, 20, 30]  # merged in order
    job = fan.job(job_id)
    assert job["stages"]["analyze"]["state"] == "done" and job["status"] == "analyzing"


def test_finishing_a_segment_writes_no_shared_document_until_the_set_is_whole(fan):
    # Hundreds of segments finish together: a write each to the job document would contend on
    # one document (about one write a second in Firestore). Each writes its own record instead.
    job_id = fan.seed()
    fan.start(job_id)
    segs = fan.segments_published(job_id)
    version = fan.rt.jobs.docs[job_id][1]
    for seg in segs[:3]:
        assert fan.deliver(seg).status_code == 204
    assert fan.rt.jobs.docs[job_id][1] == version  # the job document was not written
    assert sorted(fan.rt.jobs.segments_done(job_id, "analyze")) == [0, 1, 2]
    assert fan.deliver(segs[3]).status_code == 204
    assert len(fan.analyzed(job_id)) == 1


def test_after_the_fan_in_its_records_and_work_files_are_deleted(fan):
    job_id = fan.seed()
    fan.start(job_id)
    segs = fan.segments_published(job_id)
    for seg in segs:
        fan.deliver(seg)
    assert len(fan.analyzed(job_id)) == 1
    bucket = fan.rt.settings.renditions_bucket
    assert [k for k in fan.rt.blobs.objects if k[0] == bucket and k[1].startswith(f"work/{job_id}/")] == []
    assert fan.rt.jobs.segments_done(job_id, "analyze") == {}
    assert fan.deliver(segs[1]).status_code == 204  # a late redelivery: acknowledged, nothing comes back
    assert fan.work_calls == [0, 1, 2, 3] and fan.rt.jobs.segments_done(job_id, "analyze") == {}
    assert len(fan.analyzed(job_id)) == 1


def test_of_the_deliveries_that_count_the_set_whole_only_the_claimant_fans_in(fan):
    job_id = fan.seed()
    fan.start(job_id)
    segs = fan.segments_published(job_id)
    for seg in segs[:3]:
        fan.deliver(seg)
    # Segment 3's record is in and its delivery claimed the fan-in, then its instance went silent.
    fan.rt.jobs.record_segment(job_id, "analyze", 3)
    assert fan.rt.jobs.claim_fan_in(job_id, "analyze", "segment-3", 4) is jobstate.FanIn.COMPLETE
    assert fan.deliver(segs[0]).status_code == 204  # a redelivery of another segment sees the claim held
    assert fan.merge_calls == 0 and not fan.analyzed(job_id)
    assert fan.deliver(segs[3]).status_code == 204  # Pub/Sub redelivers the claimant's message: it takes its claim back
    assert fan.merge_calls == 1 and len(fan.analyzed(job_id)) == 1


def test_the_sweep_leaves_alone_a_fan_out_whose_segments_keep_finishing(fan):
    job_id = fan.seed()
    fan.start(job_id)
    segs = fan.segments_published(job_id)
    fan.rt.jobs._write(job_id, {"updated_at": dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)})  # a long fan-out
    fan.deliver(segs[0])  # ...still making progress: a segment finished just now
    assert sweeping.sweep(fan.rt, older_than=dt.timedelta(minutes=30)) == []
    assert len(fan.rt.bus.on("media-ingested", job_id)) == 0


def test_a_segment_cancelled_under_it_stops_its_partial_outputs_go_and_no_new_segment_starts(fan):
    job_id = fan.seed()
    fan.start(job_id)
    segs = fan.segments_published(job_id)
    bucket = fan.rt.settings.renditions_bucket

    def writes_then_the_operator_cancels(rt, seg):
        rt.blobs.put_if_absent(bucket, segment_prefix(job_id, "analyze", seg["index"]) + "tiles.png", b"x", "image/png")
        job_ops.cancel(rt, job_id, "wrong file")
        ensure_job_active()  # the stage's next check (in the child's stead: its watch is tested in test_bounded_media)

    fan.during = writes_then_the_operator_cancels
    assert fan.deliver(segs[0]).status_code == 204
    assert [k for k in fan.rt.blobs.objects if k[1].startswith(f"work/{job_id}/")] == []
    job = fan.job(job_id)
    assert job["status"] == "failed" and job["error"]["error_class"] == "cancelled"
    assert job["stages"]["analyze"]["stopped"].startswith("job ended while analyze was running")
    for seg in segs[1:]:  # the segments still queued: acknowledged, none starts
        assert fan.deliver(seg).status_code == 204
    assert fan.work_calls == [0] and fan.rt.jobs.segments_done(job_id, "analyze") == {}
    assert [e.payload["status"] for e in fan.rt.bus.on("media-events", job_id)] == ["failed"]


def test_the_last_segments_racing_still_publish_the_next_message_once(fan):
    job_id = fan.seed()
    fan.start(job_id)
    segs = fan.segments_published(job_id)
    for seg in segs[:2]:
        fan.deliver(seg)
    racing = [segs[2], segs[3], segs[2], segs[3]]
    threads = [threading.Thread(target=fan.deliver, args=(s,)) for s in racing]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fan.analyzed(job_id)) == 1
    assert fan.job(job_id)["stages"]["analyze"]["state"] == "done"


def test_a_segment_failing_permanently_fails_the_job_with_its_reason_and_one_event(fan):
    job_id = fan.seed()
    fan.start(job_id)
    segs = fan.segments_published(job_id)
    fan.fail[2] = CorruptMedia("the video stream cannot be decoded at 21.3 s", code="corrupt-video")
    for seg in segs:
        assert fan.deliver(seg).status_code == 204
    job = fan.job(job_id)
    assert job["status"] == "failed" and job["error"]["reason"] == "the video stream cannot be decoded at 21.3 s"
    assert job["stages"]["analyze"]["state"] == "failed"
    events = fan.rt.bus.on("media-events", job_id)
    assert [e.payload["status"] for e in events] == ["failed"]
    dlq = fan.rt.bus.on("analyze-video-segments-dlq")
    assert len(dlq) == 1 and dlq[0].attributes["error_class"] == "corrupt-media"
    assert not fan.analyzed(job_id)
    fan.deliver(segs[3])  # a late delivery after the job ended: nothing more
    assert len(fan.rt.bus.on("media-events", job_id)) == 1 and not fan.analyzed(job_id)


def test_a_transient_failure_retries_that_segment_alone(fan):
    job_id = fan.seed()
    fan.start(job_id)
    segs = fan.segments_published(job_id)
    fan.fail[1] = TransientError("storage answered 503")
    answers = [fan.deliver(seg).status_code for seg in segs]
    assert answers == [204, 503, 204, 204]
    assert sorted(fan.rt.jobs.segments_done(job_id, "analyze")) == [0, 2, 3]
    assert fan.deliver(segs[1], attempt=2).status_code == 204  # Pub/Sub's redelivery
    assert sorted(fan.work_calls) == [0, 1, 1, 2, 3] and len(fan.analyzed(job_id)) == 1


def test_a_segment_out_of_attempts_parks_the_job_and_a_replay_resumes_it(fan):
    job_id = fan.seed()
    fan.start(job_id)
    segs = fan.segments_published(job_id)
    fan.fail[3] = TransientError("storage answered 503")
    for seg in segs[:3]:
        fan.deliver(seg)
    assert fan.deliver(segs[3], attempt=5).status_code == 503  # max_delivery_attempts of the subscription
    job = fan.job(job_id)
    assert job["status"] == "dead-lettered" and job["dead_letter"]["stage"] == "analyze"
    assert fan.deliver(segs[3]).status_code == 204  # the operator's replay of the dead letter
    job = fan.job(job_id)
    assert "dead_letter" not in job and job["stages"]["analyze"]["state"] == "done"
    assert len(fan.analyzed(job_id)) == 1


def test_a_fan_in_lost_to_a_crash_is_finished_by_the_redelivery(fan):
    job_id = fan.seed()
    fan.start(job_id)
    segs = fan.segments_published(job_id)
    real_merge = fan.merge
    crashes = []

    def crashing_merge(rt, job, results):
        if not crashes:
            crashes.append(1)
            raise TransientError("instance lost mid fan-in")
        return real_merge(rt, job, results)

    fan.merge = crashing_merge
    answers = [fan.deliver(seg).status_code for seg in segs]
    assert answers == [204, 204, 204, 503] and not fan.analyzed(job_id)
    assert sorted(fan.rt.jobs.segments_done(job_id, "analyze")) == [0, 1, 2, 3]
    assert fan.deliver(segs[3], attempt=2).status_code == 204
    assert len(fan.analyzed(job_id)) == 1 and sorted(fan.work_calls) == [0, 1, 2, 3]


def test_the_sweep_republishes_only_missing_segments_and_fans_in_when_none_is_missing(fan):
    job_id = fan.seed()
    fan.start(job_id)
    segs = fan.segments_published(job_id)
    fan.deliver(segs[0])
    fan.deliver(segs[2])
    # The bus lost the other two (a restart of the local cloud): the sweep re-drives the stage input.
    rows = sweeping.sweep(fan.rt, older_than=dt.timedelta(seconds=-1))
    assert [(r["stage"], r["topic"]) for r in rows] == [("analyze", "media-ingested")]
    redriven = fan.rt.bus.on("media-ingested", job_id)[-1].payload
    assert fan.client.post("/push", json=envelope(redriven, "media-ingested.v1")).status_code == 204
    again = fan.segments_published(job_id)[4:]
    assert sorted(s["index"] for s in again) == [1, 3] and fan.work_calls == [0, 2]
    for seg in again:
        fan.deliver(seg)
    assert len(fan.analyzed(job_id)) == 1
    assert fan.job(job_id)["stages"]["analyze"]["state"] == "done"


def test_a_stage_input_redelivered_after_every_segment_finished_fans_in_itself():
    fan = FanHarness(count=2)
    job_id = fan.seed()
    fan.start(job_id)
    segs = fan.segments_published(job_id)
    for seg in segs:  # results stored, every record in, the fan-in lost
        name = result_name(job_id, "analyze", seg["index"])
        fan.rt.blobs.put_if_absent(fan.rt.settings.renditions_bucket, name, b'{"index": %d, "shots": [0]}' % seg["index"],
                                   "application/json")
        fan.rt.jobs.record_segment(job_id, "analyze", seg["index"])
    assert not fan.analyzed(job_id)
    assert fan.start(job_id).status_code == 204  # the sweep's re-drive
    assert len(fan.analyzed(job_id)) == 1 and fan.work_calls == []


def test_a_segment_sent_to_the_wrong_stage_is_dead_lettered_without_touching_the_job(fan):
    job_id = fan.seed()
    fan.start(job_id)
    seg = dict(fan.segments_published(job_id)[0], stage="render")
    assert fan.deliver(seg).status_code == 204
    assert fan.job(job_id)["status"] == "analyzing" and fan.work_calls == []
    dlq = fan.rt.bus.on("analyze-video-segments-dlq")
    assert len(dlq) == 1 and dlq[0].attributes["error_class"] == "bad-message"


def test_a_fan_in_claim_left_by_a_silent_delivery_is_taken_over_after_its_lease():
    from services.pipeline import jobstate

    now = dt.datetime.now(dt.UTC)
    job = jobstate.new_job("job-1", {}, now, dt.timedelta(days=1))
    job = jobstate.apply(job, {"status": "analyzing", "stages.analyze.state": "running", "stages.analyze.segments": {"count": 4}})
    assert jobstate.ready_to_fan_in(job, "analyze", 3) is jobstate.FanIn.PENDING
    assert jobstate.ready_to_fan_in(job, "analyze", 4) is jobstate.FanIn.READY
    claim = jobstate.fan_in_claim("analyze", "segment-3", now, dt.timedelta(days=2))
    assert not jobstate.may_take_claim(claim, "segment-1", now)
    assert jobstate.may_take_claim(claim, "segment-3", now)  # its own redelivery
    assert jobstate.may_take_claim(claim, "input", now + jobstate.FAN_IN_LEASE)


def test_of_many_deliveries_seeing_the_set_whole_at_once_one_claims_and_none_retries(fan):
    job_id = fan.seed()
    fan.start(job_id)
    for i in range(4):
        fan.rt.jobs.record_segment(job_id, "analyze", i)
    version = fan.rt.jobs.docs[job_id][1]
    outcomes = []
    barrier = threading.Barrier(8)

    def claim(i):
        barrier.wait()
        outcomes.append(fan.rt.jobs.claim_fan_in(job_id, "analyze", f"segment-{i}", 4))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o.value for o in outcomes) == ["claimed"] * 7 + ["complete"]
    assert fan.rt.jobs.docs[job_id][1] == version  # the claim is a record of its own: the job is not written


def test_a_duplicate_delivery_that_also_held_the_claim_finds_the_fan_in_done_not_a_failure(fan):
    """Two deliveries of the last segment may both hold the claim (the claimant's redelivery
    takes it back). When the other one has fanned in and removed the results, this one's fan-in
    is a no-op: not a missing-file failure of a job that is doing fine."""
    from services.pipeline import handon

    job_id = fan.seed()
    fan.start(job_id)
    for seg in fan.segments_published(job_id):
        fan.deliver(seg)
    assert len(fan.analyzed(job_id)) == 1
    handon._fan_in(fan.rt, "analyze", job_id, fan.count, fan.merge)  # the late twin, its claim in hand
    assert len(fan.analyzed(job_id)) == 1
    assert fan.job(job_id)["status"] != "failed" and fan.merge_calls == 1
