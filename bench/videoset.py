"""A labelled scene-cut video set, synthesised from the photos scikit-image ships.

Every clip is a script of shots; a shot is a virtual camera over one photo (still with hand-held
jitter, pan, zoom, lighting ramp, flashes) and shots are joined by hard cuts or fades through
black. The script is the ground truth: a hard cut is labelled with the first frame of the new
shot, a fade with its whole span. Film grain is added so the encoder and the detectors see noise.

Encoded with H.264 (libx264 from the imageio-ffmpeg wheel) when that is installed, else with
OpenCV's built-in MPEG-4 Part 2 ('mp4v'; the OpenCV wheel cannot write H.264). Cached by script
version and codec under bench/out/.
"""
from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

VERSION = 4
FPS = 24
FADE_FRAMES = 12  # each of fade-out and fade-in


@dataclass
class ShotSpec:
    photo: str
    frames: int
    motion: str = "still"  # still | pan | zoom
    speed: float = 0.0  # pan: px/frame at output size; zoom: total scale change over the shot
    direction: tuple[float, float] = (1.0, 0.0)
    start: tuple[float, float] = (0.5, 0.5)  # where the camera starts, as a fraction of the photo
    lighting: tuple[float, float] = (1.0, 1.0)  # gain at the first and last frame
    flashes: list[tuple[int, int]] = field(default_factory=list)  # (frame in shot, length)
    join: str = "cut"  # how this shot begins: cut | fade


@dataclass
class Transition:
    kind: str  # cut | fade
    start: int
    end: int  # inclusive; equals start for a cut


@dataclass
class ClipSpec:
    name: str
    shots: list[ShotSpec]

    def transitions(self) -> list[Transition]:
        out, frame = [], 0
        for i, s in enumerate(self.shots):
            if i:
                if s.join == "fade":
                    out.append(Transition("fade", frame - FADE_FRAMES, frame + FADE_FRAMES - 1))
                else:
                    out.append(Transition("cut", frame, frame))
            frame += s.frames
        return out

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.shots)


def clip_specs() -> list[ClipSpec]:
    P = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "camera", "coins",
         "grass", "brick", "retina", "cat", "gravel", "moon", "colorwheel", "clock"]
    cuts = ClipSpec("hard-cuts", [
        ShotSpec(P[i % len(P)], n, start=(0.3 + 0.1 * (i % 5), 0.5))
        for i, n in enumerate([40, 30, 55, 24, 48, 36, 60, 28, 44, 32, 50, 33])
    ] + [ShotSpec("astronaut", 40, start=(0.3, 0.3)), ShotSpec("astronaut", 40, start=(0.7, 0.75))])  # same photo, new framing
    pans = ClipSpec("pans", [
        ShotSpec("coffee", 70, "pan", 4, (1, 0), (0.25, 0.5)),
        ShotSpec("rocket", 60, "pan", 8, (0, 1), (0.5, 0.25)),
        ShotSpec("hubble_deep_field", 80, "pan", 6, (0.7, 0.7), (0.25, 0.25)),
        ShotSpec("grass", 60, "pan", 12, (-1, 0), (0.75, 0.5)),
        ShotSpec("astronaut", 70, "pan", 5, (1, 0.3), (0.2, 0.3)),
        ShotSpec("brick", 50, "pan", 16, (1, 0), (0.2, 0.5)),
        ShotSpec("chelsea", 60, "pan", 3, (-1, 0), (0.7, 0.5)),
        ShotSpec("immunohistochemistry", 60, "pan", 10, (0, -1), (0.5, 0.75)),
    ])
    zooms = ClipSpec("zooms", [
        ShotSpec("astronaut", 72, "zoom", 0.6), ShotSpec("coffee", 60, "zoom", -0.5), ShotSpec("rocket", 80, "zoom", 0.8),
        ShotSpec("chelsea", 60, "zoom", 0.5), ShotSpec("coins", 60, "zoom", -0.6), ShotSpec("camera", 72, "zoom", 1.0),
        ShotSpec("hubble_deep_field", 60, "zoom", 0.7),
    ])
    flashes = ClipSpec("flashes", [
        ShotSpec("coffee", 90, flashes=[(20, 2), (60, 1)]), ShotSpec("astronaut", 80, flashes=[(30, 3)]),
        ShotSpec("rocket", 90, "pan", 4, flashes=[(25, 2), (55, 2)]), ShotSpec("chelsea", 70, flashes=[(35, 1)]),
        ShotSpec("camera", 80, "zoom", 0.4, flashes=[(40, 4)]), ShotSpec("immunohistochemistry", 70, flashes=[(10, 2), (45, 3)]),
    ])
    lighting = ClipSpec("lighting", [
        ShotSpec("coffee", 96, lighting=(1.0, 0.35)), ShotSpec("astronaut", 80, lighting=(0.4, 1.1)),
        ShotSpec("rocket", 96, "pan", 3, lighting=(1.1, 0.45)), ShotSpec("chelsea", 72, lighting=(0.5, 1.0)),
        ShotSpec("hubble_deep_field", 96, lighting=(1.2, 0.5)), ShotSpec("camera", 72, "zoom", 0.3, lighting=(0.6, 1.1)),
    ])
    fades = ClipSpec("fades", [
        ShotSpec("astronaut", 70), ShotSpec("coffee", 80, join="fade"), ShotSpec("rocket", 70, "pan", 4, join="fade"),
        ShotSpec("chelsea", 60, join="cut"), ShotSpec("camera", 80, join="fade"), ShotSpec("coins", 70, join="fade"),
        ShotSpec("immunohistochemistry", 60, "zoom", 0.4, join="fade"),
    ])
    # The awkward ones: a whip pan, a jump cut (same photo, small reframing), a strobe, a cut inside a pan,
    # a cut to a dark low-contrast shot, a fast zoom.
    hard = ClipSpec("hard", [
        ShotSpec("coffee", 40), ShotSpec("grass", 30, "pan", 32, (1, 0), (0.2, 0.5)),
        ShotSpec("astronaut", 40, start=(0.45, 0.45)), ShotSpec("astronaut", 40, start=(0.55, 0.5)),
        ShotSpec("rocket", 60, flashes=[(10, 1), (14, 1), (18, 1), (22, 1), (26, 1)]),
        ShotSpec("hubble_deep_field", 40, "pan", 10, (1, 0), (0.2, 0.5)), ShotSpec("coffee", 40, "pan", 10, (1, 0), (0.4, 0.5)),
        ShotSpec("moon", 50, lighting=(0.3, 0.3)), ShotSpec("chelsea", 40, "zoom", 1.5), ShotSpec("camera", 40),
    ])
    return [cuts, pans, zooms, flashes, lighting, fades, hard]


def _photo(name: str, size: tuple[int, int]) -> np.ndarray:
    """The photo as BGR, scaled so that the frame fits twice over: room to pan and zoom."""
    from skimage import data

    a = getattr(data, name)()
    if a.ndim == 2:
        a = np.dstack([a] * 3)
    bgr = np.ascontiguousarray(a[:, :, 2::-1])
    w, h = size
    scale = max(2 * w / bgr.shape[1], 2 * h / bgr.shape[0])
    return cv2.resize(bgr, (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale)), interpolation=cv2.INTER_CUBIC)


def _camera(spec: ShotSpec, i: int, photo: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    w, h = size
    ph, pw = photo.shape[:2]
    zoom = 1.0
    if spec.motion == "zoom":
        progress = i / max(1, spec.frames - 1)
        zoom = 1.0 + spec.speed * progress if spec.speed > 0 else 1.0 - spec.speed * (1 - progress)
    cw, ch = w / zoom, h / zoom  # window on the photo (which is twice the frame size)
    cx, cy = spec.start[0] * pw, spec.start[1] * ph
    if spec.motion == "pan":
        norm = float(np.hypot(*spec.direction)) or 1.0
        step = spec.speed
        cx += spec.direction[0] / norm * step * i
        cy += spec.direction[1] / norm * step * i
    jx, jy = rng.normal(0, 0.8, 2)  # hand-held jitter
    x0 = float(np.clip(cx - cw / 2 + jx, 0, pw - cw))
    y0 = float(np.clip(cy - ch / 2 + jy, 0, ph - ch))
    m = np.array([[w / cw, 0, -x0 * w / cw], [0, h / ch, -y0 * h / ch]], np.float32)
    return cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def frames(clip: ClipSpec, size: tuple[int, int], seed: int = 0) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    w, h = size
    grain = [rng.integers(0, 7, (h, w, 1), dtype=np.uint8).repeat(3, 2) for _ in range(6)]
    photos: dict[str, np.ndarray] = {}
    n = len(clip.shots)
    for si, spec in enumerate(clip.shots):
        photo = photos.setdefault(spec.photo, _photo(spec.photo, size))
        flash_frames = {f + k: k for f, length in spec.flashes for k in range(length)}
        fade_in = spec.join == "fade"
        fade_out = si + 1 < n and clip.shots[si + 1].join == "fade"
        for i in range(spec.frames):
            frame = _camera(spec, i, photo, size, rng)
            gain = spec.lighting[0] + (spec.lighting[1] - spec.lighting[0]) * i / max(1, spec.frames - 1)
            if fade_in and i < FADE_FRAMES:
                gain *= i / FADE_FRAMES
            if fade_out and i >= spec.frames - FADE_FRAMES:
                gain *= (spec.frames - 1 - i) / FADE_FRAMES
            if gain != 1.0:
                frame = cv2.convertScaleAbs(frame, alpha=gain)
            if i in flash_frames:  # a photographer's flash: nearly white, a trace of the scene left
                frame = cv2.convertScaleAbs(frame, alpha=0.3, beta=185 + 20 * flash_frames[i])
            frame = cv2.add(frame, grain[i % 6])
            yield cv2.subtract(frame, grain[(i + 3) % 6])


def _h264_encoder() -> str | None:
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    return imageio_ffmpeg.get_ffmpeg_exe()


def codec_available() -> str:
    return "h264" if _h264_encoder() else "mp4v"


def write_clip(clip: ClipSpec, path: Path, size: tuple[int, int], codec: str) -> None:
    w, h = size
    tmp = path.with_suffix(".part" + path.suffix)
    if codec == "h264":
        cmd = [_h264_encoder(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}",
               "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
               "-movflags", "+faststart", str(tmp)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
        for frame in frames(clip, size):
            proc.stdin.write(frame.tobytes())
        proc.stdin.close()
        if proc.wait() != 0:
            raise RuntimeError(f"ffmpeg failed writing {path}")
    else:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), FPS, size)
        for frame in frames(clip, size):
            writer.write(frame)
        writer.release()
    tmp.replace(path)


def clip_path(out_dir: Path, clip: ClipSpec, size: tuple[int, int], codec: str) -> Path:
    return out_dir / f"{clip.name}-v{VERSION}-{size[1]}p-{codec}.mp4"


def build(out_dir: Path, size: tuple[int, int] = (1280, 720), codec: str | None = None) -> list[dict]:
    """Write (or reuse) every clip; return [{name, path, frames, fps, codec, transitions}]."""
    codec = codec or codec_available()
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = []
    for clip in clip_specs():
        path = clip_path(out_dir, clip, size, codec)
        if not path.exists():
            write_clip(clip, path, size, codec)
        manifest.append({"name": clip.name, "path": str(path), "frames": clip.frames, "fps": FPS, "codec": codec,
                         "transitions": [asdict(t) for t in clip.transitions()]})
    (out_dir / "videoset.json").write_text(json.dumps(manifest, indent=1))
    return manifest
