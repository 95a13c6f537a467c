"""The `playable` lifecycle event: the ladder plays before the job is done.

Render's delivery of segment 0 (the first media segments of every rung, stored with its result)
publishes it; notify publishes it before the final event of a video job that has none yet (a
one-segment video renders in one push; a lost claim heals there). Exactly one delivery claims
it on the job (jobstate.claim_playable, which records `timings.playable_at`); its id
`<job_id>/playable` is stable, so a copy re-published after a crash can be dropped.
"""
from __future__ import annotations

import logging

from ..common.errors import TransientError
from ..common.logs import log
from . import events
from .handon import public_base_url
from .jobstate import PlayableClaim
from .runtime import Runtime

logger = logging.getLogger("mediarelay.playable")


def publish_playable(rt: Runtime, job_id: str, *, wait: bool = False) -> bool:
    """Publish the job's `playable` event unless it is out (or being published, or the job ended).
    `wait`: a claim another delivery holds is a transient error (notify's final event comes after
    `playable`, so notify retries until it is out). True when this call published it."""
    claim, job = rt.jobs.claim_playable(job_id)
    if claim is PlayableClaim.BUSY and wait:
        raise TransientError(f"job {job_id}: its playable event is being published by another delivery")
    if claim is not PlayableClaim.CLAIMED or job is None:
        return False
    event = events.playable_event(job, public_base_url(rt))
    message_id = rt.bus.publish(events.TOPIC, event, job_id=job_id)
    rt.jobs.mark_playable_published(job_id, message_id)
    log(logger, logging.INFO, "job playable: event published", event_id=event["id"])
    return True
