"""A job's estimated cost against a hand calculation (docs/cost.md), on a private local cloud.

One image (a 4000x3000 JPEG) and one video (75 s of 426x240 H.264 + AAC, three segments of
VIDEO_SEGMENT_SECONDS=30) go through the whole chain; for each the bench prints what every stage
recorded (the job document's `stages.<stage>.usage`, the fanned-out stages summed over their
segment records at the fan-in), then prices it by hand, part by part, written out as arithmetic on
the recorded figures and the same prices (not through services/pipeline/cost.py), beside the
estimate the job view and the event carry. It also works out the bound the estimate leaves out:
analyze and render alone on their instances (2 vCPU, 4 GiB, terraform/variables.tf) for the wall
time of their requests. Outputs (the jobs' cost objects) under bench/out/cost/.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import requests

from localcloud import samples
from localcloud.stack import private_stack

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "cost"
INSTANCE = {"analyze": (2, 4.0), "render": (2, 4.0)}  # vCPU, GiB: terraform/variables.tf `services`


def _wait(session: requests.Session, url: str, job_id: str, timeout: float = 900) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = session.get(f"{url}/v1/jobs/{job_id}", timeout=30).json()
        if doc["status"] in ("completed", "failed"):
            return doc
        time.sleep(1)
    raise RuntimeError(f"job {job_id} did not end within {timeout} s")


def _hand(label: str, job: dict, est: dict) -> dict:
    """Each part priced by hand from the recorded usage: the arithmetic printed, then compared."""
    p = est["prices"]
    stages = {s: r["usage"] for s, r in job["stages"].items() if r.get("usage")}
    size = job["source"]["size"]
    # ingest is modelled: 1 request, the original written and kept, 1 message, 11 reads + 4 writes (docs/cost.md)
    ingest = {"requests": 1, "bytes_written": size, "work_bytes_written": 0, "objects_written": 1, "message_bytes": 1000,
              "firestore_reads": 11, "firestore_writes": 4, "firestore_deletes": 0, "cpu_seconds": 0.0,
              "memory_gib_seconds": 0.0}
    rows = {"ingest (modelled)": ingest, **stages}
    print(f"\n--- {label}: job {job['job_id']} ({job['kind']}, {size} bytes) ---")
    print(f"{'stage':<18}{'req':>4}{'wall s':>9}{'cpu s':>9}{'peak MiB':>10}{'GiB·s':>9}{'written':>11}{'work':>9}"
          f"{'objs':>6}{'msgs':>6}{'msg B':>8}{'fs r/w/d':>12}")
    for name, u in rows.items():
        print(f"{name:<18}{u['requests']:>4}{u.get('wall_seconds', 0):>9.3f}{u['cpu_seconds']:>9.3f}"
              f"{u.get('peak_memory_bytes', 0) / 2**20:>10.1f}{u['memory_gib_seconds']:>9.4f}{u['bytes_written']:>11}"
              f"{u['work_bytes_written']:>9}{u['objects_written']:>6}{u.get('messages', 1):>6}{u['message_bytes']:>8}"
              f"{u['firestore_reads']:>4}/{u['firestore_writes']}/{u['firestore_deletes']}")

    def tot(k):
        return sum(u[k] for u in rows.values())

    cpu, gibs, req = tot("cpu_seconds"), tot("memory_gib_seconds"), tot("requests")
    kept, objs, msgb = tot("bytes_written") - tot("work_bytes_written"), tot("objects_written"), tot("message_bytes")
    r, w, d = tot("firestore_reads"), tot("firestore_writes"), tot("firestore_deletes")
    hand = {
        "cpu": (f"{cpu:.4f} vCPU-s x {p['vcpu_second']}", cpu * p["vcpu_second"]),
        "memory": (f"{gibs:.4f} GiB-s x {p['gib_second']}", gibs * p["gib_second"]),
        "requests": (f"{req} x {p['request']}", req * p["request"]),
        "storage_month": (f"{kept} B / 2^30 x {p['storage_gb_month']}", kept / 2**30 * p["storage_gb_month"]),
        "storage_writes": (f"{objs} x {p['storage_write']}", objs * p["storage_write"]),
        "pubsub": (f"{msgb} B / 2^40 x {p['pubsub_tib']}", msgb / 2**40 * p["pubsub_tib"]),
        "firestore": (f"({r} x {p['firestore_reads_100k']} + {w} x {p['firestore_writes_100k']} + {d} x "
                      f"{p['firestore_deletes_100k']}) / 1e5",
                      (r * p["firestore_reads_100k"] + w * p["firestore_writes_100k"] + d * p["firestore_deletes_100k"]) / 1e5),
    }
    print(f"\n{'part':<16}{'hand calculation':<58}{'by hand USD':>14}{'estimate USD':>14}")
    for part, (formula, usd) in hand.items():
        print(f"{part:<16}{formula:<58}{usd:>14.10f}{est['parts'][part]:>14.10f}")
    by_hand = sum(usd for _, usd in hand.values())
    print(f"{'total':<16}{'':<58}{by_hand:>14.10f}{est['total_usd']:>14.10f}   (difference {by_hand - est['total_usd']:+.2e})")
    if est.get("per_video_minute_usd"):
        minutes = job["analysis"]["duration_s"] / 60
        print(f"per video minute: {by_hand:.10f} / {minutes:.4f} min = {by_hand / minutes:.10f}"
              f" (estimate {est['per_video_minute_usd']:.10f})")
    alone = sum(stages[s]["wall_seconds"] * (v * p["vcpu_second"] + g * p["gib_second"])
                for s, (v, g) in INSTANCE.items() if s in stages)
    print(f"bound left out: analyze + render each alone on a 2 vCPU / 4 GiB instance for their requests' wall time: "
          f"{alone:.10f} USD of compute (estimate's compute: {hand['cpu'][1] + hand['memory'][1]:.10f})")
    return {"by_hand_usd": by_hand, "estimate_usd": est["total_usd"], "alone_on_instances_compute_usd": alone}


def main() -> None:
    from services.pipeline.jobstore import JobStore

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, \
            private_stack(Path(tmp), "mediarelay-bench-cost", {"VIDEO_SEGMENT_SECONDS": "30"}) as cfg:
        url = cfg.url("ingest")
        video = samples.long_video_mp4(Path(tmp) / "clip.mp4", seconds=75.0).read_bytes()
        inputs = [("image", samples.large_jpeg(4000, 3000), "image/jpeg"), ("video", video, "video/mp4")]
        report = {}
        with requests.Session() as s:
            s.headers["Authorization"] = f"Bearer {cfg.api_key}"
            for label, data, ctype in inputs:
                resp = s.post(f"{url}/v1/uploads", data=data, headers={"Content-Type": ctype}, timeout=120)
                resp.raise_for_status()
                view = _wait(s, url, resp.json()["job_id"])
                assert view["status"] == "completed", view
                job = JobStore(cfg.project).get(view["job_id"])  # the internal document: per-stage usage
                report[label] = {"cost": view["cost"], **_hand(label, job, view["cost"])}
        (OUT / "cost.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
