"""SVG charts drawn here (no library, nothing fetched): bars per hour, lines, a waterfall.

Each returns markup (`markupsafe.Markup`); every text in it is escaped. Sizes are in a viewBox, so
a chart scales to the page (a phone or 1280 px) with CSS width:100%."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

W, H, PAD_L, PAD_B, PAD_T = 1000, 220, 44, 22, 10  # a viewBox about a page's width: text stays text-sized


def _svg(body: str, height: int = H, label: str = "") -> Markup:
    return Markup(f'<svg class="chart" viewBox="0 0 {W} {height}" role="img" aria-label="{escape(label)}" '
                  f'preserveAspectRatio="xMinYMin meet">{body}</svg>')


def _axis(top: float, unit: str, height: int = H) -> str:
    y0 = height - PAD_B
    lines = [f'<line class="axis" x1="{PAD_L}" y1="{y0}" x2="{W}" y2="{y0}"/>']
    for frac in (0.5, 1.0):
        y = y0 - (y0 - PAD_T) * frac
        tick = escape(_num(top * frac) + unit)
        lines.append(f'<line class="grid" x1="{PAD_L}" y1="{y:.1f}" x2="{W}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{PAD_L - 4}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
    return "".join(lines)


def _num(v: float) -> str:
    return f"{v:.0f}" if v >= 10 or v == int(v) else f"{v:.1f}"


def stacked_bars(labels: Sequence[str], series: dict[str, Sequence[float]], label: str) -> Markup:
    """One bar per label, the series stacked (classes `s0`, `s1`, ... colour them)."""
    n = max(len(labels), 1)
    totals = [sum(s[i] for s in series.values()) for i in range(len(labels))]
    top = max([*totals, 1])
    y0, span, slot = H - PAD_B, H - PAD_B - PAD_T, (W - PAD_L) / n
    out = [_axis(top, "")]
    for i, name in enumerate(labels):
        base = 0.0
        for k, (sname, values) in enumerate(series.items()):
            h = span * values[i] / top
            if h > 0:
                out.append(f'<rect class="s{k}" x="{PAD_L + i * slot + 1:.1f}" y="{y0 - base - h:.1f}" width="{slot - 2:.1f}" '
                           f'height="{h:.1f}"><title>{escape(name)} {escape(sname)}: {values[i]:g}</title></rect>')
            base += h
        if i % max(1, n // 8) == 0:
            out.append(f'<text class="tick" x="{PAD_L + i * slot:.1f}" y="{H - 6}">{escape(name)}</text>')
    return _svg("".join(out), label=label)


def lines(labels: Sequence[str], series: dict[str, Sequence[float | None]], unit: str, label: str) -> Markup:
    """One polyline per series (None = no point that hour)."""
    n = max(len(labels) - 1, 1)
    top = max([v for s in series.values() for v in s if v is not None] + [1])
    y0, span, step = H - PAD_B, H - PAD_B - PAD_T, (W - PAD_L) / n
    out = [_axis(top, unit)]
    for k, (sname, values) in enumerate(series.items()):
        pts = [(PAD_L + i * step, y0 - span * v / top) for i, v in enumerate(values) if v is not None]
        if pts:
            out.append(f'<polyline class="l{k}" points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in pts)}">'
                       f'<title>{escape(sname)}</title></polyline>')
            out.extend(f'<circle class="l{k}" cx="{x:.1f}" cy="{y:.1f}" r="2.5"/>' for x, y in pts)
    for i, name in enumerate(labels):
        if i % max(1, len(labels) // 8) == 0:
            out.append(f'<text class="tick" x="{PAD_L + i * step:.1f}" y="{H - 6}">{escape(name)}</text>')
    return _svg("".join(out), label=label)


@dataclass
class Span:
    """One row of a waterfall: waited from `queued` to `start`, worked from `start` to `end` (seconds from t0)."""
    name: str
    queued: float | None
    start: float | None
    end: float | None
    state: str
    indent: bool = False


def waterfall(spans: Sequence[Span], total: float) -> Markup:
    row, label_w = 22, 150
    height = row * len(spans) + 26
    scale = (W - label_w - 10) / max(total, 0.001)
    out = []
    for i, s in enumerate(spans):
        y = i * row + 4
        name = ("  " if s.indent else "") + s.name
        out.append(f'<text class="wf-label{" wf-seg" if s.indent else ""}" x="{4 + (12 if s.indent else 0)}" y="{y + 14}">'
                   f'{escape(name)}</text>')
        if s.queued is not None and s.start is not None and s.start > s.queued:
            out.append(f'<rect class="wf-wait" x="{label_w + s.queued * scale:.1f}" y="{y + 6}" '
                       f'width="{max((s.start - s.queued) * scale, 1):.1f}" height="6"><title>{escape(s.name)} queued '
                       f'{s.start - s.queued:.2f} s</title></rect>')
        if s.start is not None:
            end = s.end if s.end is not None else total
            out.append(f'<rect class="wf-{escape(s.state)}" x="{label_w + s.start * scale:.1f}" y="{y + 2}" '
                       f'width="{max((end - s.start) * scale, 2):.1f}" height="14"><title>{escape(s.name)} {escape(s.state)} '
                       f'{end - s.start:.2f} s</title></rect>')
    y = len(spans) * row + 18
    out.append(f'<text class="tick" x="{label_w}" y="{y}">0 s</text>'
               f'<text class="tick" x="{W - 6}" y="{y}" text-anchor="end">{total:.2f} s</text>')
    return Markup(f'<svg class="chart waterfall" viewBox="0 0 {W} {height}" role="img" aria-label="stage waterfall">'
                  f'{"".join(out)}</svg>')
