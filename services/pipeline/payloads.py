"""The payloads the delivery core itself builds or reads, as types (their schemas are schemas/*.json).

Stage inputs beyond their common keys (`media-analyzed`, `media-rendered`) belong to the stages
that write them; the core reads only `job_id` from them (`StageInput`). The types describe the
newest version; a consumer still reads older ones (ARCHITECTURE.md, invariant 13), so a key a
newer version added is NotRequired here.
"""
from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

Kind = Literal["image", "video"]


class SourceRef(TypedDict, total=False):
    """The original: a reference, never bytes (ARCHITECTURE.md, invariant 10)."""

    uri: str  # gs://bucket/name
    bucket: str
    name: str
    generation: int
    content_type: str
    size: int
    filename: str | None
    sha256: str


class StageInput(TypedDict):
    """What every stage input carries (media-ingested, media-analyzed, media-rendered)."""

    job_id: str
    kind: Kind
    source: SourceRef


class Ingested(StageInput):
    """media-ingested.v1: ingest -> analyze."""

    submitted_at: str


class SegmentMessage(TypedDict):
    """video-segment.v1: one span of a stage's work, fanned out (services/pipeline/handon.py)."""

    job_id: str
    stage: str
    kind: Kind
    source: SourceRef
    index: int
    count: int
    start_s: float
    end_s: float
    params: dict[str, Any]  # the stage's own, per segment


class Handoff(TypedDict):
    """The next message a stage recorded on the job before publishing it (the sweep republishes it)."""

    topic: str
    payload: dict[str, Any]


class FailureReason(TypedDict):
    """Why a job failed, for a person (ARCHITECTURE.md, invariant 7)."""

    stage: str
    error_class: str
    reason: str


class EventLinks(TypedDict):
    """Our API, on PUBLIC_BASE_URL: what a consumer follows with its own credential."""

    job: str  # GET /v1/jobs/{id}
    playback: NotRequired[str]  # playable and completed videos: POST /v1/jobs/{id}/playback


class Event(TypedDict):
    """media-events.v3 (public, stable): a job's one final event (`completed`/`failed`) or a
    lifecycle event (`playable`, `deleted`). Files are links to our API: no bucket, no gs:// URI."""

    id: str  # <job_id>/<status>
    type: str
    job_id: str
    status: Literal["completed", "failed", "deleted", "playable"]
    occurred_at: str
    links: EventLinks
    kind: NotRequired[Kind]
    source: NotRequired[dict[str, Any]]
    analysis: NotRequired[dict[str, Any]]
    renditions: NotRequired[list[dict[str, Any]]]
    skipped: NotRequired[list[dict[str, Any]]]
    storyboard: NotRequired[dict[str, Any]]
    video: NotRequired[dict[str, Any]]
    error: NotRequired[FailureReason]
    placeholders: NotRequired[dict[str, str]]  # events.picture_facts: thumbhash, blurhash
    duplicate_of: NotRequired[str]
    distance: NotRequired[int]
    duplicate_action: NotRequired[str]
    cost: NotRequired[dict[str, Any]]  # the estimated cost (services/pipeline/cost.py, docs/cost.md)


class EventV2(TypedDict):
    """media-events.v2: the final event with gs:// references, published for one release after v3."""

    id: str  # <job_id>/<status>
    type: str
    job_id: str
    status: Literal["completed", "failed"]
    occurred_at: str
    kind: NotRequired[Kind]
    source: NotRequired[dict[str, Any]]
    analysis: NotRequired[dict[str, Any]]
    renditions: NotRequired[list[dict[str, Any]]]
    skipped: NotRequired[list[dict[str, Any]]]
    storyboard: NotRequired[dict[str, Any]]
    video: NotRequired[dict[str, Any]]
    error: NotRequired[FailureReason]
