"""Per-client request rate limits: a token bucket per client, in this process's memory.

Each client may make CLIENT_RATE_BURST requests at once and CLIENT_RATE_PER_SECOND sustained;
beyond that it gets 429 problem+json with Retry-After (the seconds until its next token), and
the request costs nothing more (no body read, no Firestore read): one client's burst cannot hold
the threads the others' uploads need. The daily quotas (quotas.py) bound how
much a client stores; this bounds how fast it asks.

Why in memory, per process, is enough here, and what it is not: each gunicorn worker of each
Cloud Run instance keeps its own buckets, so a client can reach rate x workers x instances in
total. What this protects is the instance itself (its request threads),
and that is exactly per instance: a burst that lands on one instance is cut there, whatever the
others see. It costs no network call per request. It does not give a global per-client rate:
production that needs one (billing, a contract) adds it in front, at the load balancer (Cloud
Armor rate-based rules keyed on the API key header) or API Gateway, or a shared counter (Redis /
Memorystore) consulted per request, at one round trip each.
"""
from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from ..common.errors import HTTPProblem

MAX_CLIENTS = 10_000  # buckets kept; the least recently seen go first (a full bucket forgotten loses nothing)


class RateLimiter:
    def __init__(self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic):
        if per_second > 0 and burst < 1:  # nobody would ever get in: stop start-up, naming the setting
            raise ValueError(f"CLIENT_RATE_BURST={burst} must be at least 1 while CLIENT_RATE_PER_SECOND > 0")
        self.per_second, self.burst, self.clock = per_second, burst, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)
        self._lock = threading.Lock()

    def wait_for(self, client_id: str) -> float:
        """Take one token for `client_id`: 0 if it had one, else the seconds until it will."""
        if self.per_second <= 0:
            return 0.0  # off
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(client_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.per_second)
            wait = 0.0
            if tokens >= 1:
                tokens -= 1
            else:
                wait = (1 - tokens) / self.per_second
            self._buckets[client_id] = (tokens, now)
            while len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)
        return wait

    def admit(self, client_id: str) -> None:
        """Raise 429 (Retry-After) if `client_id` is over its rate."""
        wait = self.wait_for(client_id)
        if wait > 0:
            raise HTTPProblem(429, "Too many requests",
                              f"over this client's request rate: CLIENT_RATE_PER_SECOND={self.per_second:g} with bursts "
                              f"of CLIENT_RATE_BURST={self.burst}; retry after the time in Retry-After",
                              headers={"Retry-After": str(max(1, math.ceil(wait)))})
