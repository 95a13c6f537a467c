"""What the console's pages compute from documents: per-hour throughput and latency percentiles,
failures by class, a job's waterfall, the dead-letter overview (pure functions, no cloud)."""
from __future__ import annotations

import datetime as dt

from services.console import charts, views
from services.ops.dlq import DeadLetter
from services.pipeline.jobstate import new_job
from services.pipeline.topology import load_topology

NOW = dt.datetime(2026, 12, 7, 16, 30, tzinfo=dt.UTC)


def job(i: int, status: str, created: dt.datetime, took: float, error_class: str | None = None) -> dict:
    doc = dict(new_job(f"j{i}", {"kind": "image"}, created, dt.timedelta(days=30)))
    doc.update(status=status, finished_at=created + dt.timedelta(seconds=took))
    if error_class:
        doc["error"] = {"stage": "analyze", "error_class": error_class, "reason": "r"}
    return doc


def test_health_buckets_by_hour_with_nearest_rank_percentiles():
    hour_ago = NOW - dt.timedelta(hours=1, minutes=10)
    finished = [job(i, "completed", hour_ago, took) for i, took in enumerate([1, 2, 3, 4, 100])]
    finished += [job(10, "failed", hour_ago, 5, "corrupt-media"), job(11, "failed", hour_ago, 5, "corrupt-media"),
                 job(12, "failed", NOW - dt.timedelta(minutes=1), 1, "limit-exceeded"),
                 job(13, "completed", NOW - dt.timedelta(days=2), 1)]  # older than the day: left out
    h = views.health(finished, NOW)
    assert len(h["labels"]) == 24 and h["labels"][-1] == "16:00"
    i = h["labels"].index("15:00")
    assert h["completed"][i] == 5 and h["failed"][i] == 2 and h["total_completed"] == 5
    assert h["p50"][i] == 3 and h["p95"][i] == 100 and h["p50"][-1] is None
    assert h["failures"] == [("corrupt-media", 2), ("limit-exceeded", 1)]


def test_a_waterfall_queues_each_stage_from_the_previous_ones_end():
    t0 = NOW - dt.timedelta(seconds=10)
    doc = dict(new_job("j", {}, t0, dt.timedelta(days=1)))
    doc["stages"]["analyze"].update(state="done", started_at=t0 + dt.timedelta(seconds=1),
                                    finished_at=t0 + dt.timedelta(seconds=3))
    doc["stages"]["render"].update(state="running", started_at=t0 + dt.timedelta(seconds=4))
    doc["updated_at"] = t0 + dt.timedelta(seconds=8)
    segments = [{"stage": "render", "index": 1, "done_at": t0 + dt.timedelta(seconds=6)},
                {"stage": "render", "index": 0, "done_at": t0 + dt.timedelta(seconds=5)}]
    spans, total = views.waterfall_spans(doc, segments)
    assert [(s.name, s.queued, s.start, s.end) for s in spans] == [
        ("analyze", 0, 1, 3), ("render", 3, 4, None), ("segment 0", None, 4, 5), ("segment 1", None, 4, 6),
        ("notify", 3, None, None)]
    assert total == 8
    svg = charts.waterfall(spans, total)
    assert svg.count("<rect") == 6 and "render queued 1.00 s" in svg  # 2 waits, 4 bars (notify has not started)


def test_a_fanned_in_stage_keeps_its_segments_bars_from_what_the_job_kept_of_them():
    t0 = NOW - dt.timedelta(seconds=20)
    doc = dict(new_job("j", {}, t0, dt.timedelta(days=1)))
    doc["stages"]["render"].update(state="done", started_at=t0 + dt.timedelta(seconds=2),
                                   finished_at=t0 + dt.timedelta(seconds=12))
    doc["stages"]["render"]["segments"] = {"count": 2, "done": [
        {"index": 0, "done_at": t0 + dt.timedelta(seconds=9), "seconds": 6.0},
        {"index": 1, "done_at": t0 + dt.timedelta(seconds=10), "seconds": 0.0}]}
    spans, _ = views.waterfall_spans(doc, [])  # the fan-in deleted the records
    bars = [(s.name, s.start, s.end) for s in spans if s.name.startswith("segment")]
    assert bars == [("segment 0", 3, 9), ("segment 1", 2, 10)]  # no duration known: from the stage's start


def test_the_dead_letter_overview_has_every_subscription_with_depth_and_oldest_age():
    topology = load_topology()
    sub = topology.push_subscriptions["analyze-media-ingested"]
    old, new = NOW - dt.timedelta(hours=3), NOW - dt.timedelta(minutes=5)
    messages = [DeadLetter(sub.dead_letter_subscription, "analyze", sub.topic, m, "a" + m, t, {"job_id": "j1"}, b'{"x": 1}')
                for m, t in (("m1", new), ("m2", old))]
    rows = {r["source"]: r for r in views.dead_letter_overview(topology, messages, NOW)}
    assert set(rows) == set(topology.push_subscriptions)
    assert rows["analyze-media-ingested"]["depth"] == 2 and rows["analyze-media-ingested"]["oldest_age"] == "3 h"
    assert rows["analyze-media-ingested"]["messages"][0]["payload"] == '{\n  "x": 1\n}'
    assert rows["render-media-analyzed"]["depth"] == 0


def test_charts_escape_what_they_show():
    svg = charts.stacked_bars(["<b>"], {"a&b": [1]}, "t")
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "a&amp;b" in svg
