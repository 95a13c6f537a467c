"""A job's estimated cost (docs/cost.md) on the local cloud: the image job's view and its public
event carry the same `cost`, whose parts and stages add up to its total, with CPU measured from
the media children (> 0), and `stats` sums it for the job's client."""
from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from PIL import Image

from services.pipeline.cost import PARTS
from tests.cloud.conftest import wait_for_status


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.effect_mandelbrot((1600, 1200), (-2.0, -1.2, 1.0, 1.2), 60).convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_an_image_jobs_view_and_event_carry_a_cost_whose_parts_add_up(stack, ingest_url, new_client, events):
    client_id, c, key = new_client("cost-client")
    resp = c.post(f"{ingest_url}/v1/uploads", data=_jpeg(), headers={"Content-Type": "image/jpeg"}, timeout=30)
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]
    view = wait_for_status(c, ingest_url, job_id)
    assert view["status"] == "completed", view
    [event] = events.wait_for_jobs([job_id], timeout=30)[job_id]

    cost = view["cost"]
    assert event["cost"] == cost  # the view shows what the event said
    assert cost["estimated"] is True and cost["currency"] == "USD"
    assert sum(cost["parts"].values()) == pytest.approx(cost["total_usd"], abs=1e-9)
    assert sum(cost["stages"].values()) == pytest.approx(cost["total_usd"], abs=1e-9)
    assert set(cost["parts"]) == set(PARTS) and set(cost["stages"]) == {"ingest", "analyze", "render", "notify"}
    used = cost["usage"]
    assert cost["parts"]["cpu"] > 0 and used["cpu_seconds"] > 0  # the analyze and render children's rusage
    assert used["peak_memory_bytes"] > 10 * 2**20  # a decoded 1600x1200 image, at least
    assert used["bytes_written"] > 0 and used["objects_written"] >= 2  # the renditions
    assert used["requests"] == 4 and used["firestore_writes"] > 0 and used["messages"] >= 6
    assert cost["prices"]["vcpu_second"] > 0 and "us-central1" in cost["prices"]["price_list"]
    assert "per_video_minute_usd" not in cost

    [row] = c.get(f"{ingest_url}/v1/stats", params={"days": 1}, timeout=30).json()["days"]
    assert row["client_id"] == client_id and row["cost_usd"] == pytest.approx(cost["total_usd"], abs=1e-9)
    out = subprocess.run([sys.executable, "-m", "services.cli", "stats", "--days", "1", "--url", ingest_url],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "MEDIARELAY_API_KEY": key})
    assert out.returncode == 0 and f"{client_id} ${cost['total_usd']:.6f}" in out.stdout, out.stdout + out.stderr
