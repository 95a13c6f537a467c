"""Every setting, declared once: its environment variable, type, default, group, the services
that read it and what it means. From this one declaration come the typed `Settings` every
service reads (once per process), docs/configuration.md (`python -m services.common.config`,
checked by tests/unit/test_settings.py) and the check of Terraform's environment (same test).

A bad value stops the service at start-up, naming the variable, never a job later.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY_FILE = REPO_ROOT / "schemas" / "topology.json"
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
SERVICES = ("ingest", "analyze", "render", "notify", "console")
ALL = SERVICES


def parse_rgb(text: str) -> tuple[int, int, int]:
    """'#rrggbb', 'rrggbb' or 'r,g,b' -> (r, g, b)."""
    t = text.strip().lstrip("#")
    try:
        if len(t) == 6 and "," not in t:
            rgb = tuple(int(t[i:i + 2], 16) for i in (0, 2, 4))
        else:
            rgb = tuple(int(v) for v in t.split(","))
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise ValueError("expected #rrggbb or r,g,b")
    return rgb[0], rgb[1], rgb[2]


def _list(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _lower(text: str) -> str:
    return text.strip().lower()


def _url(text: str) -> str:
    return text.strip().rstrip("/")


def _dup_distance(text: str) -> int:
    d = int(text)
    if not 0 <= d <= 11:  # the index's 4 bands probe at most 2 bits each (services/pipeline/neardup.py)
        raise ValueError("must be 0..11")
    return d


def _hosts(text: str) -> frozenset[str]:
    return frozenset(h.lower() for h in _list(text))


def _keyring(text: str) -> tuple[tuple[str, bytes], ...]:
    """'kid:base64,kid:base64' -> ((kid, secret), ...), each secret at least 32 bytes, ids unique."""
    import base64
    import binascii

    ring = []
    for item in _list(text):
        kid, _, b64 = item.partition(":")
        try:
            secret = base64.b64decode(b64, validate=True)
        except binascii.Error:
            secret = b""
        if not kid or len(secret) < 32:
            raise ValueError("expected kid:base64 of at least 32 random bytes (e.g. `k1:$(openssl rand -base64 32)`)")
        ring.append((kid, secret))
    if len({k for k, _ in ring}) != len(ring):
        raise ValueError("key ids must be unique")
    return tuple(ring)


# How a value is read from the environment, by the field's type.
_PARSERS: dict[str, Callable[[str], Any]] = {
    "str": str, "int": int, "float": float, "Path": Path, "tuple[str, ...]": _list, "frozenset[str]": _hosts,
}


@dataclass(frozen=True)
class Declared:
    env: str
    default: Any
    services: tuple[str, ...]
    help: str
    parse: Callable[[str], Any] | None
    group: str = ""

    def shown_default(self) -> str:
        """The default as the environment would spell it (paths relative to the repository)."""
        d = self.default
        if isinstance(d, Path):
            return str(d.relative_to(REPO_ROOT)) if d.is_relative_to(REPO_ROOT) else str(d)
        if isinstance(d, tuple) and len(d) == 3 and all(isinstance(v, int) for v in d):
            return "#" + "".join(f"{v:02x}" for v in d)  # a colour
        if isinstance(d, tuple | frozenset):
            return ",".join(str(v) for v in d)
        return str(d)


def setting(env: str, default: Any, services: tuple[str, ...], help: str, *,
            parse: Callable[[str], Any] | None = None) -> Any:
    return dataclasses.field(metadata={"declared": Declared(env, default, services, help, parse)})


@dataclass(frozen=True)
class Settings:

    # --- Cloud -----------------------------------------------------------------------------------------------
    project: str = setting("GOOGLE_CLOUD_PROJECT", "mediarelay-local", ALL, "project of topics, Firestore, buckets")
    originals_bucket: str = setting("ORIGINALS_BUCKET", "mediarelay-originals", ALL, "where originals live")
    renditions_bucket: str = setting("RENDITIONS_BUCKET", "mediarelay-renditions", ALL,
        "where renditions and the work of segments live")
    schemas_dir: Path = setting("SCHEMAS_DIR", REPO_ROOT / "schemas", ALL,
        "message schemas (JSON Schema 2020-12), one file per type and version")
    topology_file: Path = setting("TOPOLOGY_FILE", TOPOLOGY_FILE, ALL,
        "the one declaration of topics, push subscriptions and buckets")
    public_base_url: str = setting("PUBLIC_BASE_URL", "", ALL, "base of `status_url` links", parse=_url)
    publish_timeout_seconds: float = setting("PUBLISH_TIMEOUT_SECONDS", 30, ALL, "wait for a publish to be confirmed")
    job_ttl_days: int = setting("JOB_TTL_DAYS", 30, ALL, "`expires_at` of job documents (Firestore TTL)")

    # --- Serving ---------------------------------------------------------------------------------------------
    port: int = setting("PORT", 8080, ALL, "the port the service listens on (Cloud Run sets it)")
    host: str = setting("HOST", "0.0.0.0", ALL, "the address it listens on")
    web_concurrency: int = setting("WEB_CONCURRENCY", 0, ALL, "gunicorn worker processes; 0 = the CPUs")
    gunicorn_threads: int = setting("GUNICORN_THREADS", 4, ALL, "request threads per worker (they wait on GCS/Firestore/Pub/Sub)")
    gunicorn_timeout: int = setting("GUNICORN_TIMEOUT", 600, ALL,
        "gunicorn kills a request running longer (above the longest push ack deadline)")
    gunicorn_graceful_timeout: int = setting("GUNICORN_GRACEFUL_TIMEOUT", 20, ALL,
        "requests in flight get this long to finish on SIGTERM")
    log_level: str = setting("LOG_LEVEL", "INFO", ALL, "JSON logs in the Cloud Logging format, with trace correlation")
    fault_injection: str = setting("FAULT_INJECTION", "", ALL,
        "chaos testing only: e.g. `storage=0.2,firestore=0.2,pubsub=0.1,stage.render=1` fails that share of calls with "
        "a 503; `media-crash.render_media=1` kills that share of render's media children with SIGSEGV")

    # --- Front door (nginx) ----------------------------------------------------------------------------------
    front_header_timeout_seconds: float = setting("FRONT_HEADER_TIMEOUT_SECONDS", 10, ("ingest",),
        "nginx in front of ingest (`services/common/front.py`): the request's headers must arrive whole within this, "
        "else the connection is closed")
    front_body_timeout_seconds: float = setting("FRONT_BODY_TIMEOUT_SECONDS", 10, ("ingest",),
        "nginx: the longest pause between two reads of a request body (408 problem after); the body is buffered before "
        "gunicorn sees it")
    front_max_connections: int = setting("FRONT_MAX_CONNECTIONS", 4096, ("ingest",),
        "client connections nginx holds at once (a slow one costs a connection, never a request thread)")
    front_upstream_timeout_seconds: float = setting("FRONT_UPSTREAM_TIMEOUT_SECONDS", 120, ("ingest",),
        "nginx waits this long for gunicorn's answer to a whole request")

    # --- Uploads ---------------------------------------------------------------------------------------------
    max_upload_bytes: int = setting("MAX_UPLOAD_BYTES", 32 * 1024 * 1024, ("ingest",),
        "largest direct upload body (413 above)")
    max_signed_upload_bytes: int = setting("MAX_SIGNED_UPLOAD_BYTES", 256 * 1024 * 1024, ("ingest",),
        "largest image through a signed URL or resumable session (413 when asked; a failed job if the object is over "
        "it)")
    # Peers take 5-30 GB; a phone's five-minute 4K60 clip is ~500 MB. The body goes straight to GCS
    # and segments read it by ranges, so no instance holds it: the bound is cost, not memory.
    max_video_upload_bytes: int = setting("MAX_VIDEO_UPLOAD_BYTES", 10 * 1024**3, ("ingest",),
        "largest video through a signed URL or resumable session (413 when asked; a failed job if the object is over "
        "it)")
    signed_url_ttl_seconds: int = setting("SIGNED_URL_TTL_SECONDS", 900, ("ingest",), "lifetime of a signed upload URL")
    signing_key_file: str = setting("SIGNING_KEY_FILE", "", ("ingest",),
        "service-account key to sign URLs with; empty = IAM signBlob as the runtime account (Cloud Run)")
    storage_read_endpoint: str = setting("STORAGE_READ_ENDPOINT", "", ("ingest",),
        "where signed GET URLs point (scheme://host[:port]); empty = the storage client's endpoint "
        "(https://storage.googleapis.com in production). Upload URLs always use the client's endpoint", parse=_url)
    max_form_parts: int = setting("MAX_FORM_PARTS", 8, ("ingest",),
        "parts of a multipart upload, and bytes of its non-file fields (413 above)")
    max_form_memory_bytes: int = setting("MAX_FORM_MEMORY_BYTES", 64 * 1024, ("ingest",),
        "parts of a multipart upload, and bytes of its non-file fields (413 above)")
    max_filename_chars: int = setting("MAX_FILENAME_CHARS", 200, ("ingest",),
        "client filenames are cut to this (after dropping paths, control/format characters and markup)")
    rendition_url_ttl_seconds: int = setting("RENDITION_URL_TTL_SECONDS", 3600, ("ingest",),
        "lifetime of the signed rendition URLs in job answers (reused while more than half is left)")
    renditions_base_url: str = setting("RENDITIONS_BASE_URL", "", ("ingest",),
        "a CDN in front of the renditions bucket: rendition URLs are `<base>/<object>` instead of signed", parse=_url)

    # --- Upload clients --------------------------------------------------------------------------------------
    api_key_cache_seconds: float = setting("API_KEY_CACHE_SECONDS", 30, ("ingest",),
        "ingest caches client documents this long: a revoked key stops working within it")
    client_token_audiences: tuple[str, ...] = setting("CLIENT_TOKEN_AUDIENCES", (), ("ingest",),
        "audiences of the Google ID tokens ingest accepts from upload clients (comma-separated); empty = API keys only")
    client_token_issuers: tuple[str, ...] = setting(
        "CLIENT_TOKEN_ISSUERS", ("https://accounts.google.com", "accounts.google.com"), ("ingest",),
        "their issuers (Firebase Auth: `https://securetoken.google.com/<project>`)")
    client_token_certs_url: str = setting("CLIENT_TOKEN_CERTS_URL", GOOGLE_CERTS_URL, ("ingest",),
        "their signing keys (Firebase Auth: the `securetoken@system.gserviceaccount.com` x509 URL)")
    quota_uploads_per_day: int = setting("QUOTA_UPLOADS_PER_DAY", 10000, ("ingest", "console"),
        "per client and UTC day (a client's `quotas` override them; `clients create --uploads-per-day/--bytes-per-"
        "day`); 429 above")
    quota_bytes_per_day: int = setting("QUOTA_BYTES_PER_DAY", 50 * 1024**3, ("ingest", "console"),
        "per client and UTC day (a client's `quotas` override them; `clients create --uploads-per-day/--bytes-per-"
        "day`); 429 above")
    quota_counter_shards: int = setting("QUOTA_COUNTER_SHARDS", 10, ("ingest",),
        "shards of each usage counter (no hot document); each holds its part of the quota, so a burst never exceeds it")
    client_rate_per_second: float = setting("CLIENT_RATE_PER_SECOND", 20.0, ("ingest",),
        "requests per second per client, per gunicorn worker (a token bucket in memory: services/ingest/ratelimit.py); "
        "429 with `Retry-After` above; 0 turns it off")
    client_rate_burst: int = setting("CLIENT_RATE_BURST", 40, ("ingest",),
        "requests one client may make at once before CLIENT_RATE_PER_SECOND applies")

    # --- Media limits ----------------------------------------------------------------------------------------
    max_image_pixels: int = setting("MAX_IMAGE_PIXELS", 100_000_000, ("ingest", "analyze", "render"),
        "largest image, checked from the header before decoding")
    max_video_seconds: float = setting("MAX_VIDEO_SECONDS", 7200, ("ingest", "analyze", "render"),
        "longest video, from the header and again while decoding (frames are counted per segment)")
    max_video_frames: int = setting("MAX_VIDEO_FRAMES", 432000, ("ingest", "analyze", "render"),
        "longest video, from the header and again while decoding (frames are counted per segment)")
    max_video_frame_pixels: int = setting("MAX_VIDEO_FRAME_PIXELS", 7680 * 4320, ("ingest", "analyze", "render"),
        "largest video frame, from the header before decoding and per decoded frame")
    jpeg_max_scans: int = setting("JPEG_MAX_SCANS", 100, ("ingest", "analyze", "render"),
        "most scans (SOS markers) a JPEG may have, counted from the bytes (a progressive photo has ~10; a scan bomb "
        "thousands)")

    # --- Bounded media work ----------------------------------------------------------------------------------
    stage_time_budget_seconds: float = setting("STAGE_TIME_BUDGET_SECONDS", 90, ("analyze", "render"),
        "work budget of one stage (enforced inside analysis), below the push ack deadline")
    media_memory_limit_bytes: int = setting("MEDIA_MEMORY_LIMIT_BYTES", 1536 * 2**20, ("ingest", "analyze", "render"),
        "memory of the child process that decodes/analyses/renders one job (above its start-up size); a file whose one "
        "decoded frame needs more is refused from its headers")
    media_cpu_limit_seconds: int = setting("MEDIA_CPU_LIMIT_SECONDS", 300, ("ingest", "analyze", "render"),
        "CPU time of that child (RLIMIT_CPU)")
    stage_deadline_margin_seconds: float = setting("STAGE_DEADLINE_MARGIN_SECONDS", 15, ("analyze", "render"),
        "the child's wall-clock deadline is the stage's push ack deadline (topology) minus this")
    media_crash_attempts: int = setting("MEDIA_CRASH_ATTEMPTS", 2, ("analyze", "render"),
        "a child killed by a signal this many times on one job ends it `corrupt-media` (before: 503, redelivered)")
    media_cancel_poll_seconds: float = setting("MEDIA_CANCEL_POLL_SECONDS", 1.0, ("analyze", "render"),
        "while a child works, its stage reads the job this often; once the job has ended (`jobs cancel`) the child is "
        "killed and the stage writes nothing more")
    instance_memory_bytes: int = setting("INSTANCE_MEMORY_BYTES", 0, ("ingest", "analyze", "render"),
        "admission: a stage answers 503 (redelivered) to work whose declared memory need does not fit what the instance"
        " has left")

    # --- Near-duplicates -------------------------------------------------------------------------------------
    near_duplicate_distance: int = setting("NEAR_DUPLICATE_DISTANCE", 11, ("analyze", "render"),
        "two pictures of one client whose pHashes differ in at most this many of 64 bits are near-duplicates (0..11; "
        "`python -m bench duplicates` measured it: resize, JPEG q60, 3 % crop, watermark, format change, EXIF strip)",
        parse=_dup_distance)

    # --- Render ----------------------------------------------------------------------------------------------
    render_presets_file: Path = setting("RENDER_PRESETS_FILE", REPO_ROOT / "services" / "render" / "presets.json", ("render",),
        "rendition presets (box, fit, formats, qualities), validated against `presets.schema.json` at start-up")
    flatten_background: tuple[int, int, int] = setting("FLATTEN_BACKGROUND", (255, 255, 255), ("render",),
        "colour alpha is flattened onto for JPEG (`#rrggbb` or `r,g,b`)", parse=parse_rgb)
    render_encode_threads: int = setting("RENDER_ENCODE_THREADS", 0, ("render",),
        "encode threads per job (a rendition over 10 MP always encodes alone, `services/render/image.py` `EncodeGate`: "
        "24 MP peak 232 → 173 MB for ~20 % more wall time)")
    animation_max_decode_pixels: int = setting("ANIMATION_MAX_DECODE_PIXELS", 2_000_000_000, ("render",),
        "frames x canvas an animated rendition may decode; above, only the first frame is decoded (static WebP, noted "
        "in `skipped`)")
    animation_max_frames: int = setting("ANIMATION_MAX_FRAMES", 300, ("render",),
        "above these, an animated source gets a static WebP (noted in `skipped`)")
    animation_max_pixels: int = setting("ANIMATION_MAX_PIXELS", 25_000_000, ("render",),
        "above these, an animated source gets a static WebP (noted in `skipped`)")
    storyboard_tile_width: int = setting("STORYBOARD_TILE_WIDTH", 160, ("render",), "video storyboard sprite and its WebVTT")
    storyboard_columns: int = setting("STORYBOARD_COLUMNS", 10, ("render",), "video storyboard sprite and its WebVTT")
    storyboard_interval_seconds: float = setting("STORYBOARD_INTERVAL_SECONDS", 2, ("render",),
        "video storyboard sprite and its WebVTT")
    storyboard_max_tiles: int = setting("STORYBOARD_MAX_TILES", 100, ("render",), "video storyboard sprite and its WebVTT")
    video_max_stills: int = setting("VIDEO_MAX_STILLS", 50, ("render",), "at most one still per shot, up to this many")
    hls_segment_seconds: float = setting("HLS_SEGMENT_SECONDS", 6, ("analyze", "render"),
        "HLS media segment length: an IDR at every boundary in every rung; a segment's last one absorbs a remainder "
        "under half of it")
    video_hdr: str = setting("VIDEO_HDR", "tonemap", ("render",),
        "PQ/HLG sources: `tonemap` to SDR BT.709 (every player), or `passthrough` (10-bit H.264 High 10 with the HDR "
        "tags; few players)", parse=_lower)

    # --- Long videos -----------------------------------------------------------------------------------------
    video_segment_seconds: float = setting("VIDEO_SEGMENT_SECONDS", 15, ("analyze", "render"),
        "a video longer than this is split at keyframes into segments of about this length, fanned out over Pub/Sub "
        "(one segment: no fan-out). 15 s: `python -m bench ready` models a 10-minute 1080p video ready within 60 s at "
        "50 instances from 20 s down; `python -m bench segments` measures its ladder's CPU at 15 s spans")
    video_first_segment_seconds: float = setting("VIDEO_FIRST_SEGMENT_SECONDS", 2, ("analyze",),
        "a video that is split gets a first segment this short (to the next keyframe): its render is the first "
        "thing a player needs, so the video is `playable` that much sooner (0: as long as the others)")
    video_max_segments: int = setting("VIDEO_MAX_SEGMENTS", 300, ("analyze", "render"),
        "most segments per job (`limit-exceeded` above, naming both settings)")
    video_segment_overlap_seconds: float = setting("VIDEO_SEGMENT_OVERLAP_SECONDS", 3, ("analyze", "render"),
        "analysis decodes this much before and after each segment, so a transition on or across a boundary is found "
        "once (the detector needs ≥ 2.55 s at 24–60 fps, 2.7 s at 10 fps)")
    video_truncation_tolerance_seconds: float = setting("VIDEO_TRUNCATION_TOLERANCE_SECONDS", 1.0, ("analyze",),
        "a video whose packets end more than this before the duration its header declares (a file cut short with its "
        "index in front) fails `corrupt-media` (`truncated-video`: \"its data ends at 3.1 s of the 6.0 s its header "
        "declares\"), before any segment is fanned out")
    source_read_block_bytes: int = setting("SOURCE_READ_BLOCK_BYTES", 1 * 2**20, ("analyze", "render"),
        "a video's original is read by byte ranges (never downloaded whole), one ranged GET per block of this size "
        "(fewer requests vs less read beyond what a segment needs)")
    source_read_cache_blocks: int = setting("SOURCE_READ_CACHE_BLOCKS", 16, ("analyze", "render"),
        "blocks of the original kept per open source (memory: this times `SOURCE_READ_BLOCK_BYTES`), so FFmpeg's jumps "
        "between index, video and audio of a badly interleaved file do not fetch the same block again")
    video_segment_record_ttl_days: float = setting("VIDEO_SEGMENT_RECORD_TTL_DAYS", 2, ("analyze", "render"),
        "`expires_at` of finished-segment records (Firestore TTL): the backstop for records whose fan-in never "
        "came; the fan-in deletes them itself (as Terraform's `segment_work_ttl_days` is for work/ objects)")
    video_segment_time_budget_seconds: float = setting("VIDEO_SEGMENT_TIME_BUDGET_SECONDS", 240, ("analyze", "render"),
        "work budget of one analysis segment; every segment's child also stops at its subscription's ack deadline (300 "
        "s analyze, 600 s render) minus `STAGE_DEADLINE_MARGIN_SECONDS`")

    # --- Push authentication ---------------------------------------------------------------------------------
    push_verification: str = setting("PUSH_VERIFICATION", "on", ALL,
        "`on`: push (and sweep) requests must carry a valid OIDC token, and a service refuses to start while "
        "`PUSH_AUDIENCE`, `PUSH_SERVICE_ACCOUNT` (or, on notify, `SCHEDULER_SERVICE_ACCOUNT`) is empty; `off`: no "
        "verification, on purpose (the local cloud sets it: the emulator sends no token; Terraform never does), said in"
        " the start-up log and by `/healthz`", parse=_lower)
    push_audience: str = setting("PUSH_AUDIENCE", "", ALL,
        "expected OIDC audience of push requests (required when verification is on)")
    push_service_account: str = setting("PUSH_SERVICE_ACCOUNT", "", ALL,
        "the only service account whose push tokens are accepted")
    push_certs_url: str = setting("PUSH_CERTS_URL", GOOGLE_CERTS_URL, ALL,
        "where token signing keys are fetched (PEM or JWKS; cached per `Cache-Control`)")
    certs_refetch_min_seconds: float = setting("CERTS_REFETCH_MIN_SECONDS", 30, ALL,
        "a token with an unknown key id refetches the certs at most this often (else 401 at once)")

    # --- Operations ------------------------------------------------------------------------------------------
    stuck_after_seconds: int = setting("STUCK_AFTER_SECONDS", 1800, ("notify", "console"),
        "the sweep re-drives active (and parked) jobs with no progress for this long")
    sweep_max_redrives: int = setting("SWEEP_MAX_REDRIVES", 3, ("notify", "console"),
        "re-drives of one job by the sweep; the next sweep ends it `failed` (`stuck`) with its event")
    max_replays: int = setting("MAX_REPLAYS", 3, ("notify", "console"),
        "`dlq replay` refuses a message already replayed this often")
    scheduler_service_account: str = setting("SCHEDULER_SERVICE_ACCOUNT", "", ("notify",),
        "the only account whose token `POST /ops/sweep` accepts (required on notify when verification is on)")

    # --- Operators' console ------------------------------------------------------------------------------------
    console_audience: str = setting("CONSOLE_AUDIENCE", "", ("console",),
        "the audience of the IAP token (`x-goog-iap-jwt-assertion`) the console accepts: for IAP on Cloud Run "
        "`/projects/<number>/locations/<region>/services/<name>`; empty stops the console at start-up (no page is "
        "served without a verified operator)")
    console_issuers: tuple[str, ...] = setting("CONSOLE_ISSUERS", ("https://cloud.google.com/iap",), ("console",),
        "issuers of operators' tokens the console accepts")
    console_certs_url: str = setting("CONSOLE_CERTS_URL", "https://www.gstatic.com/iap/verify/public_key-jwk", ("console",),
        "where the operators' token signing keys are fetched (IAP's JWKS; the local cloud points it at its own key)")
    console_page_size: int = setting("CONSOLE_PAGE_SIZE", 50, ("console",), "jobs per page of the console's Jobs page")
    console_health_jobs: int = setting("CONSOLE_HEALTH_JOBS", 5000, ("console",),
        "the Health page reads at most this many jobs finished in the last day (newest first) for its charts")

    # --- Webhooks --------------------------------------------------------------------------------------------
    webhook_secrets_key: str = setting("WEBHOOK_SECRETS_KEY", "", ("ingest", "notify"),
        "base64 of 32 random bytes sealing webhook secrets; Secret Manager in production")
    webhook_timeout_seconds: float = setting("WEBHOOK_TIMEOUT_SECONDS", 5, ("notify",),
        "one delivery attempt as a whole: connect, TLS, request, status and headers, body (a timer cuts the socket; "
        "a receiver trickling bytes cannot stretch it)")
    webhook_breaker_threshold: int = setting("WEBHOOK_BREAKER_THRESHOLD", 5, ("notify",),
        "consecutive failed attempts that open an endpoint's circuit breaker")
    webhook_breaker_open_seconds: float = setting("WEBHOOK_BREAKER_OPEN_SECONDS", 60, ("notify",),
        "an open breaker answers its deliveries 503 (retry later) at once, with no attempt, this long; then one trial "
        "delivery half-opens it")
    webhook_client_concurrency: int = setting("WEBHOOK_CLIENT_CONCURRENCY", 2, ("notify",),
        "webhook attempts one client may have in flight per notify worker process; more answer 503 at once (Pub/Sub "
        "retries them), the last delivery attempt excepted")
    webhook_allow_hosts: frozenset[str] = setting("WEBHOOK_ALLOW_HOSTS", frozenset(), ("ingest", "notify"),
        "hosts exempt from the https-only and public-address rules", parse=_hosts)
    webhook_secret_overlap_seconds: int = setting("WEBHOOK_SECRET_OVERLAP_SECONDS", 86400, ("ingest", "notify"),
        "how long a rotated-out secret still signs")
    webhook_max_endpoints: int = setting("WEBHOOK_MAX_ENDPOINTS", 20, ("ingest",),
        "webhook endpoints one client may register (409 above)")

    # --- Playback --------------------------------------------------------------------------------------------
    playback_token_keys: tuple[tuple[str, bytes], ...] = setting("PLAYBACK_TOKEN_KEYS", (), ("ingest", "console"),
        "keys of playback tokens (HS256), `kid:base64-of-32+-random-bytes`, comma-separated; the first signs, every one "
        "verifies: to rotate, put the new key first and keep the old one listed for PLAYBACK_TOKEN_TTL_SECONDS. Secret "
        "Manager in production; empty = no playback", parse=_keyring)
    playback_token_ttl_seconds: int = setting("PLAYBACK_TOKEN_TTL_SECONDS", 4 * 3600, ("ingest", "console"),
        "lifetime of a playback token (and of every playlist answer and signed child URL made for it)")
    playback_sign_bucket_seconds: int = setting("PLAYBACK_SIGN_BUCKET_SECONDS", 900, ("ingest",),
        "segment URLs in playlists are signed to the end of the bucket of this length their token expires in, and "
        "kept per process: tokens expiring in one bucket share one signature per object (no signing on a re-fetch)")
    playback_sign_concurrency: int = setting("PLAYBACK_SIGN_CONCURRENCY", 16, ("ingest",),
        "signatures made at once for one playlist answer (on Cloud Run each is an IAM signBlob call: a 300-segment "
        "playlist in a new bucket waits for 300 / this many round trips, not 300)")

    # --- Derivative images -----------------------------------------------------------------------------------
    derivative_signing_keys: tuple[tuple[str, bytes], ...] = setting("DERIVATIVE_SIGNING_KEYS", (), ("ingest",),
        "server keys of derivative-image URLs (`/v1/img/...`), `kid:base64-of-32+-random-bytes`, comma-separated: each "
        "client signs with a secret derived from a key and its client id (GET /v1/signing-keys); the first key is the "
        "one handed out, every listed one verifies. To rotate, put a new key first and keep the old one listed while "
        "pages still carry its URLs. Secret Manager in production; empty = no derivative URLs", parse=_keyring)
    max_derivative_pixels: int = setting("MAX_DERIVATIVE_PIXELS", 16_000_000, ("ingest",),
        "largest derivative image, in output pixels (w x h x dpr squared): a bigger signed request is a 400 naming this")
    derivative_max_edge: int = setting("DERIVATIVE_MAX_EDGE", 4096, ("ingest",),
        "largest width or height of a derivative image in output pixels (after dpr)")
    derivative_widths: tuple[str, ...] = setting("DERIVATIVE_WIDTHS", (), ("ingest",),
        "the only `w` values a derivative URL may ask for (e.g. `320,640,960,1280,1920`, a page's srcset), comma-"
        "separated; empty = any width up to DERIVATIVE_MAX_EDGE", parse=_list)
    derivative_max_dpr: float = setting("DERIVATIVE_MAX_DPR", 4.0, ("ingest",),
        "largest device pixel ratio (`dpr`) a derivative URL may ask for (1 to 4)")
    derivative_render_seconds: float = setting("DERIVATIVE_RENDER_SECONDS", 20.0, ("ingest",),
        "wall-clock limit of rendering one derivative (a miss) in the bounded media child: the request waits for it")
    derivative_lease_seconds: float = setting("DERIVATIVE_LEASE_SECONDS", 30.0, ("ingest",),
        "a miss holds a lease object this long while it renders; concurrent misses for the same image wait for its "
        "result instead of rendering again, and a lease older than this (its holder died) is taken over")

    # --- Delete and CORS -------------------------------------------------------------------------------------
    delete_settle_seconds: float = setting("DELETE_SETTLE_SECONDS", 5, ("notify",),
        "a deletion waits until the job has been over this long before erasing (a stage cancelled under it may be "
        "finishing one output write: it then sees the job ended and writes nothing more); above MEDIA_CANCEL_POLL_SECONDS")
    cors_allowed_origins: tuple[str, ...] = setting("CORS_ALLOWED_ORIGINS", (), ("ingest",),
        "browser origins (`https://app.example.com`, comma-separated; `*` = any) allowed to call the playback and upload "
        "routes from a web page; empty = none (production until set; the buckets' own CORS rules are in "
        "terraform/storage.tf)", parse=_list)
    cors_max_age_seconds: int = setting("CORS_MAX_AGE_SECONDS", 600, ("ingest",),
        "how long a browser may keep a preflight answer (Access-Control-Max-Age; Chromium caps it at 7200)")

    # --- Cost per job (docs/cost.md) -------------------------------------------------------------------------
    # Defaults: Google Cloud's public list prices in USD for us-central1 (a Cloud Run tier 1 region), without
    # free tiers or committed-use discounts; set your region's prices where they differ.
    cost_vcpu_second_usd: float = setting("COST_VCPU_SECOND_USD", 0.000024, ALL,
        "price of one vCPU-second; default: Cloud Run list price, request-based billing (CPU allocated during "
        "requests, as terraform/ deploys it), tier 1 regions such as us-central1")
    cost_gib_second_usd: float = setting("COST_GIB_SECOND_USD", 0.0000025, ALL,
        "price of one GiB-second of memory; default: Cloud Run list price, request-based billing, tier 1 (us-central1)")
    cost_request_usd: float = setting("COST_REQUEST_USD", 0.0000004, ALL,
        "price of one request; default: Cloud Run list price, $0.40 per million requests, tier 1 (us-central1)")
    cost_storage_gb_month_usd: float = setting("COST_STORAGE_GB_MONTH_USD", 0.020, ALL,
        "price of one GB (2^30 bytes) stored for a month; default: Cloud Storage list price, Standard class, "
        "region us-central1")
    cost_storage_write_usd: float = setting("COST_STORAGE_WRITE_USD", 0.000005, ALL,
        "price of one object write (a Class A operation); default: Cloud Storage list price, Standard class, "
        "$0.005 per 1,000 (us-central1)")
    cost_pubsub_tib_usd: float = setting("COST_PUBSUB_TIB_USD", 40.0, ALL,
        "price of one TiB of Pub/Sub throughput (publish and delivery, at least 1000 bytes a request); default: "
        "Pub/Sub list price, all regions")
    cost_firestore_reads_100k_usd: float = setting("COST_FIRESTORE_READS_100K_USD", 0.03, ALL,
        "price of 100,000 Firestore document reads; default: Firestore (Standard edition) list price, us-central1")
    cost_firestore_writes_100k_usd: float = setting("COST_FIRESTORE_WRITES_100K_USD", 0.09, ALL,
        "price of 100,000 Firestore document writes; default: Firestore (Standard edition) list price, us-central1")
    cost_firestore_deletes_100k_usd: float = setting("COST_FIRESTORE_DELETES_100K_USD", 0.01, ALL,
        "price of 100,000 Firestore document deletes; default: Firestore (Standard edition) list price, us-central1")
    cost_price_list: str = setting("COST_PRICE_LIST", "Google Cloud public list prices, us-central1 (Cloud Run tier 1)",
        ALL, "names the prices above in every cost estimate (say where yours come from when you change them)")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values = {}
        for f, d in declared():
            raw = env.get(d.env)
            if raw is None:
                values[f.name] = d.default
                continue
            parse = d.parse or _PARSERS[str(f.type)]
            try:
                values[f.name] = parse(raw)
            except ValueError as exc:
                raise ValueError(f"{d.env}={raw!r}: {exc}") from None
        return cls(**values)


_GROUPS = {
    "project": "Cloud",
    "port": "Serving",
    "front_header_timeout_seconds": "Front door (nginx)",
    "max_upload_bytes": "Uploads",
    "api_key_cache_seconds": "Upload clients",
    "max_image_pixels": "Media limits",
    "stage_time_budget_seconds": "Bounded media work",
    "render_presets_file": "Render",
    "video_segment_seconds": "Long videos",
    "push_verification": "Push authentication",
    "stuck_after_seconds": "Operations",
    "console_audience": "Operators' console",
    "webhook_secrets_key": "Webhooks",
    "playback_token_keys": "Playback",
    "derivative_signing_keys": "Derivative images",
    "cost_vcpu_second_usd": "Cost per job",
}  # first field of each group -> its heading


def declared() -> list[tuple[dataclasses.Field, Declared]]:
    """Every setting in the order of its declaration, with its group."""
    out, group = [], ""
    for f in dataclasses.fields(Settings):
        d: Declared = f.metadata["declared"]
        group = _GROUPS.get(f.name, group)
        out.append((f, dataclasses.replace(d, group=group)))
    return out


def markdown() -> str:
    """docs/configuration.md, made from the declaration."""
    lines = ["# Configuration", "",
             "Every service reads one typed settings object from the environment, declared once in",
             "`services/common/config.py`; this page is generated from it (`make docs`), and a test fails",
             "when the two differ. *Read by* names the services whose behaviour the setting changes.", ""]
    group = None
    for _, d in declared():
        if d.group != group:
            group = d.group
            lines += ["", f"## {group}", "", "| variable | default | read by | meaning |", "|---|---|---|---|"]
        shown = d.shown_default()
        readers = "all" if d.services == ALL else ", ".join(d.services)
        lines.append(f"| `{d.env}` | {f'`{shown}`' if shown else 'empty'} | {readers} | {d.help} |")
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()


if __name__ == "__main__":
    sys.stdout.write(markdown())
