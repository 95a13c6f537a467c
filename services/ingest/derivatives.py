"""Derivative images at the front door: `GET /v1/img/{signature}/{options}/{job_id}`.

Why ingest and not a service of its own: the route needs what ingest already has (the job store,
clients, the private bucket, the public origin behind nginx) and a miss is one small bounded
child; a separate service would add a hop and a deploy for one route.

Order of the checks: signature (403, one answer for every reason) -> options and limits (400
naming the setting) -> the job (404 unless it is the signer's still image; 409 until analysed).
Then the object is looked up under its key, renditions/{job}/derivatives/{source generation}/
{digest of box, fit, focus, quality}.{format}: a hit streams it (no decode, no child); a miss
takes a lease (an object created only if absent), renders in the bounded child from the original
read by ranges, stores the result create-if-absent, and gives the lease back. Concurrent misses
wait for the lease holder's result instead of rendering again; a lease older than
DERIVATIVE_LEASE_SECONDS (its holder died) is taken over. Everything lives under renditions/{job}/,
so deleting the job (notify's erase of that prefix) deletes its derivatives.
"""
from __future__ import annotations

import hashlib
import logging
import time
from functools import partial

from flask import Flask, Response, request

from ..common.errors import HTTPProblem, PermanentError
from ..media.sandbox import ChildLimits, children_started
from ..pipeline import media_work
from ..pipeline.jobstate import Job
from ..pipeline.runtime import Runtime
from ..render.derive import CONTENT_TYPES, Spec, decoder_for, focus_of, plan, render_derivative
from ..render.formats import CACHE_CONTROL, FORMATS
from . import derivative_url
from .derivative_url import BadOptions, BadSignature
from .finalized import JOB_ID

logger = logging.getLogger("mediarelay.derivatives")
LIBVIPS_NEED_BYTES = 160 * 2**20  # what a libvips miss maps at most (bench: ~100 MB peak on a 100 MP still)
LEASE_POLL_SECONDS = 0.1


class Derivatives:
    def __init__(self, rt: Runtime):
        self.rt = rt

    def serve(self, signature: str, options: str, job_id: str) -> Response:
        started = time.monotonic()
        s = self.rt.settings
        if not s.derivative_signing_keys:
            raise HTTPProblem(503, "Derivative images not configured", "this deployment has no DERIVATIVE_SIGNING_KEYS")
        try:
            client_id = derivative_url.verify(s.derivative_signing_keys, signature, options, job_id)
        except BadSignature:
            raise HTTPProblem(403, "Signature refused", "this URL is unsigned, altered, or signed with a key that is no "
                                                       "longer listed; sign it again (GET /v1/signing-keys)") from None
        try:
            opts = derivative_url.parse(options)
        except BadOptions as exc:
            raise HTTPProblem(400, "Bad derivative options", str(exc)) from None
        self._check_request(opts)
        job = self.rt.jobs.get(job_id) if JOB_ID.match(job_id) else None
        if job is None or job.get("owner") != client_id or job.get("deleted"):
            raise HTTPProblem(404, "Job not found", f"no image job with id {job_id[:64]!r}")
        if job.get("kind") != "image":
            raise HTTPProblem(404, "Not an image", f"job {job_id} is a {job.get('kind')}: derivatives are made of stills")
        analysis = job.get("analysis")
        if job["status"] == "failed" or not analysis:
            if job["status"] == "failed":
                raise HTTPProblem(404, "No image", f"job {job_id} failed; there is no image to derive from")
            raise HTTPProblem(409, "Not analysed yet", f"job {job_id} is {job['status']}; ask again in a few seconds",
                              headers={"Retry-After": "2"})
        fmt = derivative_url.chosen_format(opts, request.headers.get("Accept"))
        spec = Spec(job["source"]["content_type"], _geometry(analysis), opts.box(), opts.fit,
                    focus_of(analysis, opts.gravity, opts.focus), fmt,
                    opts.quality or derivative_url.DEFAULT_QUALITY[fmt], s.flatten_background, s.max_image_pixels)
        size = plan(analysis["width"], analysis["height"], spec.box, spec.fit, spec.focus).size
        if size[0] * size[1] > s.max_derivative_pixels:
            raise HTTPProblem(400, "Derivative too large", f"{size[0]}x{size[1]} is more than MAX_DERIVATIVE_PIXELS="
                                                          f"{s.max_derivative_pixels}")
        name = object_name(job_id, str(job["source"]["generation"]), spec)
        data, cache = self._stored_or_rendered(job, name, spec)
        resp = Response(data, content_type=CONTENT_TYPES[fmt])
        resp.headers["Cache-Control"] = CACHE_CONTROL  # the URL names one picture forever (the key holds the generation)
        if opts.format == "auto":
            resp.headers["Vary"] = "Accept"
        logger.info("derivative served", extra={"fields": {
            "job_id": job_id, "cache": cache, "format": fmt, "bytes": len(data), "ms": round((time.monotonic() - started) * 1000),
            "media_children_started": children_started()}})
        return resp

    def _check_request(self, opts: derivative_url.Options) -> None:
        s = self.rt.settings
        if opts.dpr > s.derivative_max_dpr:
            raise HTTPProblem(400, "Derivative out of limits", f"dpr {opts.dpr:g} is above DERIVATIVE_MAX_DPR="
                                                              f"{s.derivative_max_dpr:g}")
        if s.derivative_widths and opts.width is not None and str(opts.width) not in s.derivative_widths:
            raise HTTPProblem(400, "Derivative out of limits", f"w {opts.width} is not one of DERIVATIVE_WIDTHS="
                                                              f"{','.join(s.derivative_widths)}")
        for side, px in zip(("w", "h"), opts.box(), strict=True):
            if px is not None and px > s.derivative_max_edge:
                raise HTTPProblem(400, "Derivative out of limits", f"{side} x dpr = {px} px is above DERIVATIVE_MAX_EDGE="
                                                                  f"{s.derivative_max_edge}")
        bw, bh = opts.box()
        if bw and bh and bw * bh > s.max_derivative_pixels:
            raise HTTPProblem(400, "Derivative out of limits", f"{bw}x{bh} is more than MAX_DERIVATIVE_PIXELS="
                                                              f"{s.max_derivative_pixels}")

    def _stored_or_rendered(self, job: Job, name: str, spec: Spec) -> tuple[bytes, str]:
        """(bytes, "hit" | "miss" | "waited"): the stored derivative, else made once under a lease."""
        bucket, blobs = self.rt.settings.renditions_bucket, self.rt.blobs
        data = blobs.find_bytes(bucket, name)
        if data is not None:
            return data, "hit"
        lease = name + ".lease"
        give_up = time.monotonic() + self.rt.settings.derivative_lease_seconds + self.rt.settings.derivative_render_seconds
        while time.monotonic() < give_up:
            generation = blobs.try_create(bucket, lease)
            if generation is not None:
                try:
                    data = blobs.find_bytes(bucket, name)  # made while we looked the other way
                    if data is None:
                        data = self._render(job, spec)
                        stored = blobs.put_if_absent(bucket, name, data, CONTENT_TYPES[spec.format], CACHE_CONTROL)
                        self._unless_deleted_meanwhile(job["job_id"], stored.generation, name)
                        return data, "miss"
                    return data, "waited"
                finally:
                    blobs.delete_generation(bucket, lease, generation)
            time.sleep(LEASE_POLL_SECONDS)
            data = blobs.find_bytes(bucket, name)
            if data is not None:
                return data, "waited"
            held = blobs.created(bucket, lease)
            if held is not None and time.time() - held[1] > self.rt.settings.derivative_lease_seconds:
                blobs.delete_generation(bucket, lease, held[0])  # its holder died: the next turn takes it over
        raise HTTPProblem(503, "Derivative busy", "another request is still making this image; ask again",
                          headers={"Retry-After": "2"})

    def _unless_deleted_meanwhile(self, job_id: str, generation: str, name: str) -> None:
        """A deletion asked while we rendered may have erased the job's folder before our write:
        read the job after the write, and take the object back if so (asked after this read, the
        erase comes later and finds the object)."""
        job = self.rt.jobs.get(job_id)
        if job is None or job.get("deleted"):
            self.rt.blobs.delete_generation(self.rt.settings.renditions_bucket, name, generation)
            raise HTTPProblem(404, "Job not found", f"job {job_id} was deleted")

    def _render(self, job: Job, spec: Spec) -> bytes:
        s = self.rt.settings
        reason = f"DERIVATIVE_RENDER_SECONDS={s.derivative_render_seconds:g}"
        limits = ChildLimits(s.media_memory_limit_bytes, s.media_cpu_limit_seconds,
                             time.monotonic() + s.derivative_render_seconds, reason)
        W, H = spec.analysis["width"], spec.analysis["height"]
        # libvips streams; the Pillow chain (TIFF, HEIC, GIF, BMP) holds the decode
        need = LIBVIPS_NEED_BYTES + (0 if decoder_for(spec) == "libvips" else W * H * 4)
        with media_work.ranged(self.rt, job["source"]) as source:
            work = partial(render_derivative, spec=spec, budget=limits.budget("making a derivative"))
            try:
                derived = media_work.request_work(self.rt, "this derivative image", work, limits=limits, need_bytes=need,
                                                  source=source)
            except PermanentError as exc:  # corrupt, unsupported or over a limit: the reason names it, for a person
                raise HTTPProblem(422, "Cannot make this image", exc.reason) from None
        return derived.data


def _geometry(analysis: dict) -> dict:
    """What the child needs of the analysis (not the palette, EXIF or hashes)."""
    return {k: analysis[k] for k in ("width", "height", "faces", "attention") if k in analysis}


def object_name(job_id: str, generation: str, spec: Spec) -> str:
    """One name per picture: the source generation, the box in output pixels, fit, focus point,
    quality and format (w:400/dpr:2 and w:800 are one object)."""
    key = f"{spec.box[0] or 0}x{spec.box[1] or 0}/{spec.fit}/{spec.focus[0]:.4f},{spec.focus[1]:.4f}/q{spec.quality}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"renditions/{job_id}/derivatives/{generation}/{digest}.{FORMATS[spec.format].extension}"


def register_derivative_routes(app: Flask, rt: Runtime, client_id) -> None:
    """The image route (authenticated by its signature alone: ingest's client check skips it) and
    the route that hands a client its signing secrets (authenticated as every client route)."""
    derivatives = Derivatives(rt)
    app.add_url_rule(f"{derivative_url.PREFIX}<signature>/<path:options>/<job_id>", "derivative", derivatives.serve)

    @app.get("/v1/signing-keys")
    def signing_keys():
        keys = rt.settings.derivative_signing_keys
        if not keys:
            raise HTTPProblem(503, "Derivative images not configured", "this deployment has no DERIVATIVE_SIGNING_KEYS")
        cid = client_id()
        resp = {"client_id": cid, "keys": [{"kid": kid, "secret": derivative_url.client_secret(key, cid), "current": i == 0}
                                           for i, (kid, key) in enumerate(keys)]}
        answer = app.json.response(resp)
        answer.headers["Cache-Control"] = "no-store"
        return answer
