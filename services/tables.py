"""Plain-text tables for the command line and `make run`."""
from __future__ import annotations


def text_table(columns: list[str], rows: list[list], max_width: int | None = None) -> str:
    """Left-aligned columns under a header and a rule; cells cut at `max_width` if given."""
    if not rows:
        return "(none)"
    cells = [[str(v) for v in row] for row in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    if max_width:
        widths = [min(w, max_width) for w in widths]

    def line(values):
        return "  ".join(v[:w].ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(row) for row in cells)])
