"""DELETE of a job, in-process: notify's real app (its /push/deletions and webhook routes) over the
in-memory stores (tests/support/fakes.py), and the ops calls ingest's DELETE route makes. The
same flow against the emulators, over HTTP: tests/cloud/test_public_events.py."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from services.notify.app import create_app
from services.ops import jobs as job_actions
from services.pipeline import jobstate
from services.pipeline.handon import publish_final_event
from services.pipeline.schemas import validate
from services.webhooks.secretbox import SecretBox
from tests.support.fakes import SOURCE, MemoryEndpointStore, memory_runtime
from tests.support.pushes import envelope
from tests.unit.test_webhook_delivery import KEY, LOCAL, Receiver

JOB, OTHER = "job-delete-0001", "job-delete-00012"  # OTHER shares JOB's id as a prefix: it must survive
ORIG, REND = "mediarelay-originals", "mediarelay-renditions"


def _stored(rt, job_id: str) -> list[tuple[str, str]]:
    return sorted(k for k in rt.blobs.objects if k[1].split("/")[1] == job_id)


def _seed(rt, job_id: str, status: str = "completed") -> None:
    names = [(ORIG, f"originals/{job_id}"), (ORIG, f"incoming/{job_id}"), (REND, f"renditions/{job_id}/thumb.webp"),
             (REND, f"renditions/{job_id}/hls/360p/0000-00.ts"), (REND, f"renditions/{job_id}/storyboard.jpg"),
             (REND, f"work/{job_id}/render/segment-0000.json")]
    for bucket, name in names:
        rt.blobs.put_if_absent(bucket, name, b"x", "application/octet-stream")
    src = {**SOURCE, "name": f"originals/{job_id}", "uri": f"gs://{ORIG}/originals/{job_id}"}
    thumb = {"uri": f"gs://{REND}/renditions/{job_id}/thumb.webp", "generation": "1", "preset": "thumb", "format": "webp",
             "width": 4, "height": 3, "bytes": 1, "content_type": "image/webp"}
    rt.jobs.create(job_id, {"kind": "image", "source": src, "owner": "c1"})
    rt.jobs.record_segment(job_id, "render", 0)
    if status == "completed":
        publish_final_event(rt, job_id, "completed", {"analysis": {"format": "jpeg", "width": 4, "height": 3},
                                                      "renditions": [thumb]})


def _age(rt, job_id: str, seconds: float) -> None:
    """The job ended `seconds` ago (erase waits DELETE_SETTLE_SECONDS after the end)."""
    rt.jobs.record(job_id, {"finished_at": jobstate_now() - dt.timedelta(seconds=seconds)})


def jobstate_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.fixture
def notify():
    rt = memory_runtime(webhook_allow_hosts=LOCAL, webhook_secrets_key=KEY, delete_settle_seconds=0)
    endpoints = MemoryEndpointStore(SecretBox(KEY))
    return rt, endpoints, create_app(runtime=rt, endpoints=endpoints).test_client()


def _push_deletions(rt, client) -> None:
    for m in rt.bus.on("job-deletions"):
        assert client.post("/push/deletions", json=envelope(m.payload, m.attributes["schema"])).status_code == 204


def test_delete_erases_every_object_and_record_of_the_job_and_publishes_one_deleted_event(notify):
    rt, _, client = notify
    _seed(rt, JOB)
    _seed(rt, OTHER)
    assert len(_stored(rt, JOB)) == 6
    job_actions.request_delete(rt, rt.jobs.get(JOB), "client c1")
    _push_deletions(rt, client)
    _push_deletions(rt, client)  # a redelivery changes nothing
    assert _stored(rt, JOB) == []
    assert len(_stored(rt, OTHER)) == 6, "another job's objects were erased"
    assert rt.jobs.segments_done(JOB, "render") == {} and rt.jobs.segments_done(OTHER, "render") != {}
    tomb = rt.jobs.get(JOB)
    assert set(tomb) <= set(job_actions.TOMBSTONE_FIELDS) and "source" not in tomb and "renditions" not in tomb
    events = [m.payload for m in rt.bus.on("media-events", JOB)]
    assert [e["status"] for e in events] == ["completed", "deleted"]
    validate(rt.settings.schemas_dir, "media-events.v3", events[1])
    assert events[1]["id"] == f"{JOB}/deleted" and events[1]["links"]["job"] == f"https://api.example.test/v1/jobs/{JOB}"


def test_a_deleted_job_leaves_its_clients_near_duplicate_index(notify):
    rt, _, client = notify
    _seed(rt, JOB)
    _seed(rt, OTHER)
    for job_id in (JOB, OTHER):
        rt.near_duplicates.add("c1", job_id, "0123456789abcdef", jobstate_now())
    job_actions.request_delete(rt, rt.jobs.get(JOB), "client c1")
    _push_deletions(rt, client)
    assert set(rt.near_duplicates.entries["c1"]) == {OTHER}  # a later upload is never told about a deleted job


def test_delete_of_a_running_job_ends_it_failed_cancelled_first_then_deleted(notify):
    rt, _, client = notify
    _seed(rt, JOB, status="received")
    job_actions.request_delete(rt, rt.jobs.get(JOB), "client c1")
    _push_deletions(rt, client)
    events = [m.payload for m in rt.bus.on("media-events", JOB)]
    assert [e["status"] for e in events] == ["failed", "deleted"]
    assert events[0]["error"]["error_class"] == "cancelled"
    assert [m.payload["status"] for m in rt.bus.on("media-events-v2", JOB)] == ["failed"]  # v2 has no deleted type


def test_erase_waits_until_the_job_has_been_over_delete_settle_seconds(monkeypatch):
    """A stage cancelled under the deletion may be finishing one output write: erasing at once
    could leave that object behind. The erase waits out the rest of the settle itself."""
    rt = memory_runtime(delete_settle_seconds=30)
    _seed(rt, JOB)
    job_actions.request_delete(rt, rt.jobs.get(JOB), "client c1")
    waited: list[float] = []
    monkeypatch.setattr(job_actions.time, "sleep", lambda s: (waited.append(s), _age(rt, JOB, s + 1)))
    assert job_actions.erase(rt, JOB) and _stored(rt, JOB) == []
    assert len(waited) == 1 and 28 < waited[0] <= 30


def test_the_deleted_webhook_reaches_an_endpoint_that_already_got_the_final_event(notify):
    rt, endpoints, client = notify
    receiver = Receiver()
    try:
        endpoint_id = endpoints.create("c1", receiver.url, ["completed", "deleted"])[0]["id"]
        _seed(rt, JOB)
        job_actions.request_delete(rt, rt.jobs.get(JOB), "client c1")
        _push_deletions(rt, client)
        for m in rt.bus.on("media-events", JOB):
            assert client.post("/push/events", json=envelope(m.payload, m.attributes["schema"])).status_code == 204
        deliveries = rt.bus.on("webhook-deliveries", JOB)
        assert [d.payload["event"]["status"] for d in deliveries] == ["completed", "deleted"]
        for d in deliveries:
            assert client.post("/push/webhooks", json=envelope(d.payload, d.attributes["schema"])).status_code == 204
        assert len(receiver.requests) == 2
        assert endpoint_id in rt.jobs.get(JOB)["webhooks"] and f"{endpoint_id}_deleted" in rt.jobs.get(JOB)["webhooks"]
    finally:
        receiver.close()


def test_public_events_name_no_bucket_and_no_gs_uri(notify):
    rt, _, _ = notify
    _seed(rt, JOB)
    _seed(rt, OTHER, status="received")
    publish_final_event(rt, OTHER, "failed", jobstate.failure_fields("analyze", "corrupt-media", "the file is cut short"))
    for m in rt.bus.on("media-events"):
        text = json.dumps(m.payload)
        assert "gs://" not in text and ORIG not in text and REND not in text, text
        validate(rt.settings.schemas_dir, "media-events.v3", m.payload)
    completed = rt.bus.on("media-events", JOB)[0].payload
    assert completed["renditions"][0]["url"] == f"https://api.example.test/v1/jobs/{JOB}/renditions/thumb.webp"
