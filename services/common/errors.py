"""Error classes every stage understands (their HTTP problem form is services/pipeline/web.py).

Transient: the same message may succeed later -> answer non-2xx, Pub/Sub redelivers.
Permanent: it never will -> record on the job, dead-letter, publish `failed`, acknowledge.
"""
from __future__ import annotations


class MediarelayError(Exception):
    error_class = "internal"

    def __init__(self, reason: str, *, code: str = "error"):
        super().__init__(reason)
        self.reason = reason
        self.code = code


class TransientError(MediarelayError):
    error_class = "transient"


class PermanentError(MediarelayError):
    error_class = "permanent"


class BadMessage(PermanentError):
    """A push we cannot even parse or that breaks its schema."""

    error_class = "bad-message"


class UnsupportedMedia(PermanentError):
    error_class = "unsupported-media"


class CorruptMedia(PermanentError):
    error_class = "corrupt-media"


class LimitExceeded(PermanentError):
    error_class = "limit-exceeded"


class OverLimit(LimitExceeded):
    """A LimitExceeded that knows the setting's name (for problem+json and the failure reason)."""

    def __init__(self, reason: str, setting: str, code: str):
        super().__init__(reason, code=code)
        self.setting = setting


class Duplicate(PermanentError):
    """The upload asked `on_duplicate=reject` and is a near-duplicate of an earlier picture of its client."""

    error_class = "duplicate"


class Cancelled(PermanentError):
    """The job ended (an operator cancelled it) while a stage worked on it."""

    error_class = "cancelled"


class HTTPProblem(Exception):
    """A client error answered as application/problem+json."""

    def __init__(self, status: int, title: str, detail: str = "", *, headers: dict | None = None, **extra):
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers or {}  # e.g. WWW-Authenticate, Retry-After
        self.extra = extra
