"""What the client-authentication check costs per request on ingest.

One ingest app in-process against a private local cloud (Firestore emulator), the same route
(`GET /v1/jobs/{id}`, one Firestore read) called with the check as deployed and with the
check replaced by a fixed caller; interleaved A/B, medians. Two cases: the client document
cached (API_KEY_CACHE_SECONDS, the steady state) and not cached (every request reads it).
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from localcloud.stack import private_stack

RUNS = int(os.environ.get("AUTH_BENCH_RUNS", "300"))


def _app(cache_seconds: str):
    os.environ["API_KEY_CACHE_SECONDS"] = cache_seconds
    os.environ["PUSH_VERIFICATION"] = "off"
    from services.common.config import Settings
    from services.ingest.app import create_app

    return create_app(Settings.from_env())


def _without_auth(app, client):
    """The same app with the check replaced by a fixed caller (g.client set, nothing verified)."""
    from flask import g

    funcs = app.before_request_funcs[None]
    [auth] = [f for f in funcs if f.__name__ == "_authenticate"]

    def fixed():
        g.client = client

    funcs[funcs.index(auth)] = fixed


def _median_ms(test_client, path, headers, n) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        resp = test_client.get(path, headers=headers)
        out.append((time.perf_counter() - t) * 1000)
        assert resp.status_code == 200, resp.data
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, private_stack(Path(tmp), "mediarelay-authbench") as cfg:
        from services.ingest.clients import ClientStore

        key = cfg.api_key
        client = ClientStore(cfg.project, 0).by_key(key)
        headers = {"Authorization": f"Bearer {key}"}
        rows = []
        for label, cache in (("client cached", "30"), ("client not cached", "0")):
            with_auth = _app(cache)
            without = _app(cache)
            _without_auth(without, client)
            a, b = with_auth.test_client(), without.test_client()
            job = a.post("/v1/uploads", data=b"\xff\xd8\xff" + os.urandom(64), headers={**headers,
                         "Content-Type": "image/jpeg"}).get_json()
            path = f"/v1/jobs/{job['job_id']}"
            _median_ms(a, path, headers, 20), _median_ms(b, path, headers, 20)  # warm up
            ta, tb = [], []
            for _ in range(RUNS // 10):
                ta += _median_ms(a, path, headers, 10)
                tb += _median_ms(b, path, headers, 10)
            ma, mb = statistics.median(ta), statistics.median(tb)
            rows.append((label, mb, ma, ma - mb, ma / mb))
        # The check alone, cached: what the route numbers' noise hides.
        from services.common.config import Settings
        from services.ingest.clients import Authenticator

        auth = Authenticator(Settings.from_env())
        auth.clients.cache_seconds = 3600
        auth.authenticate(headers["Authorization"])
        t = time.perf_counter()
        for _ in range(10_000):
            auth.authenticate(headers["Authorization"])
        alone_us = (time.perf_counter() - t) / 10_000 * 1e6
        print(f"GET /v1/jobs/{{id}}, {RUNS} requests each, medians (in-process, Firestore emulator):")
        print(f"{'case':<20}{'without check ms':>18}{'with check ms':>15}{'added ms':>10}{'ratio':>8}")
        for label, mb, ma, added, ratio in rows:
            print(f"{label:<20}{mb:>18.3f}{ma:>15.3f}{added:>10.3f}{ratio:>8.2f}")
        print(f"the check alone, client cached: {alone_us:.1f} us per request (mean of 10000)")


if __name__ == "__main__":
    main()
