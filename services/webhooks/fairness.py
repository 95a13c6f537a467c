"""Delivery capacity shared fairly between clients, per instance.

A notify instance has a few request threads (gunicorn's GUNICORN_THREADS per worker) for every
push it serves. Without a cap, one client's slow endpoints take them all (each attempt holds a
thread up to WEBHOOK_TIMEOUT_SECONDS) and every other client's webhooks wait in Pub/Sub's
queue. So a client has at most WEBHOOK_CLIENT_CONCURRENCY attempts in flight per worker
process; a delivery over that answers 503 at once and Pub/Sub retries it later with the
subscription's backoff (10 s and up), by which time its client's attempts have ended (each is
bounded) — while the threads left serve the others. The cap is per process, not global: no
shared counter to write on every delivery, and Cloud Run's autoscaling adds instances (and so
capacity for every client) when requests queue. The last delivery attempt is never refused for
capacity: the message would be dead-lettered without having been tried.

Cost, said plainly: Pub/Sub paces a push subscription by its success rate, so these 503s (and
an open breaker's) slow the subscription's push rate for everyone a little. They are answered in
milliseconds, so they hold no thread, and a 503 that cost nothing beats a thread held for
WEBHOOK_TIMEOUT_SECONDS; isolating clients completely would need a subscription per client.
"""
from __future__ import annotations

import threading
from collections import Counter


class ClientSlots:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: Counter[str] = Counter()

    def acquire(self, client_id: str, cap: int, *, force: bool = False) -> bool:
        with self._lock:
            if self._held[client_id] >= cap and not force:
                return False
            self._held[client_id] += 1
            return True

    def release(self, client_id: str) -> None:
        with self._lock:
            self._held[client_id] -= 1
            if self._held[client_id] <= 0:
                del self._held[client_id]

    def held(self, client_id: str) -> int:
        with self._lock:
            return self._held[client_id]
