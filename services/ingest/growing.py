"""The ladder while render writes it: EVENT playlists of the finished prefix of render's segments.

A render segment stores every rung's media segments of its span, then its result
(`work/<job>/render/segment-NNNN.json`: each rung's segments with their durations and sizes,
create-if-absent, never changed). The playback route (playback.py) builds the master and each
rung's media playlist from the results 0..k-1 present, k the first one missing, as EVENT
playlists without EXT-X-ENDLIST; once render has fanned in, the job names its stored VOD
playlists and those are served instead (the results are deleted after the fan-in).

Why read results and not a playlist each segment appends to: hundreds of segments finishing at
once would contend on that one object (or document); results are written once each, by their
own segment. Why the contiguous prefix: a player plays in order and an EVENT playlist may only
grow at its end, so span k+1 is listed only once span k is in. Results never change, so each
instance keeps those it read: a reload costs one GET of the first result not yet seen.
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from ..pipeline.blobs import BlobStore
from ..pipeline.handon import result_name
from ..render import hls
from ..render.hls import hls_prefix, largest_first, media_segment_name


class GrowingLadder:
    """The finished prefix of a job's render segments, as HLS playlists (master, rung -> media)."""

    MAX_RESULTS = 20_000  # results kept per process (a few KB each)

    def __init__(self, blobs: BlobStore, bucket: str):
        self.blobs, self.bucket = blobs, bucket
        self._results: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def prefix(self, job_id: str) -> list[dict[str, Any]]:
        """The stored results 0..k-1 (k: the first not stored yet, or the first with no ladder: beside the
        analysis, render's segments n..2n-1 take the pictures of spans 0..n-1)."""
        out: list[dict[str, Any]] = []
        while (result := self._result(job_id, len(out))) is not None and result.get("ladder"):
            out.append(result)
        return out

    def playlists(self, job_id: str) -> tuple[str, dict[str, str]] | None:
        """(master, {rung: media playlist}) of the prefix, None while segment 0 is not in."""
        results = self.prefix(job_id)
        if not results:
            return None
        spans = [largest_first(r["ladder"]) for r in results]
        return hls.playlists(spans, lambda i, f: media_segment_name(results[i]["index"], f), lambda name: f"{name}/index.m3u8",
                             results[0].get("hls_segment_s"), ended=False)

    def playlist_ref(self, job_id: str, rung: str) -> dict[str, str]:
        """Where the rung's playlist will be stored: its children are named relative to it."""
        return {"uri": f"gs://{self.bucket}/{hls_prefix(job_id)}{rung}/index.m3u8"}

    def _result(self, job_id: str, index: int) -> dict[str, Any] | None:
        key = (job_id, index)
        with self._lock:
            if key in self._results:
                self._results.move_to_end(key)
                return self._results[key]
        raw = self.blobs.find_bytes(self.bucket, result_name(job_id, "render", index))
        if raw is None:
            return None
        result: dict[str, Any] = json.loads(raw)
        with self._lock:
            self._results[key] = result
            while len(self._results) > self.MAX_RESULTS:
                self._results.popitem(last=False)
        return result
