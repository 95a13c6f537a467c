"""Near-duplicates: how far the pHash moves under the edits people make, how close unrelated photos come,
and the distance d the index uses (services/pipeline/neardup.py: NEAR_DUPLICATE_DISTANCE).

Photos: every real photograph scikit-image ships (no downloads; imageio's standard images and Pillow's
test photos are not in their wheels, and the repo's test videos are made from these same photos), each
whole and as its four quadrants (different framings: unrelated pictures to the hash), so 19 x 5 = 95
originals. An original is a JPEG q90 with EXIF. Each is edited: resize to 50 %, JPEG q60, 3 % cropped
off the left and the top, a small watermark (white box with text, bottom right), format change (PNG,
WebP), EXIF strip; a 10 % crop is measured too (reported, not required).
- recall: an edit's hash is within d of its own original's;
- false matches: an original or edit, asked against every *other* original (leave one out: a query with
  no true duplicate), finds one within d. Goal: <= 0.5 % of such queries.
d is chosen on the tuning photos only (names not in HELD_OUT): the smallest d with recall >= 95 % and
false matches <= 0.5 %, rounded up to what the index's probes cover anyway (4 bands: 4r+3); the
held-out photos are then measured at that d. The watermark is half-opaque text; an opaque stamp box
is measured too (reported, not required).
Run: `python -m bench duplicates`.
"""
from __future__ import annotations

import io
import time

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage import data as skdata

from services.analyze.image import _working_copy
from services.analyze.phash import hamming, phash
from services.common.config import Settings
from services.media.imaging import open_image
from services.media.orientation import left_to_apply
from services.pipeline.neardup import BANDS

PHOTOS = ("astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
          "hubble_deep_field", "immunohistochemistry", "microaneurysms", "moon", "motorcycle", "page", "retina",
          "rocket", "text")
HELD_OUT = ("chelsea", "coins", "gravel", "moon", "retina", "text")  # never looked at while choosing d
EDITS = ("resize-50%", "jpeg-q60", "crop-3%", "watermark", "png", "webp", "exif-strip")
EXTRA_EDITS = ("crop-10%", "stamp")


def _photo(name: str) -> Image.Image:
    a = skdata.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skdata, name)()
    return Image.fromarray(np.asarray(a)[..., :3] if np.asarray(a).ndim == 3 else np.asarray(a)).convert("RGB")


def originals() -> list[tuple[str, str, Image.Image]]:
    """(photo, original name, picture): each photo whole and its four quadrants."""
    out = []
    for name in PHOTOS:
        im = _photo(name)
        out.append((name, name, im))
        w, h = im.size
        for i, (x, y) in enumerate([(0, 0), (w // 2, 0), (0, h // 2), (w // 2, h // 2)]):
            out.append((name, f"{name}/q{i}", im.crop((x, y, x + w // 2, y + h // 2))))
    return out


def _save(im: Image.Image, fmt: str, exif: bool = True, **kw) -> bytes:
    buf = io.BytesIO()
    if exif and fmt == "JPEG":
        e = Image.Exif()
        e[0x010F], e[0x0110], e[0x0132] = "Bench Camera", "B-1", "2026:12:07 10:00:00"
        kw["exif"] = e.tobytes()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _crop(im: Image.Image, fraction: float) -> Image.Image:
    w, h = im.size
    return im.crop((round(w * fraction), round(h * fraction), w, h))


def _watermark(im: Image.Image) -> Image.Image:
    """A stock-photo mark: half-opaque white text, a 25th of the height, bottom right."""
    out = im.convert("RGBA")
    w, h = out.size
    size = max(10, h // 25)
    layer = Image.new("RGBA", out.size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).text((int(w * 0.70), h - size - 6), "\u00a9 mediarelay", fill=(255, 255, 255, 128),
                               font=ImageFont.load_default(size=size))
    return Image.alpha_composite(out, layer).convert("RGB")


def _stamp(im: Image.Image) -> Image.Image:
    """A harsher mark: an opaque white box (26 % x 7 % of the picture) with dark text, bottom right."""
    out = im.copy()
    w, h = out.size
    box = (int(w * 0.74), int(h * 0.93), w - 4, h - 4)
    draw = ImageDraw.Draw(out)
    draw.rectangle(box, fill=(255, 255, 255))
    draw.text((box[0] + 3, box[1] + 1), "(c) mediarelay", fill=(40, 40, 40))
    return out


def edited(im: Image.Image, edit: str) -> bytes:
    if edit == "resize-50%":
        return _save(im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS), "JPEG", quality=90)
    if edit == "jpeg-q60":
        return _save(im, "JPEG", quality=60)
    if edit.startswith("crop-"):
        return _save(_crop(im, int(edit[5:-1]) / 100), "JPEG", quality=90)
    if edit == "watermark":
        return _save(_watermark(im), "JPEG", quality=90)
    if edit == "stamp":
        return _save(_stamp(im), "JPEG", quality=90)
    if edit == "png":
        return _save(im, "PNG")
    if edit == "webp":
        return _save(im, "WEBP", quality=80)
    if edit == "exif-strip":
        return _save(im, "JPEG", exif=False, quality=90)
    raise ValueError(edit)


def hash_of(raw: bytes) -> str:
    """The pHash exactly as analysis computes it (its working copy; services/analyze/image.py)."""
    im = open_image(raw, 100_000_000)
    work = _working_copy(im, left_to_apply(im))
    return phash(cv2.cvtColor(np.asarray(work), cv2.COLOR_RGB2GRAY))


def measure():
    rows = []  # (photo, original, edit, hash)
    for photo, name, im in originals():
        rows.append((photo, name, "original", hash_of(_save(im, "JPEG", quality=90))))
        for edit in EDITS + EXTRA_EDITS:
            rows.append((photo, name, edit, hash_of(edited(im, edit))))
    return rows


def rates(rows, photos: set[str], d: int, edits=EDITS) -> tuple[float, int, float, int]:
    """(recall, positives, false-match rate, negative queries) over the given photos."""
    index = {name: h for _, name, edit, h in rows if edit == "original"}
    hits = pos = false = neg = 0
    for photo, name, edit, h in rows:
        if edit != "original" and edit in edits and photo in photos:
            pos += 1
            hits += hamming(h, index[name]) <= d
        if photo in photos and (edit == "original" or edit in edits):
            neg += 1
            false += any(hamming(h, other) <= d for o, other in index.items() if o != name)
    return hits / max(pos, 1), pos, false / max(neg, 1), neg


def main() -> None:
    t0 = time.perf_counter()
    rows = measure()
    tuning, held = set(PHOTOS) - set(HELD_OUT), set(HELD_OUT)
    index = {name: h for _, name, edit, h in rows if edit == "original"}
    print(f"{len(index)} originals from {len(PHOTOS)} photos, {len(rows) - len(index)} edits "
          f"({time.perf_counter() - t0:.1f} s)")
    print("\ndistance of each edit to its original (all photos): median / p95 / max")
    for edit in EDITS + EXTRA_EDITS:
        ds = [hamming(h, index[name]) for _, name, e, h in rows if e == edit]
        print(f"  {edit:<11} {np.median(ds):4.1f} / {np.percentile(ds, 95):4.1f} / {max(ds):2d}")
    unrelated = [hamming(a, b) for i, a in enumerate(index.values()) for b in list(index.values())[i + 1:]]
    print(f"  unrelated originals: min {min(unrelated)}, p1 {np.percentile(unrelated, 1):.1f}, "
          f"median {np.median(unrelated):.1f} ({len(unrelated)} pairs)")
    print("\ntuning photos: d, recall, false matches")
    enough = []
    for d in range(0, 17):
        rec, pos, fm, neg = rates(rows, tuning, d)
        print(f"  d={d:2d}  recall {rec:6.1%} of {pos}   false {fm:6.2%} of {neg}")
        if rec >= 0.95 and fm <= 0.005:
            enough.append(d)
    # The index's 4 bands find every hash within 4r+3 probing radius r in each band: round up to that.
    chosen = (min(enough) // BANDS) * BANDS + BANDS - 1 if enough else 0
    rec, pos, fm, neg = rates(rows, held, chosen)
    print(f"\nmeasured d={chosen} (smallest d with recall >= 95 % and false <= 0.5 % on the tuning photos, rounded up to "
          f"4r+3); the index uses NEAR_DUPLICATE_DISTANCE={Settings.from_env().near_duplicate_distance}")
    print(f"held-out photos at d={chosen}: recall {rec:.1%} of {pos} edits, false matches {fm:.2%} of {neg} queries")
    for extra in EXTRA_EDITS:
        rec_x, pos_x, _, _ = rates(rows, set(PHOTOS), chosen, (extra,))
        print(f"not required, {extra} (all photos) at d={chosen}: recall {rec_x:.1%} of {pos_x}")
    per_edit = {e: rates(rows, held, chosen, (e,))[0] for e in EDITS}
    print("held-out recall per edit: " + ", ".join(f"{e} {r:.0%}" for e, r in per_edit.items()))
