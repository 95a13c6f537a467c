"""What the ladder does with an HDR source (PQ or HLG transfer): a named choice, `hdr=`.

- "tonemap" (the default): to SDR BT.709, 8-bit, what every player shows right. The FFmpeg here has
  no zscale (the usual linearising step before its `tonemap` filter), so the whole conversion is one
  3D LUT (`lut3d`, tetrahedral) computed here: R'G'B' (BT.2020, from the decoder's Y'CbCr) -> PQ
  EOTF or HLG inverse OETF + OOTF (1000 cd/m2 display) -> linear light -> BT.2020 to BT.709 primaries
  (negative components clipped) -> HDR reference white (203 cd/m2, ITU-R BT.2408) at 1.0 -> a soft
  knee on max(R,G,B) that keeps values below 0.7 and rolls highlights off towards 1.0 (hue kept) ->
  BT.1886 (gamma 2.4) encoding. Each rung's scaler then converts to BT.709 Y'CbCr, limited range.
- "passthrough": the picture left as it is, 10-bit H.264 High 10 with the source's PQ/HLG and
  BT.2020 tags. Only players with a 10-bit H.264 decoder show it (not Safari, not most phones:
  Apple's HDR HLS is HEVC in fMP4, which this TS ladder does not make).
An SDR source goes through untouched whatever the choice; its colour tags are copied.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from ..media.video import HDR_TRANSFERS

HDR_CHOICES = {"tonemap", "passthrough"}
LUT_SIZE = 33
LUT_VERSION = 1
REFERENCE_WHITE = 203.0  # cd/m2: HDR graphics/reference white (ITU-R BT.2408) becomes SDR white
HLG_PEAK = 1000.0  # cd/m2: the display HLG's OOTF is computed for
KNEE = 0.7
BT709, BT2020_NCL, MPEG_RANGE, UNSPECIFIED = 1, 9, 1, 2
_2020_TO_709 = np.array([[1.6605, -0.5876, -0.0728], [-0.1246, 1.1329, -0.0083], [-0.0182, -0.1006, 1.1187]])


@dataclass
class ColourPlan:
    before_split: list[tuple[str, str]] = field(default_factory=list)  # filters at the source's size
    scale_args: str = ""  # appended to each rung's scale filter
    pix_fmt: str = "yuv420p"
    profile: str | None = None  # overrides the rung's x264 profile
    tags: dict = field(default_factory=dict)  # the encoder's colour tags (VUI)
    done: str | None = None  # what happened to HDR: None (SDR source), "tonemap", "passthrough"


def plan(frame: av.VideoFrame, choice: str) -> ColourPlan:
    if choice not in HDR_CHOICES:
        raise ValueError(f"hdr must be one of {sorted(HDR_CHOICES)}, got {choice!r}")
    tags = {"color_range": MPEG_RANGE}
    for k in ("color_primaries", "color_trc", "colorspace"):
        v = int(getattr(frame, k) or UNSPECIFIED)
        if v != UNSPECIFIED:  # unspecified stays unspecified: players assume BT.709 for HD
            tags[k] = v
    transfer = HDR_TRANSFERS.get(int(frame.color_trc or 0))
    if transfer is None:
        return ColourPlan(tags=tags)
    if choice == "passthrough":
        return ColourPlan(pix_fmt="yuv420p10le", profile="high10", tags=tags, done="passthrough")
    cube = lut_file(transfer)
    return ColourPlan(
        before_split=[("scale", "in_color_matrix=bt2020:in_range=tv:out_range=pc"), ("format", "gbrp16le"),
                      ("lut3d", f"file={cube}:interp=tetrahedral")],
        scale_args=":out_color_matrix=bt709:out_range=tv",
        tags={"color_range": MPEG_RANGE, "color_primaries": BT709, "color_trc": BT709, "colorspace": BT709},
        done="tonemap")


# --- the LUT ---------------------------------------------------------------------------------------

def _pq_eotf(e: np.ndarray) -> np.ndarray:
    m1, m2 = 2610 / 16384, 2523 / 4096 * 128
    c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    p = np.power(np.clip(e, 0, 1), 1 / m2)
    return 10000.0 * np.power(np.maximum(p - c1, 0) / (c2 - c3 * p), 1 / m1)


def _hlg_display(e: np.ndarray) -> np.ndarray:
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    e = np.clip(e, 0, 1)
    scene = np.where(e <= 0.5, e * e / 3, (np.exp((e - c) / a) + b) / 12)
    ys = scene @ np.array([0.2627, 0.6780, 0.0593])
    return HLG_PEAK * np.power(np.maximum(ys, 1e-12), 0.2)[..., None] * scene  # OOTF, system gamma 1.2


def tonemap_rgb(rgb: np.ndarray, transfer: str) -> np.ndarray:
    """HDR R'G'B' (BT.2020, 0..1, last axis) -> SDR R'G'B' (BT.709, 0..1): the LUT's function."""
    nits = _pq_eotf(rgb) if transfer == "pq" else _hlg_display(rgb)
    x = np.maximum((nits / REFERENCE_WHITE) @ _2020_TO_709.T, 0)
    m = x.max(axis=-1, keepdims=True)
    rolled = np.where(m <= KNEE, m, KNEE + (1 - KNEE) * (1 - np.exp(-(m - KNEE) / (1 - KNEE))))
    y = np.where(m > 0, x * rolled / np.maximum(m, 1e-12), 0)
    return np.power(np.clip(y, 0, 1), 1 / 2.4)


def lut_file(transfer: str) -> Path:
    """The .cube file for `transfer`, written once per machine (atomically) into the temp directory."""
    path = Path(tempfile.gettempdir()) / f"mediarelay-hdr-{transfer}-to-sdr709-v{LUT_VERSION}-{LUT_SIZE}.cube"
    if path.exists():
        return path
    g = np.linspace(0, 1, LUT_SIZE)
    b, gg, r = np.meshgrid(g, g, g, indexing="ij")  # .cube order: red changes fastest
    out = tonemap_rgb(np.stack([r, gg, b], axis=-1).reshape(-1, 3), transfer)
    text = f"LUT_3D_SIZE {LUT_SIZE}\n" + "\n".join(f"{p[0]:.6f} {p[1]:.6f} {p[2]:.6f}" for p in out) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".cube.part")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path
