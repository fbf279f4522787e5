"""Server-side SVG line charts: no JavaScript library, nothing fetched from a CDN."""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape

WIDTH, HEIGHT, PAD = 560, 180, 36


def line_chart(title: str, labels: Sequence[str], values: Sequence[float | None], unit: str = "") -> str:
    """Return an SVG document plotting `values` (None = gap) over `labels`, with the title and y-axis maximum."""
    known = [v for v in values if v is not None]
    top = max(known) if known else 1.0
    top = top if top > 0 else 1.0
    step = (WIDTH - 2 * PAD) / max(len(values) - 1, 1)
    segments: list[list[str]] = [[]]
    for i, value in enumerate(values):
        if value is None:
            segments.append([])
            continue
        x = PAD + i * step
        y = HEIGHT - PAD - (value / top) * (HEIGHT - 2 * PAD)
        segments[-1].append(f"{x:.1f},{y:.1f}")
    lines = "".join(
        f'<polyline class="series" fill="none" stroke="#417690" stroke-width="2" points="{" ".join(s)}"/>'
        for s in segments
        if s
    )
    dots = "".join(
        f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="2.5" fill="#417690"/>' for s in segments for p in s
    )
    first, last = (escape(labels[0]), escape(labels[-1])) if labels else ("", "")
    empty = (
        "" if known else f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" fill="#999">no data yet</text>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(title)}">'
        f'<rect width="100%" height="100%" fill="#fff"/>'
        f'<text x="{PAD}" y="18" font-family="sans-serif" font-size="13" font-weight="bold">{escape(title)}</text>'
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#ccc"/>'
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#ccc"/>'
        f'<text x="{PAD - 4}" y="{PAD + 4}" text-anchor="end" font-family="sans-serif" font-size="10">'
        f"{top:.4g}{escape(unit)}</text>"
        f'<text x="{PAD}" y="{HEIGHT - PAD + 14}" font-family="sans-serif" font-size="10">{first}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - PAD + 14}" text-anchor="end" font-family="sans-serif" '
        f'font-size="10">{last}</text>{lines}{dots}{empty}</svg>'
    )
