"""Pushes made by hand, as Pub/Sub makes them, and jobs seeded straight into the local cloud:
what the delivery tests and benches push at the services to drive one job exactly where they want."""
from __future__ import annotations

import base64
import json
import uuid

from localcloud.chaos import small_jpeg
from localcloud.stack import StackConfig
from services.ingest.clients import client_id_of
from services.pipeline.blobs import BlobStore
from services.pipeline.jobstore import JobStore


def seed_job(cfg: StackConfig, job_id: str | None = None, **fields) -> dict:
    """A stored original and its job document, made directly: nothing is published, so only
    what a test pushes moves it. Returns its media-ingested payload."""
    job_id = job_id or f"seed-{uuid.uuid4().hex[:12]}"
    raw = small_jpeg(hash(job_id) % 100_000)
    obj = BlobStore(cfg.project).put_if_absent("mediarelay-originals", f"originals/{job_id}", raw, "image/jpeg")
    source = {"uri": obj.uri, "bucket": obj.bucket, "name": obj.name, "generation": obj.generation,
              "content_type": "image/jpeg", "size": len(raw)}
    # Owned by the stack's local client, so tests read it through ingest as that client.
    owner = client_id_of(cfg.api_key) if cfg.api_key else None
    JobStore(cfg.project).create(job_id, {"kind": "image", "source": source, "owner": owner, **fields})
    return {"job_id": job_id, "kind": "image", "source": source, "submitted_at": "2026-01-01T00:00:00Z"}


def envelope(payload: dict, schema: str, delivery_attempt: int | None = None, **attributes) -> dict:
    """A wrapped push request as Pub/Sub sends it (production sends deliveryAttempt)."""
    message = {"data": base64.b64encode(json.dumps(payload).encode()).decode(),
               "attributes": {"job_id": payload.get("job_id", ""), "schema": schema, **attributes},
               "messageId": uuid.uuid4().hex[:12], "publishTime": "2026-01-01T00:00:00Z"}
    body: dict[str, object] = {"message": message, "subscription": "projects/p/subscriptions/s"}
    if delivery_attempt is not None:
        body["deliveryAttempt"] = delivery_attempt
    return body
