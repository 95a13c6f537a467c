"""Every delivery rule of the stage plumbing, in-process and in milliseconds: the real Flask
apps and stage code through test_client, with in-memory store, bus and blobs (tests/fakes.py)
and stage handlers the test controls. The end-to-end tests show the same against the
emulators; these pin down each decision."""
from __future__ import annotations

import datetime as dt

import pytest

from services.common.errors import CorruptMedia, TransientError
from services.ops import jobs as job_ops
from services.ops.sweep import sweep
from services.pipeline import jobstate
from services.pipeline.handon import ensure_job_active
from tests.support.fakes import Pipeline, analyzed, ingested, jobstate_now, rendered


@pytest.fixture
def p():
    return Pipeline()


def test_a_job_runs_stage_after_stage_to_one_completed_event(p):
    job_id = p.seed()
    p.run(job_id)
    job = p.job(job_id)
    assert job["status"] == "completed"
    assert {s: r["state"] for s, r in job["stages"].items()} == dict.fromkeys(jobstate.STAGES, "done")
    assert job["handoff"]["topic"] == "media-rendered"  # the last stage input, kept for the sweep
    [event] = p.events(job_id)
    assert event["id"] == f"{job_id}/completed" and event["status"] == "completed"
    assert job["final_event"]["published"] is True


def test_a_redelivered_finished_stage_does_no_work_and_publishes_nothing(p):
    job_id = p.seed()
    p.run(job_id)
    before = len(p.rt.bus.messages)
    assert p.push("analyze", ingested(job_id)).status_code == 204
    assert p.push("render", analyzed(job_id)).status_code == 204
    assert p.calls == dict.fromkeys(jobstate.STAGES, 1)
    assert len(p.rt.bus.messages) == before


def test_a_stage_lost_after_its_hand_off_is_finished_by_its_redelivery_without_new_work(p):
    job_id = p.seed()
    assert p.push("analyze", ingested(job_id)).status_code == 204
    p.rt.jobs._write(job_id, {"stages.analyze.state": jobstate.HANDED_OFF})  # crashed before "done"
    assert p.push("analyze", ingested(job_id)).status_code == 204
    assert p.calls["analyze"] == 1
    assert len(p.rt.bus.on("media-analyzed", job_id)) == 2  # the recorded handoff, published again
    assert p.job(job_id)["stages"]["analyze"]["state"] == "done"


def test_a_message_for_an_unknown_job_is_dead_lettered_not_retried(p):
    resp = p.push("render", analyzed("ghost-job-0001"))
    assert resp.status_code == 204
    [dead] = p.dead_letters("render")
    assert dead.attributes["error_class"] == "bad-message" and "no such job" in dead.attributes["error_reason"]
    assert p.calls["render"] == 0


@pytest.mark.parametrize("schema", ["media-ingested.v1", "media-analyzed.v9"])
def test_a_message_of_the_wrong_type_or_an_unknown_version_is_dead_lettered_and_the_job_untouched(p, schema):
    job_id = p.seed()
    assert p.push("analyze", ingested(job_id)).status_code == 204
    resp = p.push("render", analyzed(job_id), schema=schema)
    assert resp.status_code == 204
    [dead] = p.dead_letters("render")
    assert dead.attributes["error_class"] == "bad-message" and dead.attributes["job_id"] == job_id
    assert p.job(job_id)["status"] == "analyzing" and p.events(job_id) == [] and p.calls["render"] == 0
    # The real message still finishes the job.
    assert p.push("render", p.last("media-analyzed", job_id)).status_code == 204
    assert p.push("notify", p.last("media-rendered", job_id)).status_code == 204
    assert p.job(job_id)["status"] == "completed"


def test_a_stage_runs_only_once_the_stage_before_handed_off(p):
    job_id = p.seed()
    p.rt.jobs.begin_stage(job_id, "analyze")
    assert p.push("analyze", ingested(job_id)).status_code == 204  # analyze hands off; render not run yet
    p.rt.jobs.begin_stage(job_id, "render")  # render is running
    early = p.push("notify", rendered(job_id))
    assert early.status_code == 204
    [dead] = p.dead_letters("notify")
    assert "before render handed off" in dead.attributes["error_reason"]
    assert p.job(job_id)["status"] == "rendering" and p.calls["notify"] == 0 and p.events(job_id) == []


def test_a_permanent_failure_fails_the_job_dead_letters_the_message_and_publishes_failed_once(p):
    job_id = p.seed()
    p.before["analyze"] = lambda _: (_ for _ in ()).throw(CorruptMedia("the file ends inside its first frame"))
    assert p.push("analyze", ingested(job_id)).status_code == 204
    assert p.push("analyze", ingested(job_id)).status_code == 204  # a duplicate: no second event
    job = p.job(job_id)
    assert job["status"] == "failed" and job["stages"]["analyze"]["state"] == "failed"
    assert job["error"] == {"stage": "analyze", "error_class": "corrupt-media", "reason": "the file ends inside its first frame"}
    [event] = p.events(job_id)
    assert event["status"] == "failed" and event["error"]["error_class"] == "corrupt-media"
    [dead] = p.dead_letters("analyze")
    assert dead.attributes["error_class"] == "corrupt-media" and dead.payload["job_id"] == job_id
    assert p.rt.bus.on("media-analyzed") == []


@pytest.mark.parametrize("error", [TransientError("GCS answered 503"), RuntimeError("a bug of ours")])
def test_transient_failures_and_bugs_are_retried_by_pub_sub_and_recorded(p, error):
    job_id = p.seed()

    def fail(_):
        raise error

    p.before["analyze"] = fail
    resp = p.push("analyze", ingested(job_id), delivery_attempt=2)
    assert resp.status_code == 503 and resp.json["retry"] is True
    job = p.job(job_id)
    assert job["status"] == "analyzing" and str(error) in job["stages"]["analyze"]["error"]
    assert p.events(job_id) == [] and p.dead_letters("analyze") == []


def test_the_last_delivery_attempt_parks_the_job_and_a_replay_resumes_it(p):
    job_id = p.seed()
    p.before["analyze"] = lambda _: (_ for _ in ()).throw(TransientError("Firestore unavailable"))
    assert p.push("analyze", ingested(job_id), delivery_attempt=5).status_code == 503
    job = p.job(job_id)
    assert job["status"] == jobstate.DEAD_LETTERED and "5 delivery attempts" in job["dead_letter"]["reason"]
    del p.before["analyze"]  # the fix is deployed; the operator replays the message
    p.run(job_id)
    job = p.job(job_id)
    assert job["status"] == "completed" and "dead_letter" not in job and len(p.events(job_id)) == 1


def test_a_job_whose_stage_always_fails_with_a_bug_ends_failed_within_the_bounded_redrives():
    p = Pipeline(sweep_max_redrives=2)
    job_id = p.seed()
    p.before["analyze"] = lambda _: (_ for _ in ()).throw(KeyError("orientation"))
    for _round in range(10):  # Pub/Sub retries, dead-letters (no deliveryAttempt locally), the sweep re-drives
        for _ in range(5):
            assert p.push("analyze", ingested(job_id)).status_code == 503
        p.age(job_id)
        rows = sweep(p.rt, dt.timedelta(minutes=30))
        if p.job(job_id)["status"] == "failed":
            break
        assert [r["action"] for r in rows] == ["re-driven"]
    job = p.job(job_id)
    assert _round == 2 and job["status"] == "failed"
    assert job["error"]["error_class"] == "stuck" and "SWEEP_MAX_REDRIVES=2" in job["error"]["reason"]
    assert "KeyError" in job["error"]["reason"]
    assert [e["status"] for e in p.events(job_id)] == ["failed"]
    assert len(p.rt.bus.on("media-ingested", job_id)) == 2  # the two re-drives, marked as such
    assert {m.attributes["redriven"] for m in p.rt.bus.on("media-ingested", job_id)} == {"sweep"}


def test_the_sweep_re_drives_a_parked_job_and_a_dry_run_changes_nothing(p):
    job_id = p.seed()
    p.before["analyze"] = lambda _: (_ for _ in ()).throw(TransientError("down"))
    p.push("analyze", ingested(job_id), delivery_attempt=5)
    del p.before["analyze"]
    p.age(job_id)
    [dry] = sweep(p.rt, dt.timedelta(minutes=30), dry_run=True)
    assert dry["action"] == "would re-drive" and p.rt.bus.on("media-ingested") == []
    [row] = sweep(p.rt, dt.timedelta(minutes=30))
    assert row["action"] == "re-driven" and row["stage"] == "analyze"
    p.run(job_id)
    assert p.job(job_id)["status"] == "completed"


def test_cancelling_a_job_mid_stage_ends_it_failed_once_and_the_stage_writes_nothing_more(p):
    job_id = p.seed()

    def operator_cancels_then_stage_checks(jid):
        row = job_ops.cancel(p.rt, jid, "uploaded by mistake")
        assert row["action"] == "cancelled" and row["stage"] == "analyze"
        ensure_job_active()  # what the stage does before each output write and at budget checks

    p.before["analyze"] = operator_cancels_then_stage_checks
    assert p.push("analyze", ingested(job_id)).status_code == 204
    job = p.job(job_id)
    assert job["status"] == "failed" and job["error"]["error_class"] == "cancelled"
    assert "uploaded by mistake" in job["error"]["reason"] and "stopped" in job["stages"]["analyze"]
    assert p.rt.bus.on("media-analyzed") == [] and p.dead_letters("analyze") == []
    assert [e["error"]["error_class"] for e in p.events(job_id)] == ["cancelled"]
    assert job_ops.cancel(p.rt, job_id)["action"] == "none"  # already failed: nothing more


def test_a_stage_that_finishes_its_work_after_a_cancel_publishes_nothing(p):
    job_id = p.seed()
    p.before["analyze"] = lambda jid: job_ops.cancel(p.rt, jid)
    assert p.push("analyze", ingested(job_id)).status_code == 204
    assert p.rt.bus.on("media-analyzed") == [] and len(p.events(job_id)) == 1
    assert "analysis" not in p.job(job_id)


def test_the_final_event_is_claimed_once_and_healed_after_its_lease():
    now = jobstate_now()
    job = jobstate.new_job("job-00000001", {}, now, dt.timedelta(days=1))
    claimed, updates = jobstate.claim_final(job, "completed", {}, now)
    assert claimed["status"] == "completed" and updates["final_event"]["published"] is False
    with pytest.raises(jobstate.EventBeingPublished):  # another delivery, while the first publishes
        jobstate.claim_final(claimed, "completed", {}, now + dt.timedelta(seconds=5))
    again, _ = jobstate.claim_final(claimed, "failed", {}, now + jobstate.FINAL_EVENT_LEASE * 2)
    assert again["final_event"]["status"] == "completed"  # the first outcome stands
    published = jobstate.apply(claimed, jobstate.final_published("m1", now))
    assert jobstate.claim_final(published, "completed", {}, now) == (None, None)


def test_statuses_only_move_forward():
    assert jobstate.forward("received", "analyzing") and jobstate.forward("analyzing", "completed")
    assert not jobstate.forward("rendering", "analyzing") and not jobstate.forward("completed", "failed")
    assert jobstate.forward(jobstate.DEAD_LETTERED, "rendering") and not jobstate.forward(jobstate.DEAD_LETTERED, "received")


def test_compare_and_set_re_decides_on_the_document_another_writer_changed():
    p = Pipeline()
    job_id = p.seed()
    store = p.rt.jobs
    real_read = store._read
    raced = []

    def read_then_race(jid):
        doc, version = real_read(jid)
        if not raced:  # a second delivery begins the stage between our read and our write
            raced.append(None)
            raced[0] = store._decide(jid, lambda job: jobstate.begin_stage(job, "analyze", jobstate_now()))
        return doc, version

    store._read = read_then_race
    start = store.begin_stage(job_id, "analyze")
    assert raced[0].proceed and start.proceed
    assert store.get(job_id)["stages"]["analyze"]["attempts"] == 2  # both counted, neither lost


def test_a_hand_off_says_whether_it_was_recorded_the_job_ended_or_another_delivery_was_first():
    now = jobstate_now()
    job = jobstate.new_job("j1", {}, now, dt.timedelta(days=1))
    job = jobstate.apply(job, jobstate.begin_stage(job, "analyze", now)[1])
    handoff = {"topic": "media-analyzed", "payload": {"job_id": "j1"}}
    outcome, updates = jobstate.hand_off(job, "analyze", {}, handoff, now)
    assert outcome is jobstate.HandOff.RECORDED and updates["handoff"] == handoff
    handed = jobstate.apply(job, updates)
    assert jobstate.hand_off(handed, "analyze", {}, handoff, now) == (jobstate.HandOff.DUPLICATE, None)
    cancelled = jobstate.apply(job, {"status": "failed"})
    assert jobstate.hand_off(cancelled, "analyze", {}, handoff, now) == (jobstate.HandOff.ENDED, None)
    assert jobstate.hand_off(None, "analyze", {}, handoff, now) == (jobstate.HandOff.ENDED, None)
