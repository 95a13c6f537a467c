"""Near-duplicate lookup with 100 000 hashes for one client: the real FirestoreNearDuplicates against the
local Firestore EMULATOR (an emulator figure: no network, one process, no production quotas), started here.

The hashes are synthetic: random 64-bit values with 32 bits set (what pHash gives: bits above the median
of 63 AC terms, plus the DC term), bulk-loaded with batched writes of 500. Lookups at
NEAR_DUPLICATE_DISTANCE: half for a copy of an indexed hash (0..d bits flipped), half for a new hash.
Run under the shared lock: `flock /tmp/mediarelay-stack.lock python -m bench dupindex` (DUPINDEX_HASHES=N for
fewer). Measured 2026-12-07: with 100 000 hashes the emulator did not answer one lookup's queries within the
client's 300 s retry deadline (DEADLINE_EXCEEDED): the emulator evaluates a query by reading the collection, it
keeps no index, so its figure says nothing of Firestore's indexed lookups. With 10 000 hashes (loaded in 3.8 s)
the 200 lookups did not finish within 600 s either (> 3 s a lookup). With 1000 hashes (DUPINDEX_LOOKUPS=50):
p50 2968 ms, p95 5877 ms, 8 documents read per lookup (median), every copy found. Not measured: real Firestore.
"""
from __future__ import annotations

import datetime as dt
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from localcloud.stack import lone_emulator
from services.common.config import Settings
from services.pipeline.neardup import FirestoreNearDuplicates, bands, probes

PROJECT = "dupindex-bench"
HASHES = int(os.environ.get("DUPINDEX_HASHES", 100_000))
LOOKUPS = int(os.environ.get("DUPINDEX_LOOKUPS", 200))
OWNER = "client-bench"
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class Counting(FirestoreNearDuplicates):
    """The real index, counting the candidates each lookup reads."""

    reads: list[int] = []

    def _having_any(self, owner, tokens):
        out = super()._having_any(owner, tokens)
        self.reads.append(len(out))
        return out


def _hash(rng: random.Random) -> str:
    return f"{sum(1 << b for b in rng.sample(range(64), 32)):016x}"


def _load(index: FirestoreNearDuplicates, rng: random.Random) -> list[str]:
    col = index._hashes(OWNER)
    client = index._client
    out, batch = [], client.batch()
    for i in range(HASHES):
        h = _hash(rng)
        out.append(h)
        batch.set(col.document(f"job-{i:08d}"), {"bands": bands(h), "phash": h, "created_at": T0})
        if (i + 1) % 500 == 0:
            batch.commit()
            batch = client.batch()
    batch.commit()
    return out


def run() -> None:
    rng = random.Random(11)
    d = Settings.from_env().near_duplicate_distance
    index = Counting(PROJECT)
    t0 = time.perf_counter()
    stored = _load(index, rng)
    load_s = time.perf_counter() - t0
    print(f"{HASHES} hashes of one client, Firestore EMULATOR; bulk load {load_s:.1f} s "
          f"({HASHES / load_s:.0f} docs/s, batches of 500)", flush=True)
    late = T0 + dt.timedelta(days=1)
    times, found_copies = [], 0
    for i in range(LOOKUPS):
        copy = i % 2 == 0
        original = rng.randrange(HASHES)
        h = (f"{int(stored[original], 16) ^ sum(1 << b for b in rng.sample(range(64), rng.randint(0, d))):016x}"
             if copy else _hash(rng))
        t = time.perf_counter()
        match = index.earlier_match(OWNER, "job-query", h, late, d)  # the whole lookup: queries, reads, verification
        times.append(time.perf_counter() - t)
        found_copies += copy and match is not None and match.distance <= d
    reads = index.reads
    ms = np.array(times) * 1000
    print(f"lookup at d={d}: {len(probes('0' * 16, d))} probe values in {-(-len(probes('0' * 16, d)) // 30)} "
          f"array-contains-any queries")
    print(f"  latency p50 {np.percentile(ms, 50):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms, max {ms.max():.0f} ms "
          f"({LOOKUPS} lookups)")
    print(f"  documents read per lookup: median {np.median(reads):.0f}, p95 {np.percentile(reads, 95):.0f}")
    print(f"  copies found: {found_copies} of {LOOKUPS // 2}")


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the emulator it started
    with tempfile.TemporaryDirectory() as tmp, lone_emulator(Path(tmp), PROJECT, "firestore"):
        run()
