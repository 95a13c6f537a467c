"""A job's estimated cost (services/pipeline/cost.py, usage.py; docs/cost.md): the price
arithmetic on usage records made by hand, and the per-segment usage of a fanned-out stage summed
at its fan-in, over the in-memory store, bus and blobs with the real stage plumbing."""
from __future__ import annotations

import dataclasses
import time

import pytest

from services.common.config import Settings
from services.media import sandbox
from services.pipeline import cost, usage
from services.pipeline.handon import SEGMENTS_PATH, FanOut, StageResult, segment_messages
from services.pipeline.push import register_segments, register_stage
from services.pipeline.web import create_service_app
from tests.support import children
from tests.support.fakes import memory_runtime
from tests.support.pushes import envelope

MB = 2**20
PRICES = dataclasses.replace(cost.Prices.of(Settings.from_env({})), vcpu_second=0.00002, gib_second=0.000002, request=0.0000005,
                             storage_gb_month=0.02, storage_write=0.000005, pubsub_tib=40.0, firestore_reads_100k=0.03,
                             firestore_writes_100k=0.09, firestore_deletes_100k=0.01)


def _job(kind="image", **stages):
    return {"job_id": "job-00000001", "kind": kind, "source": {"size": 3 * 2**30},
            "stages": {s: {"state": "done", "attempts": 1, "usage": u} for s, u in stages.items()}}


def test_each_part_is_the_usage_times_its_price():
    render = {"requests": 2, "cpu_seconds": 10.0, "memory_gib_seconds": 4.0, "bytes_written": 2**30 + 5 * MB,
              "work_bytes_written": 5 * MB, "objects_written": 10, "message_bytes": 2**40 // 1000,
              "firestore_reads": 100_000, "firestore_writes": 200_000, "firestore_deletes": 300_000}
    est = cost.estimate(_job(render=render), PRICES)
    render_parts = cost.parts(usage.Usage.of(render), PRICES)
    assert render_parts == pytest.approx({
        "cpu": 10 * 0.00002, "memory": 4 * 0.000002, "requests": 2 * 0.0000005,
        "storage_month": 1 * 0.02,  # the work objects are deleted after the fan-in: not kept
        "storage_writes": 10 * 0.000005, "pubsub": 40.0 / 1000,
        "firestore": 0.03 + 2 * 0.09 + 3 * 0.01})
    # ingest is modelled from the job: the 3 GiB original kept a month, one write, one request, ...
    ingest = cost.parts(cost.ingest_usage(_job()), PRICES)
    assert ingest["storage_month"] == pytest.approx(3 * 0.02) and ingest["cpu"] == 0
    assert est["parts"] == pytest.approx({k: render_parts[k] + ingest[k] for k in cost.PARTS})
    assert est["prices"]["vcpu_second"] == 0.00002 and est["prices"]["price_list"]
    assert est["usage"]["stored_bytes"] == 3 * 2**30 + 2**30


def test_the_parts_and_the_stages_each_add_up_to_the_total():
    est = cost.estimate(_job(analyze={"requests": 1, "cpu_seconds": 0.37, "memory_gib_seconds": 0.013},
                             render={"requests": 1, "cpu_seconds": 1.91, "bytes_written": 812_345, "objects_written": 7},
                             notify={"requests": 1, "cpu_seconds": 0.004, "message_bytes": 3000}), PRICES)
    assert est["total_usd"] > 0 and est["parts"]["cpu"] > 0
    assert sum(est["parts"].values()) == pytest.approx(est["total_usd"], abs=1e-9)
    assert sum(est["stages"].values()) == pytest.approx(est["total_usd"], abs=1e-9)
    assert set(est["stages"]) == {"ingest", "analyze", "render", "notify"}
    assert "per_video_minute_usd" not in est


def test_a_video_is_also_priced_per_minute_of_video():
    job = {**_job("video", render={"requests": 9, "cpu_seconds": 120.0}), "analysis": {"duration_s": 90.0}}
    est = cost.estimate(job, PRICES)
    assert est["per_video_minute_usd"] == pytest.approx(est["total_usd"] / 1.5)


def test_a_running_stage_without_a_record_costs_nothing_yet():
    job = _job()
    job["stages"]["render"] = {"state": "running", "attempts": 1}
    assert set(cost.estimate(job, PRICES)["stages"]) == {"ingest"}


def test_summed_records_add_counts_and_seconds_and_keep_the_largest_peak():
    a = {"requests": 1, "cpu_seconds": 1.5, "peak_memory_bytes": 300 * MB, "bytes_written": 10}
    b = {"requests": 1, "cpu_seconds": 2.0, "peak_memory_bytes": 200 * MB, "bytes_written": 5, "from_a_newer_release": 1}
    total = usage.total([a, b])
    assert (total.requests, total.cpu_seconds, total.peak_memory_bytes, total.bytes_written) == (2, 3.5, 300 * MB, 15)


def test_a_media_child_reports_its_cpu_time_and_peak_memory():
    used: list[sandbox.ChildUsage] = []
    limits = sandbox.ChildLimits(512 * MB, 30, time.monotonic() + 120, "the test's deadline")
    assert sandbox.run(children.busy, b"", limits=limits, used=used) == 200 * MB
    [child] = used
    assert child.cpu_seconds >= 0.3 and child.peak_memory_bytes >= 200 * MB and child.wall_seconds >= 0.3


# --- per segment, summed at the fan-in --------------------------------------------------------

SOURCE = {"uri": "gs://mediarelay-originals/originals/v", "bucket": "mediarelay-originals", "name": "originals/v",
          "generation": "1", "content_type": "video/mp4", "size": 10}
COUNT = 4


class Stage:
    """analyze's stage input and segment endpoints; each segment's 'media child' used 1 CPU-second and (i+1) x 100 MB
    for 2 s (reported as the sandbox reports a child), and writes one output of 1000 bytes."""

    def __init__(self):
        self.rt = memory_runtime()
        app, _ = create_service_app("analyze", runtime=self.rt)
        register_stage(app, self.rt, "analyze", self.handle)
        register_segments(app, self.rt, "analyze", self.work, self.merge)
        self.client = app.test_client()

    def handle(self, rt, job, msg):
        spans = [{"start_s": 10.0 * i, "end_s": 10.0 * (i + 1)} for i in range(COUNT)]
        return StageResult(fan_out=FanOut(segment_messages(msg, "analyze", spans, [{}] * COUNT), {}, self.merge))

    def work(self, rt, job, seg):
        usage.media_child(1.0, (seg["index"] + 1) * 100 * MB, 2.0)
        rt.blobs.put_if_absent(rt.settings.renditions_bucket, f"renditions/{job['job_id']}/seg-{seg['index']}",
                               b"x" * 1000, "video/mp2t")
        return {"index": seg["index"]}

    def merge(self, rt, job, results):
        analysis = {"format": "mp4", "width": 4, "height": 3}
        payload = {"job_id": job["job_id"], "kind": "video", "source": SOURCE, "analysis": analysis}
        return StageResult(publish=[("media-analyzed", payload)], job_fields={"analysis": payload["analysis"]})


def test_each_segment_records_its_own_usage_and_the_fan_in_sums_them_without_counting_one_twice():
    st = Stage()
    job_id = "job-00000001"
    st.rt.jobs.create(job_id, {"kind": "video", "source": SOURCE})
    msg = {"job_id": job_id, "kind": "video", "source": SOURCE, "submitted_at": "2026-01-01T00:00:00Z"}
    assert st.client.post("/push", json=envelope(msg, "media-ingested.v1")).status_code == 204
    assert st.rt.jobs.get(job_id)["stages"]["analyze"]["fan_out_usage"]["requests"] == 1
    segs = [m.payload for m in st.rt.bus.on("video-segments-analyze", job_id)]
    for seg in segs[:-1]:
        assert st.client.post(SEGMENTS_PATH, json=envelope(seg, "video-segment.v1")).status_code == 204
    records = st.rt.jobs.segments[job_id]
    assert [records[f"analyze-{i:04d}"]["usage"]["cpu_seconds"] >= 1.0 for i in range(COUNT - 1)] == [True] * 3
    assert "usage" not in st.rt.jobs.get(job_id)["stages"]["analyze"]  # no segment writes the job
    assert st.client.post(SEGMENTS_PATH, json=envelope(segs[-1], "video-segment.v1")).status_code == 204  # fans in

    used = st.rt.jobs.get(job_id)["stages"]["analyze"]["usage"]
    assert used["requests"] == 1 + COUNT  # the stage input and each segment, the fan-in's delivery once
    # the records are gone; the job keeps each segment's finish and duration (the console's waterfall)
    assert not st.rt.jobs.segments.get(job_id)
    done = st.rt.jobs.get(job_id)["stages"]["analyze"]["segments"]["done"]
    assert [d["index"] for d in done] == list(range(COUNT)) and all(d["done_at"] and d["seconds"] >= 0 for d in done)
    assert COUNT * 1.0 <= used["cpu_seconds"] < COUNT * 1.0 + 1.0  # + the request threads' own CPU
    assert used["peak_memory_bytes"] == COUNT * 100 * MB
    assert used["memory_gib_seconds"] == pytest.approx(sum((i + 1) * 100 * MB / 2**30 * 2.0 for i in range(COUNT)), rel=1e-4)
    results = COUNT * len(b'{"index":0}')  # each segment's result under work/, deleted after the fan-in
    assert (used["bytes_written"], used["work_bytes_written"]) == (COUNT * 1000 + results, results)
    assert used["messages"] >= 1 + COUNT + COUNT + 1  # deliveries received, segments and media-analyzed published
    assert used["firestore_writes"] >= COUNT and used["firestore_deletes"] == COUNT + 1  # records and the claim
