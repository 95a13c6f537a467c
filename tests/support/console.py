"""Jobs the console tests and `make screenshots` need, made in a local cloud: a failed one (a PNG
whose pixel stream is damaged, through ingest: the real pipeline fails it with its reason) and one parked
dead-lettered whose message waits in the operators' dead-letter subscription, exactly as Pub/Sub
leaves it after the last delivery attempt (its dead-letter attributes); a replay completes it."""
from __future__ import annotations

import json

import requests

from localcloud.stack import StackConfig
from services.pipeline.jobstore import JobStore
from tests.support.corpus import png_idat_damaged
from tests.support.pushes import seed_job

DLQ_TOPIC = "analyze-media-ingested-dlq"
PARKED_REASON = "not acknowledged after 5 delivery attempts"


def failed_upload(cfg: StackConfig) -> str:
    """A job the pipeline fails (corrupt-media, from the corpus of hostile files): its id."""
    resp = requests.post(f"{cfg.url('ingest')}/v1/uploads", data=png_idat_damaged(),
                         headers={"Content-Type": "image/png", "Authorization": f"Bearer {cfg.api_key}"}, timeout=30)
    resp.raise_for_status()
    return resp.json()["job_id"]


def parked_job(cfg: StackConfig) -> str:
    """A job parked dead-lettered in analyze, its media-ingested message in the dead-letter topic."""
    from google.cloud import pubsub_v1

    payload = seed_job(cfg)
    job_id = payload["job_id"]
    store = JobStore(cfg.project)
    store.begin_stage(job_id, "analyze")
    store.mark_dead_lettered(job_id, "analyze", PARKED_REASON)
    publisher = pubsub_v1.PublisherClient()
    publisher.publish(publisher.topic_path(cfg.project, DLQ_TOPIC), json.dumps(payload).encode(), job_id=job_id,
                      schema="media-ingested.v1", CloudPubSubDeadLetterSourceDeliveryCount="5",
                      CloudPubSubDeadLetterSourceSubscription="analyze-media-ingested").result(timeout=30)
    return job_id
