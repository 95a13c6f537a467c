"""One typed settings object, read from the environment once per process.

Every limit is a named setting here; the README's configuration table lists them all.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY_FILE = REPO_ROOT / "schemas" / "topology.json"


GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _list(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def parse_rgb(text: str) -> tuple[int, int, int]:
    """'#rrggbb', 'rrggbb' or 'r,g,b' -> (r, g, b); a bad value fails start-up, not a job."""
    t = text.strip().lstrip("#")
    try:
        if len(t) == 6 and "," not in t:
            rgb = tuple(int(t[i:i + 2], 16) for i in (0, 2, 4))
        else:
            rgb = tuple(int(v) for v in t.split(","))
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise ValueError(f"FLATTEN_BACKGROUND={text!r}: expected #rrggbb or r,g,b")
    return rgb[0], rgb[1], rgb[2]


@dataclass(frozen=True)
class Settings:
    project: str
    originals_bucket: str
    renditions_bucket: str
    schemas_dir: Path
    topology_file: Path
    # Where upload clients reach ingest; status URLs are built from it.
    public_base_url: str
    # Limits
    max_upload_bytes: int
    # Big uploads: V4 signed PUT URLs straight to GCS, then the bucket's finalize notification.
    max_signed_upload_bytes: int
    signed_url_ttl_seconds: int
    # A service-account key file to sign with; empty = IAM signBlob as the runtime account.
    signing_key_file: str
    max_image_pixels: int
    max_video_seconds: float
    max_video_frames: int
    # Width x height of one video frame, from the header: a 16K stream would need ~400 MB per decoded frame.
    max_video_frame_pixels: int
    stage_time_budget_seconds: float
    # Bounded media work (issue 10): every decode/analysis/render runs in a child process.
    jpeg_max_scans: int  # progressive JPEGs have ~10 scans; each is another pass over the image
    media_memory_limit_bytes: int  # the child's memory limit (above its start-up size)
    media_cpu_limit_seconds: int  # the child's CPU time (RLIMIT_CPU)
    stage_deadline_margin_seconds: float  # the child's wall-clock deadline: ack deadline minus this
    media_crash_attempts: int  # a decoder crash (signal) seen this often on one job -> corrupt-media
    instance_memory_bytes: int  # admission: 0 = cgroup memory.max, else /proc/meminfo
    animation_max_decode_pixels: int  # frames x canvas decoded for an animated rendition
    publish_timeout_seconds: float
    job_ttl_days: int
    # Render
    render_presets_file: Path
    flatten_background: tuple[int, int, int]
    render_encode_threads: int
    animation_max_frames: int
    animation_max_pixels: int
    storyboard_tile_width: int
    storyboard_columns: int
    storyboard_interval_seconds: float
    storyboard_max_tiles: int
    video_max_stills: int
    # Long videos in segments (services/media/spans.py, services/pipeline/handon.py)
    video_segment_seconds: float  # a video longer than this is split at keyframes into segments of about this length
    video_max_segments: int  # segments per job, at most
    video_segment_overlap_seconds: float  # analysis decodes this much beyond each side of its span (cuts on boundaries)
    video_segment_time_budget_seconds: float  # one segment's work, well inside its subscription's ack deadline
    hls_segment_seconds: float  # HLS media segment duration (IDR at every boundary)
    video_hdr: str  # HDR sources: "tonemap" to SDR BT.709, or "passthrough"
    # Push authentication. PUSH_VERIFICATION=off is the only way to run without it (the local
    # cloud: the emulator sends no token); when on, empty PUSH_AUDIENCE / PUSH_SERVICE_ACCOUNT
    # stop the service at start-up instead of silently admitting anyone.
    push_verification: str
    push_audience: str
    push_service_account: str
    push_certs_url: str
    # Signing keys are refetched for an unknown key id at most this often (a forged kid must not
    # cost a certificate fetch per request).
    certs_refetch_min_seconds: float
    # Upload clients (ingest): API keys in Firestore clients/{id}, and Google-signed ID tokens.
    api_key_cache_seconds: float  # a revoked key stops working within this
    client_token_audiences: tuple[str, ...]  # empty = ID tokens are not accepted
    client_token_issuers: tuple[str, ...]
    client_token_certs_url: str
    # The request body of an upload must arrive within this (a slow client cannot hold a thread).
    request_body_timeout_seconds: float
    # Uploads reading their body at once per process; more get 503 at once, so other requests
    # (and /healthz) always find a thread. 0 = GUNICORN_THREADS - 2 (at least 1).
    max_concurrent_uploads: int
    upload_slot_wait_seconds: float  # a burst of fast uploads waits this long for a slot before 503
    max_form_parts: int
    max_form_memory_bytes: int  # the non-file fields of a multipart upload
    max_filename_chars: int
    # Renditions as upload clients fetch them: V4 signed GET URLs for this long, or plain
    # URLs on RENDITIONS_BASE_URL (a CDN in front of the renditions bucket).
    rendition_url_ttl_seconds: int
    renditions_base_url: str
    # Per-client quotas per UTC day (a client's document may override them), counted in
    # sharded counters of this many shards.
    quota_uploads_per_day: int
    quota_bytes_per_day: int
    quota_counter_shards: int
    # Operations
    stuck_after_seconds: int  # the sweep re-drives jobs with no progress for this long
    sweep_max_redrives: int  # re-drives of one job by the sweep before it ends failed
    max_replays: int  # dead-letter replays of one message before `dlq replay` refuses
    scheduler_service_account: str  # the only caller the sweep endpoint accepts (when PUSH_AUDIENCE is set)
    # Webhooks
    webhook_secrets_key: str  # base64 AES-256 key sealing endpoint secrets (Secret Manager); empty = webhooks off
    webhook_timeout_seconds: float  # one delivery attempt: connect + answer
    webhook_allow_hosts: frozenset[str]  # exempt from the https-only and public-address rules (tests)
    webhook_secret_overlap_seconds: int  # a rotated-out secret keeps signing for this long
    webhook_max_endpoints: int  # endpoints one client may register
    webhook_breaker_threshold: int  # consecutive failed attempts that open an endpoint's circuit breaker
    webhook_breaker_open_seconds: float  # how long an open breaker answers retry-later without an attempt
    webhook_client_concurrency: int  # attempts one client may have in flight per notify worker process
    # Logging
    log_level: str

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            project=_env("GOOGLE_CLOUD_PROJECT", "mediarelay-local"),
            originals_bucket=_env("ORIGINALS_BUCKET", "mediarelay-originals"),
            renditions_bucket=_env("RENDITIONS_BUCKET", "mediarelay-renditions"),
            schemas_dir=Path(_env("SCHEMAS_DIR", str(REPO_ROOT / "schemas"))),
            topology_file=Path(_env("TOPOLOGY_FILE", str(TOPOLOGY_FILE))),
            public_base_url=_env("PUBLIC_BASE_URL", "").rstrip("/"),
            max_upload_bytes=int(_env("MAX_UPLOAD_BYTES", str(32 * 1024 * 1024))),
            max_signed_upload_bytes=int(_env("MAX_SIGNED_UPLOAD_BYTES", str(256 * 1024 * 1024))),
            signed_url_ttl_seconds=int(_env("SIGNED_URL_TTL_SECONDS", "900")),
            signing_key_file=_env("SIGNING_KEY_FILE", ""),
            max_image_pixels=int(_env("MAX_IMAGE_PIXELS", str(100_000_000))),
            max_video_seconds=float(_env("MAX_VIDEO_SECONDS", "7200")),
            max_video_frames=int(_env("MAX_VIDEO_FRAMES", "432000")),
            max_video_frame_pixels=int(_env("MAX_VIDEO_FRAME_PIXELS", str(7680 * 4320))),
            stage_time_budget_seconds=float(_env("STAGE_TIME_BUDGET_SECONDS", "90")),
            jpeg_max_scans=int(_env("JPEG_MAX_SCANS", "100")),
            media_memory_limit_bytes=int(_env("MEDIA_MEMORY_LIMIT_BYTES", str(1536 * 2**20))),
            media_cpu_limit_seconds=int(_env("MEDIA_CPU_LIMIT_SECONDS", "300")),
            stage_deadline_margin_seconds=float(_env("STAGE_DEADLINE_MARGIN_SECONDS", "15")),
            media_crash_attempts=int(_env("MEDIA_CRASH_ATTEMPTS", "2")),
            instance_memory_bytes=int(_env("INSTANCE_MEMORY_BYTES", "0")),
            animation_max_decode_pixels=int(_env("ANIMATION_MAX_DECODE_PIXELS", str(2_000_000_000))),
            publish_timeout_seconds=float(_env("PUBLISH_TIMEOUT_SECONDS", "30")),
            job_ttl_days=int(_env("JOB_TTL_DAYS", "30")),
            render_presets_file=Path(_env("RENDER_PRESETS_FILE", str(REPO_ROOT / "services" / "render" / "presets.json"))),
            flatten_background=parse_rgb(_env("FLATTEN_BACKGROUND", "#ffffff")),
            render_encode_threads=int(_env("RENDER_ENCODE_THREADS", "0")),
            animation_max_frames=int(_env("ANIMATION_MAX_FRAMES", "300")),
            animation_max_pixels=int(_env("ANIMATION_MAX_PIXELS", str(25_000_000))),
            storyboard_tile_width=int(_env("STORYBOARD_TILE_WIDTH", "160")),
            storyboard_columns=int(_env("STORYBOARD_COLUMNS", "10")),
            storyboard_interval_seconds=float(_env("STORYBOARD_INTERVAL_SECONDS", "2")),
            storyboard_max_tiles=int(_env("STORYBOARD_MAX_TILES", "100")),
            video_max_stills=int(_env("VIDEO_MAX_STILLS", "50")),
            video_segment_seconds=float(_env("VIDEO_SEGMENT_SECONDS", "30")),
            video_max_segments=int(_env("VIDEO_MAX_SEGMENTS", "300")),
            video_segment_overlap_seconds=float(_env("VIDEO_SEGMENT_OVERLAP_SECONDS", "3")),
            video_segment_time_budget_seconds=float(_env("VIDEO_SEGMENT_TIME_BUDGET_SECONDS", "240")),
            hls_segment_seconds=float(_env("HLS_SEGMENT_SECONDS", "6")),
            video_hdr=_env("VIDEO_HDR", "tonemap").strip().lower(),
            push_verification=_env("PUSH_VERIFICATION", "on").strip().lower(),
            push_audience=_env("PUSH_AUDIENCE", ""),
            push_service_account=_env("PUSH_SERVICE_ACCOUNT", ""),
            push_certs_url=_env("PUSH_CERTS_URL", GOOGLE_CERTS_URL),
            certs_refetch_min_seconds=float(_env("CERTS_REFETCH_MIN_SECONDS", "30")),
            api_key_cache_seconds=float(_env("API_KEY_CACHE_SECONDS", "30")),
            client_token_audiences=_list(_env("CLIENT_TOKEN_AUDIENCES", "")),
            client_token_issuers=_list(_env("CLIENT_TOKEN_ISSUERS", "https://accounts.google.com,accounts.google.com")),
            client_token_certs_url=_env("CLIENT_TOKEN_CERTS_URL", GOOGLE_CERTS_URL),
            request_body_timeout_seconds=float(_env("REQUEST_BODY_TIMEOUT_SECONDS", "60")),
            max_concurrent_uploads=int(_env("MAX_CONCURRENT_UPLOADS", "0"))
            or max(1, int(_env("GUNICORN_THREADS", "4")) - 2),
            upload_slot_wait_seconds=float(_env("UPLOAD_SLOT_WAIT_SECONDS", "2")),
            max_form_parts=int(_env("MAX_FORM_PARTS", "8")),
            max_form_memory_bytes=int(_env("MAX_FORM_MEMORY_BYTES", str(64 * 1024))),
            max_filename_chars=int(_env("MAX_FILENAME_CHARS", "200")),
            rendition_url_ttl_seconds=int(_env("RENDITION_URL_TTL_SECONDS", "3600")),
            renditions_base_url=_env("RENDITIONS_BASE_URL", "").rstrip("/"),
            quota_uploads_per_day=int(_env("QUOTA_UPLOADS_PER_DAY", "10000")),
            quota_bytes_per_day=int(_env("QUOTA_BYTES_PER_DAY", str(50 * 1024**3))),
            quota_counter_shards=int(_env("QUOTA_COUNTER_SHARDS", "10")),
            stuck_after_seconds=int(_env("STUCK_AFTER_SECONDS", "1800")),
            sweep_max_redrives=int(_env("SWEEP_MAX_REDRIVES", "3")),
            max_replays=int(_env("MAX_REPLAYS", "3")),
            scheduler_service_account=_env("SCHEDULER_SERVICE_ACCOUNT", ""),
            webhook_secrets_key=_env("WEBHOOK_SECRETS_KEY", ""),
            webhook_timeout_seconds=float(_env("WEBHOOK_TIMEOUT_SECONDS", "5")),
            webhook_allow_hosts=frozenset(h.strip().lower() for h in _env("WEBHOOK_ALLOW_HOSTS", "").split(",") if h.strip()),
            webhook_secret_overlap_seconds=int(_env("WEBHOOK_SECRET_OVERLAP_SECONDS", "86400")),
            webhook_max_endpoints=int(_env("WEBHOOK_MAX_ENDPOINTS", "20")),
            webhook_breaker_threshold=int(_env("WEBHOOK_BREAKER_THRESHOLD", "5")),
            webhook_breaker_open_seconds=float(_env("WEBHOOK_BREAKER_OPEN_SECONDS", "60")),
            webhook_client_concurrency=int(_env("WEBHOOK_CLIENT_CONCURRENCY", "2")),
            log_level=_env("LOG_LEVEL", "INFO"),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
