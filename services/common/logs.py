"""JSON logs in the Cloud Logging structured format, correlated with the request's trace.

Cloud Logging reads `severity`, `message`, `logging.googleapis.com/trace` and `.../spanId`
from each stdout line, so one job's hops line up under one trace in production.
"""
from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import time

_trace: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("trace", default=None)
_fields: contextvars.ContextVar[dict | None] = contextvars.ContextVar("log_fields", default=None)

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/(\d+))?")


def parse_trace(traceparent: str | None, cloud_trace_context: str | None = None) -> tuple[str, str] | None:
    """(trace_id, span_id) from a W3C `traceparent`, else from `X-Cloud-Trace-Context`."""
    if traceparent:
        m = _TRACEPARENT.match(traceparent.strip().lower())
        if m and m.group(1) != "0" * 32:
            return m.group(1), m.group(2)
    if cloud_trace_context:
        m = _CLOUD_TRACE.match(cloud_trace_context.strip())
        if m:
            span = format(int(m.group(2)), "016x") if m.group(2) else "0" * 16
            return m.group(1).lower(), span[-16:]
    return None


def new_traceparent(trace: tuple[str, str] | None = None) -> str:
    """A child `traceparent`: same trace id (or a new one), fresh span id."""
    trace_id = trace[0] if trace else os.urandom(16).hex()
    return f"00-{trace_id}-{os.urandom(8).hex()}-01"


def bind_trace(trace: tuple[str, str] | None) -> None:
    _trace.set(trace)


def current_trace() -> tuple[str, str] | None:
    return _trace.get()


def bind_fields(**fields) -> None:
    merged = dict(_fields.get() or {})
    merged.update({k: v for k, v in fields.items() if v is not None})
    _fields.set(merged)


def clear_context() -> None:
    _trace.set(None)
    _fields.set(None)


class CloudLoggingFormatter(logging.Formatter):
    def __init__(self, project: str, service: str):
        super().__init__()
        self.project = project
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "severity": record.levelname if record.levelname != "WARNING" else "WARNING",
            "message": record.getMessage(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "logger": record.name,
            "service": self.service,
        }
        entry.update(_fields.get() or {})
        extra = getattr(record, "fields", None)
        if extra:
            entry.update(extra)
        trace = _trace.get()
        if trace:
            entry["logging.googleapis.com/trace"] = f"projects/{self.project}/traces/{trace[0]}"
            entry["logging.googleapis.com/spanId"] = trace[1]
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(project: str, service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(CloudLoggingFormatter(project, service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The Google clients are chatty at INFO about retries we already log ourselves.
    for noisy in ("google", "urllib3", "grpc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log(logger: logging.Logger, level: int, message: str, **fields) -> None:
    logger.log(level, message, extra={"fields": fields})
