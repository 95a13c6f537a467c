"""Which browser origin may read an answer (CORS_ALLOWED_ORIGINS): one rule for ingest's routes
and the local cloud's storage front, so the two answer a web page alike."""
from __future__ import annotations


def allowed_origin(allowed: tuple[str, ...], origin: str | None) -> str | None:
    """The Access-Control-Allow-Origin value for a request from `origin`, or None (no CORS headers:
    the browser keeps the answer from the page). `*` in the list admits any origin; no credentials
    mode is ever needed (our routes take a bearer token or a token in the path, never a cookie)."""
    if not origin or not allowed:
        return None
    if "*" in allowed:
        return "*"
    return origin if origin in allowed else None
