"""Slow clients made by hand: connections that trickle their request headers or their body a
byte at a time (tests/cloud/test_slow_clients.py, bench/slow_clients_bench.py)."""
from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from urllib.parse import urlparse


def connect(url: str) -> socket.socket:
    parsed = urlparse(url)
    return socket.create_connection((parsed.hostname, parsed.port), timeout=30)


def request_head(stack, length: int) -> bytes:
    return (f"POST /v1/uploads HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {stack.api_key}\r\n"
            f"Content-Type: image/jpeg\r\nContent-Length: {length}\r\n\r\n").encode()


@contextmanager
def trickling(url: str, stack, headers: int, bodies: int, every_s: float = 0.5):
    """`headers` connections sending their request line a byte at a time, `bodies` connections
    with whole headers sending their body a byte at a time, for as long as the block runs. A
    connection the server closes (its deadline passed) is opened again, as an attacker would:
    there are always that many slow connections. Yields a dict counting the reopened ones."""
    request_line = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100_000

    def opened(kind: str) -> dict:
        sock = connect(url)
        if kind == "body":
            sock.sendall(request_head(stack, 1_000_000))
        return {"sock": sock, "kind": kind, "sent": 0}

    conns = [opened("header") for _ in range(headers)] + [opened("body") for _ in range(bodies)]
    counts = {"reopened": 0}
    stop = threading.Event()

    def trickle():
        while not stop.wait(every_s):
            for i, c in enumerate(conns):
                try:
                    c["sock"].send(request_line[c["sent"]:c["sent"] + 1] if c["kind"] == "header" else b"\0")
                    c["sent"] += 1
                except OSError:  # closed by the front once its deadline passed: that is the point
                    c["sock"].close()
                    try:
                        conns[i] = opened(c["kind"])
                        counts["reopened"] += 1
                    except OSError:
                        pass

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join()
        for c in conns:
            c["sock"].close()
