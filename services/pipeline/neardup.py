"""A client's near-duplicate index: which of my pictures have a pHash within d bits of this one, without a scan.

Multi-index hashing (Norouzi, Punjani & Fleet): the 64 bits are cut into BANDS bands of 16 bits. If two
hashes differ in at most d bits, some band differs in at most r = d // BANDS bits (pigeonhole: every band
r + 1 or more apart makes BANDS * (r + 1) > d). A lookup lists, per band, every value within r bits of
the query's (d = 11, r = 2: 1 + 16 + 120 = 137 values a band), asks Firestore for the client's hashes
holding any of them (`array-contains-any`, at most ANY_VALUES values a query), and keeps the candidates
really within d. 16-bit bands keep random candidates rare: ~ probes x n / 65 536 (548 probes, 100 000
hashes: ~840 documents at worst for uniform hashes; `python -m bench dupindex` measures it).

Firestore: near_duplicates/{owner}/hashes/{job_id} = {bands: ["0:1a2b", ...], phash, created_at}; one
collection per client, so a client's lookup never reads another's hashes. The only query is `bands`
array-contains-any on a `hashes` collection: its index is declared in terraform/firestore.tf
(tests/infra/test_terraform.py checks it against QUERIES below).
"""
from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from google.cloud import firestore

from ..common.errors import Duplicate

BANDS = 4
BAND_BITS = 64 // BANDS
ANY_VALUES = 30  # Firestore's limit of values in one array-contains-any
QUERY_THREADS = 8
MAX_RADIUS = 2  # per band: beyond it a lookup is thousands of probes (d <= 4 * 2 + 3 = 11)
COLLECTION = "near_duplicates"
HASHES = "hashes"
# (collection id, field, how it is queried): what terraform/firestore.tf must declare an index for.
QUERIES = ((HASHES, "bands", "array-contains-any"),)


@dataclass(frozen=True)
class Match:
    job_id: str
    distance: int


def bands(phash: str) -> list[str]:
    """The hash's band values as the tokens stored in `bands`: "<band>:<hex value>"."""
    h = int(phash, 16)
    return [f"{i}:{(h >> (64 - BAND_BITS * (i + 1))) & (2 ** BAND_BITS - 1):04x}" for i in range(BANDS)]


def radius(distance: int) -> int:
    return distance // BANDS


def probes(phash: str, distance: int) -> list[str]:
    """Every band token a hash within `distance` of this one must share at least one of."""
    r = radius(distance)
    if r > MAX_RADIUS:
        raise ValueError(f"distance {distance} needs {r} bits a band; at most {MAX_RADIUS} "
                         f"(distance <= {BANDS * MAX_RADIUS + 3})")
    masks = [sum(1 << b for b in bits) for k in range(r + 1) for bits in itertools.combinations(range(BAND_BITS), k)]
    out = []
    for token in bands(phash):
        band, _, value = token.partition(":")
        out += [f"{band}:{int(value, 16) ^ m:04x}" for m in masks]
    return out


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


class NearDuplicateIndex:
    """The rules; a backend stores entries and answers the one query (`_having_any`)."""

    def add(self, owner: str, job_id: str, phash: str, created_at: dt.datetime) -> None:
        self._put(owner, job_id, {"bands": bands(phash), "phash": phash, "created_at": created_at})

    def remove(self, owner: str, job_id: str) -> None:
        self._delete(owner, job_id)

    def earlier_match(self, owner: str, job_id: str, phash: str, created_at: dt.datetime, distance: int) -> Match | None:
        """The nearest of the client's *earlier* pictures within `distance` (ties: the earliest), else None.
        Earlier by (created_at, job_id): the same answer on every redelivery, and of two copies only the later
        one is the duplicate."""
        found = []
        for other_id, doc in self._having_any(owner, probes(phash, distance)).items():
            d = hamming(phash, doc["phash"])
            if other_id != job_id and d <= distance and (doc["created_at"], other_id) < (created_at, job_id):
                found.append((d, doc["created_at"], other_id))
        if not found:
            return None
        d, _, other_id = min(found)
        return Match(other_id, d)

    # -- backend ------------------------------------------------------------------------------------------------
    def _put(self, owner: str, job_id: str, doc: dict[str, Any]) -> None:
        raise NotImplementedError

    def _delete(self, owner: str, job_id: str) -> None:
        raise NotImplementedError

    def _having_any(self, owner: str, tokens: list[str]) -> dict[str, dict[str, Any]]:
        """{job_id: {phash, created_at}} of the owner's entries whose `bands` hold any of `tokens`."""
        raise NotImplementedError


ON_DUPLICATE = ("process", "skip", "reject")  # the upload option; process (record only) is the default
ACTIONS = {"process": "recorded", "skip": "skipped", "reject": "rejected"}


def check_picture(index: NearDuplicateIndex | None, job: Mapping[str, Any], phash: str | None,
                  distance: int) -> dict[str, Any] | None:
    """Index a job's picture (a still, or a video's poster) and act on its upload's `on_duplicate`.

    Returns the job's `duplicate` field ({of, distance, action}) when an earlier picture of the client is
    within `distance`, else None; raises Duplicate for `reject`. A copy that is skipped or rejected leaves
    the index again: a later upload is told about the picture that was processed, not about a copy."""
    owner = job.get("owner")
    if index is None or not owner or not phash:
        return None
    job_id, created = str(job["job_id"]), job["created_at"]
    index.add(owner, job_id, phash, created)
    match = index.earlier_match(owner, job_id, phash, created, distance)
    if match is None:
        return None
    wanted = job.get("on_duplicate") or "process"
    if wanted != "process":
        index.remove(owner, job_id)
    if wanted == "reject":
        raise Duplicate(f"this picture is a near-duplicate of job {match.job_id} (their perceptual hashes differ in "
                        f"{match.distance} of 64 bits, within NEAR_DUPLICATE_DISTANCE={distance}) and the upload asked "
                        "on_duplicate=reject", code="near-duplicate")
    return {"of": match.job_id, "distance": match.distance, "action": ACTIONS[wanted]}


class FirestoreNearDuplicates(NearDuplicateIndex):
    def __init__(self, project: str):
        self.project = project
        self._client: Any = None

    def _hashes(self, owner: str) -> Any:
        if self._client is None:  # lazily: gunicorn forks workers, and clients must not cross a fork
            self._client = firestore.Client(project=self.project)
        return self._client.collection(COLLECTION).document(owner).collection(HASHES)

    def _put(self, owner: str, job_id: str, doc: dict[str, Any]) -> None:
        self._hashes(owner).document(job_id).set(doc)  # the same document on a redelivery

    def _delete(self, owner: str, job_id: str) -> None:
        self._hashes(owner).document(job_id).delete()

    def _having_any(self, owner: str, tokens: list[str]) -> dict[str, dict[str, Any]]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        hashes = self._hashes(owner)

        def ask(values: list[str]) -> list[tuple[str, dict[str, Any]]]:
            query = hashes.where(filter=FieldFilter("bands", "array_contains_any", values)).select(["phash", "created_at"])
            return [(snap.id, snap.to_dict()) for snap in query.stream()]

        # The queries are independent: asked together, a lookup waits about one round trip, not nineteen.
        chunks = [tokens[i:i + ANY_VALUES] for i in range(0, len(tokens), ANY_VALUES)]
        with ThreadPoolExecutor(max_workers=QUERY_THREADS) as pool:
            return {job_id: doc for found in pool.map(ask, chunks) for job_id, doc in found}
