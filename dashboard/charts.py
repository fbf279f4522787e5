"""Server-side SVG line charts: no JavaScript library, nothing fetched from a CDN.

A chart spans its whole window (so the 24 h and 7 d views differ), with time ticks at the resolution the window
needs (minutes for an hour, hours for a day, days for a week or a month), y ticks from zero with their unit, a zero
line, a legend when there is more than one series, and a plain empty state while there are under two points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from xml.sax.saxutils import escape

from django.utils import timezone

WIDTH, HEIGHT = 560, 230
LEFT, RIGHT, TOP, BOTTOM = 66, 14, 44, 34
COLOURS = ("#417690", "#d9822b", "#5a9e3a", "#b83b5e", "#7d5ba6", "#8a8a8a")
EMPTY = "Not enough data yet — the chart fills as calls arrive"
FONT = 'font-family="sans-serif" font-size="11"'


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]


def resolution(span: timedelta) -> timedelta:
    """Return the bucket a window of `span` is drawn at: minutes up to 2 h, hours up to 7 d, days beyond."""
    if span <= timedelta(hours=2):
        return timedelta(minutes=1)
    if span <= timedelta(days=7):
        return timedelta(hours=1)
    return timedelta(days=1)


def floor_time(at: datetime, step: timedelta) -> datetime:
    """Return `at` rounded down to its bucket of `step` (days in the server's time zone)."""
    if step >= timedelta(days=1):
        local = timezone.localtime(at)
        return local.replace(hour=0, minute=0, second=0, microsecond=0)
    seconds = int(step.total_seconds())
    return datetime.fromtimestamp(int(at.timestamp()) // seconds * seconds, tz=at.tzinfo)


def buckets(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """Return the bucket starts covering [start, end]."""
    at, out = floor_time(start, step), []
    while at <= end:
        out.append(at)
        at = floor_time(at + step + timedelta(hours=2 if step >= timedelta(days=1) else 0), step)
    return out


def tick_labels(ticks: Sequence[float], unit: str) -> list[str]:
    """Return the y tick labels with their unit and as few decimals as keep each tick exact (0.25 ms, 50 %)."""
    scale, suffix = (100, " %") if unit == "%" else (1, " ms") if unit == "ms" else (1, "")
    step = (ticks[1] - ticks[0]) * scale if len(ticks) > 1 else 1
    for digits in range(7):
        labels = [f"{v * scale:,.{digits}f}" for v in ticks]
        if all(
            abs(float(label.replace(",", "")) - v * scale) < step * 0.01 for label, v in zip(labels, ticks, strict=True)
        ):
            break
    return [("0" if v == 0 else label) + suffix for label, v in zip(labels, ticks, strict=True)]


def _nice_top(top: float, unit: str) -> float:
    """Return the axis top: four equal steps of a round size (integers for counts) at or above `top`."""
    if unit == "%":
        return 1.0
    if top <= 0:
        return 1.0 if unit == "ms" else 4.0
    raw = top / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * magnitude >= raw * 0.999)
    if unit != "ms":
        step = max(1, math.ceil(step))
    return float(step * 4)


def _time_label(at: datetime, span: timedelta) -> str:
    local = timezone.localtime(at)
    if span <= timedelta(hours=2):
        return local.strftime("%H:%M")
    if span <= timedelta(days=1, hours=1):
        return local.strftime("%H:00")
    return local.strftime("%a %d") if span <= timedelta(days=7, hours=1) else local.strftime("%b %d")


def _tick_step(span: timedelta) -> timedelta:
    if span <= timedelta(hours=2):
        return timedelta(minutes=10)
    if span <= timedelta(days=1, hours=1):
        return timedelta(hours=3)
    if span <= timedelta(days=7, hours=1):
        return timedelta(days=1)
    return timedelta(days=5)


def line_chart(
    title: str,
    times: Sequence[datetime],
    series: Sequence[Series],
    *,
    unit: str = "",
    start: datetime,
    end: datetime,
    observed: int | None = None,
) -> str:
    """Return an SVG document of `series` (None = gap) over `times`, drawn across the window [start, end].

    `unit` is '%' (values are fractions 0..1), 'ms', or '' for counts. `observed` is how many buckets hold real
    data (defaults to the buckets with any value); under two shows the empty state.
    """
    span = end - start
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    known = [v for s in series for v in s.values if v is not None]
    top = _nice_top(max(known) if known else 0.0, unit)
    if observed is None:
        observed = sum(1 for i in range(len(times)) if any(s.values[i] is not None for s in series))

    def x_of(at: datetime) -> float:
        return LEFT + max(0.0, min(1.0, (at - start) / span if span else 0.0)) * plot_w

    def y_of(value: float) -> float:
        return TOP + plot_h - (value / top) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(title)}">',
        '<rect width="100%" height="100%" fill="#fff"/>',
        f'<text x="8" y="16" font-family="sans-serif" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    ticks = [top * i / 4 for i in range(5)]
    for i, (value, label) in enumerate(zip(ticks, tick_labels(ticks, unit), strict=True)):
        y = y_of(value)
        stroke = "#888" if i == 0 else "#eee"
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="{stroke}"/>')
        parts.append(
            f'<text class="y-tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT} fill="#444">'
            f"{escape(label)}</text>"
        )
    step = _tick_step(span)
    tick = floor_time(start, step)
    if tick < start:
        tick = floor_time(tick + step + (timedelta(hours=2) if step >= timedelta(days=1) else timedelta()), step)
    last_x = -100.0
    while tick <= end:
        x = x_of(tick)
        if x - last_x >= 44 and x <= WIDTH - RIGHT - 16:
            parts.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}" stroke="#f3f3f3"/>')
            parts.append(
                f'<text class="x-tick" x="{x:.1f}" y="{TOP + plot_h + 14}" text-anchor="middle" {FONT} fill="#444">'
                f"{escape(_time_label(tick, span))}</text>"
            )
            last_x = x
        tick = floor_time(tick + step + (timedelta(hours=2) if step >= timedelta(days=1) else timedelta()), step)
    zone = timezone.localtime(end).strftime("%Z") or "local time"
    parts.append(
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 4}" text-anchor="end" {FONT} fill="#777">'
        f"{escape(_time_label(start, span))} to now ({escape(zone)})</text>"
    )
    legend_x = 8
    for n, s in enumerate(series):
        colour = COLOURS[n % len(COLOURS)]
        if len(series) > 1:
            parts.append(f'<rect x="{legend_x}" y="25" width="10" height="10" fill="{colour}"/>')
            parts.append(f'<text x="{legend_x + 14}" y="34" {FONT}>{escape(s.name)}</text>')
            legend_x += 22 + 7 * len(s.name)
        segments: list[list[tuple[float, float]]] = [[]]
        for at, point in zip(times, s.values, strict=True):
            if point is None:
                segments.append([])
                continue
            segments[-1].append((x_of(at), y_of(point)))
        for seg in segments:
            if len(seg) > 1:
                points = " ".join(f"{x:.1f},{y:.1f}" for x, y in seg)
                parts.append(
                    f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
                )
            elif seg:
                parts.append(f'<circle cx="{seg[0][0]:.1f}" cy="{seg[0][1]:.1f}" r="3" fill="{colour}"/>')
    if observed < 2:
        parts.append(
            f'<rect x="{LEFT + 20}" y="{TOP + plot_h / 2 - 16}" width="{plot_w - 40}" height="26" fill="#fff" '
            'fill-opacity="0.85"/>'
        )
        parts.append(
            f'<text class="empty" x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2 + 2}" text-anchor="middle" '
            f'font-family="sans-serif" font-size="12" fill="#666">{escape(EMPTY)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
