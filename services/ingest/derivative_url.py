"""Derivative-image URLs: the grammar, its one normalised form, and the signature (stdlib only:
the client library and the CLI sign with this module too).

    /v1/img/{kid}.{client_id}.{mac}/{option}/{option}.../{job_id}
    option = w:<px> | h:<px> | fit:cover|contain|fill-down | dpr:<1-4> | q:<1-100>
           | format:auto|avif|webp|jpeg | gravity:auto|centre|focus:<x>,<y>   (x, y in 0..1)

`mac` = base64url (no padding) of HMAC-SHA256(client secret, "/{options}/{job_id}"), the path
exactly as sent after the signature segment (imgproxy's rule: nothing is re-encoded before
checking). The client secret is HMAC-SHA256(server key `kid`, "mediarelay-derivative:" + client
id): a per-client secret with nothing stored per client. Why per client and not the server key
itself: pages build srcset URLs on the client's own servers, so the signing secret leaves us; a
secret that leaked from one client signs only that client's jobs, and rotating the server key
(DERIVATIVE_SIGNING_KEYS, the kid in the URL) rotates every client's secret with an overlap.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

PREFIX = "/v1/img/"
FITS = ("cover", "contain", "fill-down")
FORMATS = ("auto", "avif", "webp", "jpeg")
DEFAULT_QUALITY = {"jpeg": 82, "webp": 80, "avif": 60}
MAX_OPTIONS = 7
_INT = re.compile(r"[1-9][0-9]{0,4}")
_DPR = re.compile(r"[1-9](\.[0-9]{1,2})?")
_FRACTION = re.compile(r"(0(\.[0-9]{1,4})?|1(\.0{1,4})?)")
_SECRET_CONTEXT = b"mediarelay-derivative:"


class BadOptions(ValueError):
    """The options segment does not follow the grammar (the message says what, for a person)."""


class BadSignature(Exception):
    """Unsigned, altered, or signed by a key that is no longer listed (never told apart to the caller)."""


@dataclass(frozen=True)
class Options:
    width: int | None = None  # CSS pixels; output pixels are width x dpr
    height: int | None = None
    fit: str = "contain"
    dpr: float = 1.0
    quality: int | None = None  # None = the format's default (DEFAULT_QUALITY)
    format: str = "auto"
    gravity: str = "auto"  # auto | centre | focus
    focus: tuple[float, float] | None = None  # with gravity focus: fractions of the upright width and height

    def box(self) -> tuple[int | None, int | None]:
        """The requested box in output pixels (None where the side follows the source's aspect)."""
        return (round(self.width * self.dpr) if self.width else None, round(self.height * self.dpr) if self.height else None)

    def normalised(self) -> str:
        """One spelling per meaning (defaults written out, fixed order): part of the storage key."""
        parts = [f"w:{self.width or 0}", f"h:{self.height or 0}", f"fit:{self.fit}", f"dpr:{self.dpr:g}",
                 f"q:{self.quality or 0}", f"gravity:{self.gravity}"]
        if self.focus is not None:
            parts[-1] += f":{self.focus[0]:g},{self.focus[1]:g}"
        return "/".join(parts)


def parse(options: str) -> Options:
    """Options from the path between the signature and the job id; BadOptions says what is wrong."""
    seen: dict[str, str] = {}
    items = options.split("/")
    if not options or len(items) > MAX_OPTIONS:
        raise BadOptions(f"expected 1 to {MAX_OPTIONS} options such as w:800/h:600/fit:cover")
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or name not in ("w", "h", "fit", "dpr", "q", "format", "gravity"):
            raise BadOptions(f"unknown option {item[:40]!r} (expected w, h, fit, dpr, q, format, gravity as name:value)")
        if name in seen:
            raise BadOptions(f"option {name} given twice")
        seen[name] = value
    fields: dict = {}
    for name, key in (("w", "width"), ("h", "height")):
        if name in seen:
            if not _INT.fullmatch(seen[name]):
                raise BadOptions(f"{name} must be a whole number of pixels from 1, not {seen[name][:20]!r}")
            fields[key] = int(seen[name])
    if not fields:
        raise BadOptions("give w, h or both")
    if "fit" in seen:
        if seen["fit"] not in FITS:
            raise BadOptions(f"fit must be one of {', '.join(FITS)}")
        fields["fit"] = seen["fit"]
    if "dpr" in seen:
        if not _DPR.fullmatch(seen["dpr"]):
            raise BadOptions("dpr must be a number such as 1, 1.5 or 2")
        fields["dpr"] = float(seen["dpr"])
    if "q" in seen:
        if not _INT.fullmatch(seen["q"]) or int(seen["q"]) > 100:
            raise BadOptions("q must be a whole number from 1 to 100")
        fields["quality"] = int(seen["q"])
    if "format" in seen:
        if seen["format"] not in FORMATS:
            raise BadOptions(f"format must be one of {', '.join(FORMATS)}")
        fields["format"] = seen["format"]
    if "gravity" in seen:
        fields.update(_gravity(seen["gravity"]))
    return Options(**fields)


def _gravity(value: str) -> dict:
    if value in ("auto", "centre", "center"):
        return {"gravity": "centre" if value == "center" else value}
    kind, _, point = value.partition(":")
    x, _, y = point.partition(",")
    if kind != "focus" or not _FRACTION.fullmatch(x) or not _FRACTION.fullmatch(y):
        raise BadOptions("gravity must be auto, centre or focus:x,y with x and y from 0 to 1 (e.g. focus:0.5,0.3)")
    return {"gravity": "focus", "focus": (float(x), float(y))}


def chosen_format(opts: Options, accept: str | None) -> str:
    """`auto`: AVIF, else WebP, else JPEG, by what the request's Accept names (no q-value games:
    browsers list what they decode)."""
    if opts.format != "auto":
        return opts.format
    accepted = {part.split(";")[0].strip().lower() for part in (accept or "").split(",")}
    return "avif" if "image/avif" in accepted else "webp" if "image/webp" in accepted else "jpeg"


# --- signing ------------------------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def client_secret(server_key: bytes, client_id: str) -> str:
    """The signing secret of one client under one server key (what GET /v1/signing-keys hands out)."""
    return _b64(hmac.new(server_key, _SECRET_CONTEXT + client_id.encode(), hashlib.sha256).digest())


def mac(secret: str, options: str, job_id: str) -> str:
    return _b64(hmac.new(_unb64(secret), f"/{options}/{job_id}".encode(), hashlib.sha256).digest())


def signed_path(kid: str, client_id: str, secret: str, options: str, job_id: str) -> str:
    """/v1/img/{kid}.{client}.{mac}/{options}/{job_id}: what a page puts in src/srcset (after the API's origin)."""
    return f"{PREFIX}{kid}.{client_id}.{mac(secret, options, job_id)}/{options}/{job_id}"


def verify(keys: tuple[tuple[str, bytes], ...], signature: str, options: str, job_id: str) -> str:
    """The client that signed, else BadSignature. Any listed key verifies (rotation overlap)."""
    kid, client_id, got = (signature.rsplit(".", 2) + ["", ""])[:3] if signature.count(".") >= 2 else ("", "", "")
    server_key = dict(keys).get(kid)
    if server_key is None or not client_id.isalnum() or not got:
        raise BadSignature("unknown key id or malformed signature")
    expected = mac(client_secret(server_key, client_id), options, job_id)
    if not hmac.compare_digest(expected.encode(), got.encode()):
        raise BadSignature("signature")
    return client_id
