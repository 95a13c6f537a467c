"""The near-duplicate index: banding finds every hash within d, verification drops the rest, no scan."""
from __future__ import annotations

import datetime as dt
import random

import pytest

from localcloud import samples
from services.analyze.app import handle as analyze_handle
from services.common.errors import BadMessage, Duplicate
from services.ingest.public_job import public_job
from services.pipeline.neardup import ANY_VALUES, BANDS, bands, check_picture, hamming, probes
from services.pipeline.schemas import validate
from services.render.app import load_catalogue, make_handler
from services.render.video_stage import _poster_facts
from services.render.work import RenderOptions
from tests.support.fakes import SOURCE, MemoryNearDuplicates, Pipeline, memory_runtime

T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _flip(h: str, bits: list[int]) -> str:
    return f"{int(h, 16) ^ sum(1 << b for b in bits):016x}"


def _random_hash(rng: random.Random) -> str:
    return f"{rng.getrandbits(64):016x}"


def test_every_hash_within_d_shares_a_probed_band_value_however_its_bits_are_spread():
    rng = random.Random(7)
    for d in (3, 7, 11):
        for _ in range(300):
            h = _random_hash(rng)
            other = _flip(h, rng.sample(range(64), rng.randint(0, d)))
            assert set(bands(other)) & set(probes(h, d)), (d, h, other)
        # the worst spread: every band as far as it may be while the total stays within d
        r = d // BANDS
        per_band = [r + 1] * (d - BANDS * r) + [r] * (BANDS - (d - BANDS * r))
        h = _random_hash(rng)
        spread = [16 * i + j for i, k in enumerate(per_band) for j in range(k)]
        assert len(spread) == d and set(bands(_flip(h, spread))) & set(probes(h, d))


def test_a_lookup_at_distance_eleven_is_548_values_in_queries_firestore_accepts():
    assert len(probes("0123456789abcdef", 11)) == 4 * (1 + 16 + 120)
    with pytest.raises(ValueError):
        probes("0123456789abcdef", 12)


def test_a_candidate_sharing_a_band_but_farther_than_d_is_not_a_match():
    index = MemoryNearDuplicates()
    h = "0123456789abcdef"
    far = _flip(h, list(range(16, 16 + 12)))  # band 0 equal, 12 bits apart
    near = _flip(h, list(range(16, 16 + 11)))
    index.add("c1", "job-far00001", far, T0)
    assert index.earlier_match("c1", "job-new00001", h, T0 + dt.timedelta(1), 11) is None
    index.add("c1", "job-near0001", near, T0)
    found = index.earlier_match("c1", "job-new00001", h, T0 + dt.timedelta(1), 11)
    assert (found.job_id, found.distance) == ("job-near0001", 11)


def test_only_an_earlier_picture_is_the_original_the_nearest_and_of_equals_the_first():
    index = MemoryNearDuplicates()
    h = "fedcba9876543210"
    index.add("c1", "job-a0000001", _flip(h, [1, 2, 3, 4]), T0)
    index.add("c1", "job-b0000001", _flip(h, [5, 6]), T0 + dt.timedelta(hours=1))
    index.add("c1", "job-c0000001", _flip(h, [7, 8]), T0 + dt.timedelta(hours=2))
    index.add("c1", "job-z0000001", h, T0 + dt.timedelta(hours=9))  # later than the query: never its original
    index.add("c1", "job-q0000001", h, T0 + dt.timedelta(hours=3))  # the query itself, already indexed
    found = index.earlier_match("c1", "job-q0000001", h, T0 + dt.timedelta(hours=3), 11)
    assert (found.job_id, found.distance) == ("job-b0000001", 2)
    # the first copy of two asks again (a redelivery): the second, later, is not its original
    assert index.earlier_match("c1", "job-a0000001", _flip(h, [1, 2, 3, 4]), T0, 11) is None


def test_another_clients_identical_picture_is_never_found():
    index = MemoryNearDuplicates()
    index.add("c2", "job-other001", "0123456789abcdef", T0)
    assert index.earlier_match("c1", "job-mine0001", "0123456789abcdef", T0 + dt.timedelta(1), 11) is None


def test_a_lookup_among_many_hashes_reads_candidates_not_the_collection():
    rng = random.Random(3)
    index = MemoryNearDuplicates()
    for i in range(5000):
        index.add("c1", f"job-{i:08d}", _random_hash(rng), T0)
    target = _random_hash(rng)
    index.add("c1", "job-original", target, T0)
    index.read = index.queries = 0
    found = index.earlier_match("c1", "job-copy0001", _flip(target, [0, 17, 33, 50, 63]), T0 + dt.timedelta(1), 11)
    assert found is not None and found.job_id == "job-original" and found.distance == 5
    assert index.queries == -(-548 // ANY_VALUES)
    assert index.read < 5000 * 0.1, index.read
    assert hamming(target, target) == 0


# -- the upload's on_duplicate, as analysis applies it (services/pipeline/neardup.check_picture) ----------------
def _job(rt, job_id, owner="c1", on_duplicate=None, hours=0):
    fields = {"kind": "image", "source": {}, "owner": owner}
    if on_duplicate:
        fields["on_duplicate"] = on_duplicate
    job, _ = rt.jobs.create(job_id, fields)
    job["created_at"] = T0 + dt.timedelta(hours=hours)  # uploads an hour apart
    return job


def test_a_near_copy_is_recorded_as_a_duplicate_of_the_earlier_job_and_the_first_is_not():
    rt = memory_runtime()
    h = "0123456789abcdef"
    assert check_picture(rt.near_duplicates, _job(rt, "job-first001"), h, 11) is None
    copy = check_picture(rt.near_duplicates, _job(rt, "job-copy0001", hours=1), _flip(h, [3, 40]), 11)
    assert copy == {"of": "job-first001", "distance": 2, "action": "recorded"}
    assert check_picture(rt.near_duplicates, _job(rt, "job-first001"), h, 11) is None  # its redelivery


def test_a_skipped_or_rejected_copy_leaves_the_index_so_a_later_copy_names_the_processed_picture():
    rt = memory_runtime()
    h = "fedcba9876543210"
    check_picture(rt.near_duplicates, _job(rt, "job-first001"), h, 11)
    skipped = check_picture(rt.near_duplicates, _job(rt, "job-skip0001", on_duplicate="skip", hours=1), h, 11)
    assert skipped == {"of": "job-first001", "distance": 0, "action": "skipped"}
    with pytest.raises(Duplicate) as err:
        check_picture(rt.near_duplicates, _job(rt, "job-rej00001", on_duplicate="reject", hours=2), _flip(h, [9, 10]), 11)
    assert err.value.reason.startswith("this picture is a near-duplicate of job job-first001 (their perceptual hashes "
                                       "differ in 2 of 64 bits, within NEAR_DUPLICATE_DISTANCE=11)")
    later = check_picture(rt.near_duplicates, _job(rt, "job-later001", hours=3), h, 11)
    assert later["of"] == "job-first001"
    assert set(rt.near_duplicates.entries["c1"]) == {"job-first001", "job-later001"}


def test_a_picture_without_an_owner_or_a_hash_is_not_indexed():
    rt = memory_runtime()
    assert check_picture(rt.near_duplicates, _job(rt, "job-noown001", owner=None), "0123456789abcdef", 11) is None
    assert check_picture(rt.near_duplicates, _job(rt, "job-nohash01"), None, 11) is None
    assert rt.near_duplicates.entries == {}


def test_the_job_view_and_the_completed_event_carry_the_placeholders_and_the_earlier_job():
    p = Pipeline()
    job_id = p.seed()
    facts = {"placeholders": {"thumbhash": "3EgKFwhpaIVPh2aHVnh5WIdp+SVif0IG", "blurhash": "LOJ7Bz:*IptR.m9[RlxaOqkWRjIo"},
             "duplicate": {"of": "job-first001", "distance": 4, "action": "recorded"}}
    p.rt.jobs._write(job_id, facts)
    p.run(job_id)
    [event] = p.events(job_id)  # the bus validated it against media-events.v3
    view = public_job(p.rt, p.job(job_id), with_urls=False)
    for shown in (event, view):
        assert shown["placeholders"] == facts["placeholders"]
        assert (shown["duplicate_of"], shown["distance"], shown["duplicate_action"]) == ("job-first001", 4, "recorded")
    with pytest.raises(BadMessage):  # over 40 characters breaks the contract
        validate(p.rt.settings.schemas_dir, "media-events.v3", {**event, "placeholders": {"thumbhash": "x" * 41}})


def test_render_of_a_copy_the_upload_asked_to_skip_reads_nothing_and_makes_no_rendition():
    rt = memory_runtime()
    opts = RenderOptions.build(rt.settings, load_catalogue(rt.settings))
    job, _ = rt.jobs.create("job-skip0001", {"kind": "image", "source": {}, "owner": "c1", "on_duplicate": "skip"})
    job["duplicate"] = {"of": "job-first001", "distance": 2, "action": "skipped"}
    msg = {"job_id": "job-skip0001", "kind": "image", "analysis": {"format": "jpeg", "width": 4, "height": 3},
           "source": {**SOURCE, "name": "originals/not-there"}}  # reading the original would fail: it is not stored
    out = make_handler(opts)(rt, job, msg)
    assert out.job_fields["renditions"] == []
    assert {s["preset"] for s in out.job_fields["skipped"]} == {p.name for p in opts.catalogue.image_presets}
    assert all("near-duplicate of job job-first001" in s["reason"] for s in out.job_fields["skipped"])
    [(topic, payload)] = out.publish
    validate(rt.settings.schemas_dir, "media-rendered.v3", payload)


def test_analysis_of_a_smaller_recompressed_copy_names_the_first_upload_and_reject_fails_it():
    rt = memory_runtime()
    photo = samples.photo("chelsea")

    def analyse(job_id, data, hours, **extra):
        stored = rt.blobs.put_if_absent(rt.settings.originals_bucket, f"originals/{job_id}", data, "image/jpeg")
        job = _job(rt, job_id, hours=hours, **extra)
        src = {**SOURCE, "name": f"originals/{job_id}", "generation": stored.generation}
        return analyze_handle(rt, job, {"job_id": job_id, "kind": "image", "source": src}).job_fields

    first = analyse("job-first001", samples.jpeg_bytes(photo), 0)
    assert "duplicate" not in first and first["placeholders"] == first["analysis"]["placeholders"]
    small = photo.resize((photo.width // 2, photo.height // 2))
    copy = analyse("job-copy0001", samples.jpeg_bytes(small, quality=60), 1)
    assert copy["duplicate"]["of"] == "job-first001" and copy["duplicate"]["action"] == "recorded"
    with pytest.raises(Duplicate):
        analyse("job-rej00001", samples.jpeg_bytes(photo, quality=75), 2, on_duplicate="reject")


def test_a_videos_poster_is_recorded_never_skipped_or_rejected_its_work_being_done():
    rt = memory_runtime()
    h = "0123456789abcdef"
    check_picture(rt.near_duplicates, _job(rt, "job-still001"), h, 11)
    video = _job(rt, "job-video001", on_duplicate="reject", hours=1)
    chosen = {"phash": _flip(h, [1, 2]), "placeholders": {"thumbhash": "t", "blurhash": "b"}}
    facts = _poster_facts(rt, video, chosen)
    assert facts == {"placeholders": chosen["placeholders"],
                     "duplicate": {"of": "job-still001", "distance": 2, "action": "recorded"}}
    assert "job-video001" in rt.near_duplicates.entries["c1"]
