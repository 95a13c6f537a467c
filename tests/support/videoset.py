"""A labelled scene-cut video set, synthesised from the photos scikit-image ships.

Every clip is a script of shots; a shot is a virtual camera over one photo (still with hand-held
jitter, pan, zoom, lighting ramp, flashes) or a blank card (black with a small logo, white with a
caption), and shots are joined by hard cuts, fades through black, dissolves, or fades through a
card (a dissolve into the card and out of it). The script is the ground truth: a hard cut is
labelled with the first frame of the new shot, a gradual transition with its whole span. Film
grain is added so the encoder and the detectors see noise.

Clips may also carry container facts a player honours: a sample aspect ratio (anamorphic: stored
squeezed), a display rotation (stored turned the other way), variable frame durations, a start
delay (first PTS > 0, written by the MP4 muxer as an edit list) and an audio track. Encoded with
PyAV (libx264 from its wheel). Cached by script version under bench/out/.
"""
from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

VERSION = 5
FPS = 24
FADE_FRAMES = 12  # each of fade-out and fade-in
CARDS = ("card-black", "card-white")  # blank cards: black with a small logo, white with a caption


@dataclass
class ShotSpec:
    photo: str  # a scikit-image photo, or a card
    frames: int
    motion: str = "still"  # still | pan | zoom
    speed: float = 0.0  # pan: px/frame at output size; zoom: total scale change over the shot
    direction: tuple[float, float] = (1.0, 0.0)
    start: tuple[float, float] = (0.5, 0.5)  # where the camera starts, as a fraction of the photo
    lighting: tuple[float, float] = (1.0, 1.0)  # gain at the first and last frame
    flashes: list[tuple[int, int]] = field(default_factory=list)  # (frame in shot, length)
    join: str = "cut"  # how this shot begins: cut | fade (through black) | dissolve (a mix over `mix` frames)
    mix: int = 0  # dissolve: frames of the mix, half before the boundary and half after
    tint: bool = False  # the photo's colours turned half-way round the hue circle, its luma kept


@dataclass
class Transition:
    kind: str  # cut | fade | dissolve
    start: int
    end: int  # inclusive; equals start for a cut


@dataclass
class ClipSpec:
    name: str
    shots: list[ShotSpec]
    size: tuple[int, int] | None = None  # display size; None: the set's
    sar: tuple[int, int] | None = None  # stored squeezed by this pixel aspect
    rotation: int = 0  # clockwise degrees a player turns it (stored turned the other way)
    vfr: bool = False  # frame durations cycle 1/24, 1/30, 1/20 s
    delay_s: float = 0.0  # first frame's PTS
    audio: bool = False
    tuned: bool = True  # False: held out, never looked at while tuning the detector

    def transitions(self) -> list[Transition]:
        out, frame = [], 0
        card_from = None
        for i, s in enumerate(self.shots):
            if i:
                if s.join == "fade":
                    out.append(Transition("fade", frame - FADE_FRAMES, frame + FADE_FRAMES - 1))
                elif s.join == "dissolve":
                    t = Transition("dissolve", frame - s.mix // 2, frame + (s.mix + 1) // 2 - 1)
                    if s.photo in CARDS:
                        card_from = t.start  # into a card: the fade ends when the card is left
                    elif card_from is not None:
                        out.append(Transition("fade", card_from, t.end))
                        card_from = None
                    else:
                        out.append(t)
                else:
                    out.append(Transition("cut", frame, frame))
            frame += s.frames
        return out

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.shots)

    def pts_seconds(self) -> list[float]:
        """Presentation time of every frame, as written."""
        times, t = [], self.delay_s
        for i in range(self.frames):
            times.append(t)
            t += (1 / 24, 1 / 30, 1 / 20)[i % 3] if self.vfr else 1 / FPS
        return times


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
    # Gradual transitions: fades through a black card with a small logo and a white one with a caption,
    # dissolves of 0.5 to 2 s (one over a pan), and cuts that change colour but not brightness or layout.
    cards = ClipSpec("card-fades", [
        ShotSpec("astronaut", 60), ShotSpec("card-black", 34, join="dissolve", mix=16),
        ShotSpec("coffee", 60, join="dissolve", mix=16),
        ShotSpec("rocket", 50, "pan", 3), ShotSpec("card-white", 30, join="dissolve", mix=12),
        ShotSpec("chelsea", 60, join="dissolve", mix=12), ShotSpec("card-black", 40, join="dissolve", mix=24),
        ShotSpec("camera", 60, join="dissolve", mix=24), ShotSpec("coins", 50),
    ])
    dissolves = ClipSpec("dissolves", [
        ShotSpec("coffee", 60), ShotSpec("astronaut", 60, join="dissolve", mix=12),
        ShotSpec("rocket", 70, join="dissolve", mix=24), ShotSpec("chelsea", 80, "pan", 3, join="dissolve", mix=36),
        ShotSpec("camera", 80, join="dissolve", mix=48), ShotSpec("coins", 60, join="cut"),
        ShotSpec("immunohistochemistry", 70, join="dissolve", mix=18),
    ])
    colour = ClipSpec("colour-cuts", [
        ShotSpec("coffee", 48), ShotSpec("coffee", 48, tint=True), ShotSpec("chelsea", 40),
        ShotSpec("chelsea", 40, tint=True), ShotSpec("rocket", 44, "pan", 3), ShotSpec("rocket", 44, "pan", 3, tint=True),
        ShotSpec("astronaut", 48, lighting=(1.0, 0.7)), ShotSpec("astronaut", 48, tint=True),
    ])
    # Container facts (small frames, a few seconds each): PTS, SAR, rotation, edit-list delay, audio.
    small = (640, 360)
    facts = [
        ClipSpec("vfr", [ShotSpec("coffee", 40), ShotSpec("rocket", 36), ShotSpec("chelsea", 44, join="dissolve", mix=16),
                         ShotSpec("camera", 30)], small, vfr=True, audio=True),
        ClipSpec("edit-list-delay", [ShotSpec("astronaut", 30), ShotSpec("coins", 30), ShotSpec("coffee", 30)], small,
                 delay_s=1.0, audio=True),
        ClipSpec("anamorphic", [ShotSpec("chelsea", 36), ShotSpec("astronaut", 36)], small, sar=(4, 3)),
        *[ClipSpec(f"rotation-{r}", [ShotSpec("coffee", 24), ShotSpec("camera", 24)], small, rotation=r) for r in (90, 180, 270)],
    ]
    # Held out of tuning: written once, scored, never looked at while the thresholds were chosen.
    held1 = ClipSpec("heldout-mixed-1", [
        ShotSpec("retina", 50), ShotSpec("cat", 60, join="dissolve", mix=30), ShotSpec("gravel", 40, "pan", 5),
        ShotSpec("card-black", 30, join="dissolve", mix=14), ShotSpec("clock", 50, join="dissolve", mix=14),
        ShotSpec("clock", 50, tint=True), ShotSpec("hubble_deep_field", 60, "zoom", 0.5, join="fade"),
        ShotSpec("brick", 50, "pan", 6, join="dissolve", mix=20),
    ], tuned=False)
    held2 = ClipSpec("heldout-mixed-2", [
        ShotSpec("cat", 50, flashes=[(20, 2)]), ShotSpec("card-white", 36, join="dissolve", mix=20),
        ShotSpec("retina", 50, join="dissolve", mix=20), ShotSpec("colorwheel", 40), ShotSpec("grass", 60, "pan", 8),
        ShotSpec("coffee", 50, lighting=(1.0, 0.4)), ShotSpec("immunohistochemistry", 60, join="dissolve", mix=40),
        ShotSpec("cat", 40, tint=True, start=(0.4, 0.5)),
    ], tuned=False)
    return [cuts, pans, zooms, flashes, lighting, fades, hard, cards, dissolves, colour, *facts, held1, held2]


def _tinted(bgr: np.ndarray) -> np.ndarray:
    ycc = cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)
    ycc[:, :, 1:] = 255 - ycc[:, :, 1:]  # chroma through the neutral point: the opposite hue, the same luma
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR)


def _card(name: str, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    if name == "card-black":
        card = np.full((h, w, 3), 8, np.uint8)
        cv2.circle(card, (w - w // 12, h - h // 9), max(3, h // 22), (230, 230, 230), -1)  # a small logo, bottom right
        cv2.putText(card, "TV", (w - w // 12 - h // 40, h - h // 9 + h // 80), cv2.FONT_HERSHEY_SIMPLEX, h / 700, (20, 20, 20), 1)
    else:
        card = np.full((h, w, 3), 246, np.uint8)
        cv2.putText(card, "a caption on the card", (w // 4, h - h // 8), cv2.FONT_HERSHEY_SIMPLEX, h / 500, (40, 40, 40),
                    max(1, h // 300))
    return card


def _photo(name: str, size: tuple[int, int], tint: bool = False) -> np.ndarray:
    """The photo as BGR, scaled so that the frame fits twice over: room to pan and zoom."""
    from skimage import data

    if name in CARDS:
        return _card(name, size)
    a = getattr(data, name)()
    if a.ndim == 2:
        a = np.dstack([a] * 3)
    bgr = np.ascontiguousarray(a[:, :, 2::-1])
    if tint:
        bgr = _tinted(bgr)
    w, h = size
    scale = max(2 * w / bgr.shape[1], 2 * h / bgr.shape[0])
    return cv2.resize(bgr, (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale)), interpolation=cv2.INTER_CUBIC)


def _camera(spec: ShotSpec, i: int, photo: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    w, h = size
    if spec.photo in CARDS:
        return photo
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


def _shot_frame(spec: ShotSpec, si: int, i: int, photo: np.ndarray, size, seed: int) -> np.ndarray:
    """Frame i of a shot (i may run past either end, for the mixes of a dissolve); jitter seeded per frame."""
    frame = _camera(spec, i, photo, size, np.random.default_rng((seed, si, i + 1000)))
    gain = spec.lighting[0] + (spec.lighting[1] - spec.lighting[0]) * min(max(i, 0), spec.frames - 1) / max(1, spec.frames - 1)
    return frame, gain


def frames(clip: ClipSpec, size: tuple[int, int], seed: int = 0) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    w, h = size
    grain = [rng.integers(0, 7, (h, w, 1), dtype=np.uint8).repeat(3, 2) for _ in range(6)]
    photos: dict[tuple[str, bool], np.ndarray] = {}
    shots = clip.shots
    n = len(shots)

    def photo(spec):
        key = (spec.photo, spec.tint)
        if key not in photos:  # loaded and scaled once per clip, not once per frame
            photos[key] = _photo(spec.photo, size, spec.tint)
        return photos[key]

    for si, spec in enumerate(shots):
        flash_frames = {f + k: k for f, length in spec.flashes for k in range(length)}
        fade_in = spec.join == "fade"
        fade_out = si + 1 < n and shots[si + 1].join == "fade"
        mix_in = spec.mix if spec.join == "dissolve" and si else 0
        nxt = shots[si + 1] if si + 1 < n and shots[si + 1].join == "dissolve" else None
        for i in range(spec.frames):
            frame, gain = _shot_frame(spec, si, i, photo(spec), size, seed)
            if fade_in and i < FADE_FRAMES:
                gain *= i / FADE_FRAMES
            if fade_out and i >= spec.frames - FADE_FRAMES:
                gain *= (spec.frames - 1 - i) / FADE_FRAMES
            if gain != 1.0:
                frame = cv2.convertScaleAbs(frame, alpha=gain)
            if i in flash_frames:  # a photographer's flash: nearly white, a trace of the scene left
                frame = cv2.convertScaleAbs(frame, alpha=0.3, beta=185 + 20 * flash_frames[i])
            # A dissolve mixes the two shots over `mix` frames centred on their boundary (weight of the later shot).
            other, weight = None, 0.0
            if mix_in and i < (mix_in + 1) // 2:
                prev = shots[si - 1]
                other, g = _shot_frame(prev, si - 1, prev.frames + i, photo(prev), size, seed)
                other = cv2.convertScaleAbs(other, alpha=g) if g != 1.0 else other
                weight = 1 - (mix_in // 2 + i + 0.5) / mix_in
            elif nxt is not None and i >= spec.frames - nxt.mix // 2:
                j = i - spec.frames
                other, g = _shot_frame(nxt, si + 1, j, photo(nxt), size, seed)
                other = cv2.convertScaleAbs(other, alpha=g) if g != 1.0 else other
                weight = (nxt.mix // 2 + j + 0.5) / nxt.mix
            if other is not None:
                frame = cv2.addWeighted(frame, 1 - weight, other, weight, 0)
            frame = cv2.add(frame, grain[i % 6])
            yield cv2.subtract(frame, grain[(i + 3) % 6])


def _stored(frame: np.ndarray, clip: ClipSpec) -> np.ndarray:
    """The frame as the file stores it: squeezed by the SAR, turned against the display rotation."""
    if clip.sar:
        h, w = frame.shape[:2]
        frame = cv2.resize(frame, (round(w * clip.sar[1] / clip.sar[0] / 2) * 2, h), interpolation=cv2.INTER_AREA)
    turn = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}.get(clip.rotation)
    return cv2.rotate(frame, turn) if turn is not None else frame


def codec_available() -> str:
    return "h264"


def write_clip(clip: ClipSpec, path: Path, size: tuple[int, int], codec: str = "h264", keyframes: Collection[int] = (), *,
               preset: str = "veryfast", crf: int = 20, keyframes_every_s: float | None = None,
               audio_marks_s: tuple[float, ...] = ()) -> None:
    """Encode with PyAV: libx264 (or `codec`, an FFmpeg encoder name), PTS from the script, container facts set.

    `keyframes_every_s`: libx264 only; an IDR at the first frame at or after every multiple of it (from the
    first frame) and nowhere else (x264's own scene-cut and interval keyframes off), so the keyframes, and
    therefore a segment plan, are known from the script. `audio_marks_s`: a 50 ms 1 kHz burst over the tone
    at each of these times, so audio sync can be measured against the picture. `keyframes`: frame indices
    forced to be IDR frames (seek points, e.g. segment boundaries), besides the encoder's own."""
    import av

    size = clip.size or size
    tmp = path.with_suffix(".part" + path.suffix)
    times = clip.pts_seconds()
    tb = Fraction(1, 12000)
    forced: set[int] = set(keyframes)
    if keyframes_every_s:
        grid = times[0]
        for i, t in enumerate(times):
            if t >= grid - 1e-9:
                forced.add(i)
                while grid <= t + 1e-9:
                    grid += keyframes_every_s
    with av.open(str(tmp), "w", format="mp4") as out:
        stream = None
        for i, bgr in enumerate(frames(clip, size)):
            stored = _stored(bgr, clip)
            if stream is None:
                stream = out.add_stream("libx264" if codec == "h264" else codec, rate=FPS)
                stream.height, stream.width = stored.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.time_base = stream.codec_context.time_base = tb
                stream.options = {"preset": preset, "crf": str(crf)}
                if keyframes_every_s:  # these keyframes and no others
                    stream.options |= {"forced-idr": "1", "x264-params": "scenecut=0:keyint=infinite"}
                elif forced:  # these besides the encoder's own
                    stream.options |= {"forced-idr": "1"}
                if clip.sar:
                    stream.codec_context.sample_aspect_ratio = Fraction(*clip.sar)
                if clip.rotation:
                    stream.set_display_rotation(-clip.rotation)  # FFmpeg counts counter-clockwise
                audio = out.add_stream("aac", rate=48000) if clip.audio else None
                if audio is not None:
                    audio.layout = "stereo"
            f = av.VideoFrame.from_ndarray(stored, format="bgr24")
            f.pts, f.time_base = round(times[i] / tb), tb
            if i in forced:
                f.pict_type = av.video.frame.PictureType.I
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if audio is not None:  # a 440 Hz tone for the length of the video
            total = int((times[-1] + 1 / FPS) * 48000)
            for pts in range(0, total, 1024):
                t = (np.arange(pts, pts + 1024) / 48000).astype(np.float32)
                wave = 0.1 * np.sin(2 * np.pi * 440 * t)
                for m in audio_marks_s:
                    wave += np.where((t >= m) & (t < m + 0.05), 0.5 * np.sin(2 * np.pi * 1000 * (t - m)), 0)
                tone = np.stack([wave] * 2).astype(np.float32)
                af = av.AudioFrame.from_ndarray(tone, format="fltp", layout="stereo")
                af.sample_rate, af.pts = 48000, pts
                for packet in audio.encode(af):
                    out.mux(packet)
            for packet in audio.encode():
                out.mux(packet)
    tmp.replace(path)


def clip_path(out_dir: Path, clip: ClipSpec, size: tuple[int, int], codec: str) -> Path:
    return out_dir / f"{clip.name}-v{VERSION}-{(clip.size or size)[1]}p-{codec}.mp4"


def build(out_dir: Path, size: tuple[int, int] = (1280, 720), codec: str | None = None) -> list[dict]:
    """Write (or reuse) every clip; return [{name, path, frames, fps, codec, transitions, pts, tuned, ...}]."""
    codec = codec or codec_available()
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = []
    for clip in clip_specs():
        path = clip_path(out_dir, clip, size, codec)
        if not path.exists():
            write_clip(clip, path, size, codec)
        manifest.append({"name": clip.name, "path": str(path), "frames": clip.frames, "fps": FPS, "codec": codec,
                         "transitions": [asdict(t) for t in clip.transitions()], "pts": clip.pts_seconds(),
                         "tuned": clip.tuned, "size": list(clip.size or size), "sar": clip.sar, "rotation": clip.rotation,
                         "delay_s": clip.delay_s, "audio": clip.audio, "vfr": clip.vfr})
    (out_dir / "videoset.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def bare_decode(path: str) -> None:
    """The baseline every video bench is measured against: a threaded PyAV decode of every frame."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        for _ in container.decode(stream):
            pass
