"""Small static SVG charts, written by hand: no library, no script, no network.

Each function returns one ``<svg>`` element as text. Every label that comes
from data is escaped; every mark carries a ``<title>`` so hovering shows the
exact value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

__all__ = ["Series", "bar_chart", "grouped_bars", "hbar_chart", "line_chart"]

WIDTH, HEIGHT = 540, 250
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 14, 46
MAX_X_LABELS = 8
AXIS = "#94a3b8"
GRID = "#e2e8f0"
INK = "#334155"

Series = tuple[str, Sequence[float | None], str]  # name, values, colour


def _nice(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above value."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power * (1 + 1e-9):
            return step * power
    return 10 * power


def ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Evenly spaced round tick values from at or below low to at or above high."""
    step = _nice((high - low) / count) if high > low else _nice(abs(high) or 1)
    values = [math.floor(low / step + 1e-9) * step]
    while values[-1] < high - step * 1e-9 or len(values) < 2:
        values.append(values[-1] + step)
    return [round(v, 10) for v in values]


def number(value: float) -> str:
    """A short label for an axis or a tooltip."""
    if value == 0:
        return "0"
    if abs(value) >= 10_000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _open(label: str, width: int = WIDTH, height: int = HEIGHT) -> list[str]:
    return [
        f'<svg class="chart" role="img" aria-label="{escape(label)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
    ]


def _y_axis(
    lines: list[str],
    values: list[float],
    scale: Callable[[float], float],
    fmt: Callable[[float], str],
    width: int = WIDTH,
) -> None:
    for value in values:
        y = scale(value)
        lines.append(
            f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{GRID}"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'class="tick">{escape(fmt(value))}</text>'
        )


def _x_labels(lines: list[str], labels: Sequence[str], centre: Callable) -> None:
    # About 6.5 px per character at 11 px: keep labels from overlapping.
    longest = max((len(t) for t in labels), default=1)
    room = max(1, int((WIDTH - LEFT - RIGHT) // (6.5 * longest + 14)))
    every = max(1, math.ceil(len(labels) / min(room, MAX_X_LABELS)))
    base = HEIGHT - BOTTOM
    lines.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{base}" y2="{base}" '
        f'stroke="{AXIS}"/>'
    )
    for i in range(0, len(labels), every):
        x = centre(i)
        lines.append(
            f'<text x="{x:.1f}" y="{base + 16}" text-anchor="middle" '
            f'class="tick">{escape(labels[i])}</text>'
        )


def _legend(lines: list[str], series: Sequence[tuple[str, str]]) -> None:
    x = LEFT
    for name, colour in series:
        lines.append(
            f'<rect x="{x}" y="{HEIGHT - 16}" width="10" height="10" '
            f'fill="{colour}"/><text x="{x + 14}" y="{HEIGHT - 7}" '
            f'class="legend">{escape(name)}</text>'
        )
        x += 24 + 7 * len(name)


def _band(count: int) -> tuple[float, Callable[[int], float]]:
    band = (WIDTH - LEFT - RIGHT) / max(count, 1)
    return band, lambda i: LEFT + band * (i + 0.5)


def bar_chart(
    label: str,
    labels: Sequence[str],
    stacks: Sequence[Series],
    *,
    notes: Sequence[str] = (),
) -> str:
    """Stacked vertical bars, one per label; ``notes`` become tooltips."""
    totals = [
        sum(v or 0 for v in values)
        for values in zip(*(s[1] for s in stacks), strict=True)
    ]
    axis = ticks(0, max(totals, default=0) or 1)
    top = axis[-1]

    def scale(v: float) -> float:
        return HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * v / top

    band, centre = _band(len(labels))
    width = max(1.0, min(band * 0.7, 48))
    lines = _open(label)
    _y_axis(lines, axis, scale, number)
    for i, text in enumerate(labels):
        base = 0.0
        tip = escape(f"{text}: " + (notes[i] if i < len(notes) else ""))
        for name, values, colour in stacks:
            value = values[i] or 0
            y0, y1 = scale(base), scale(base + value)
            lines.append(
                f'<rect x="{centre(i) - width / 2:.1f}" y="{y1:.1f}" '
                f'width="{width:.1f}" height="{max(y0 - y1, 0):.1f}" '
                f'fill="{colour}"><title>{tip} {escape(name)} '
                f"{number(value)}</title></rect>"
            )
            base += value
    _x_labels(lines, labels, centre)
    _legend(lines, [(s[0], s[2]) for s in stacks])

    return "\n".join([*lines, "</svg>"])


def line_chart(
    label: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    low: float | None = None,
    high: float | None = None,
    fmt: Callable[[float], str] = number,
    dashed: Sequence[str] = (),
) -> str:
    """Lines with a dot per value; a missing value breaks the line.

    Series named in ``dashed`` are drawn dashed, so that a line lying on
    another stays visible.
    """
    present = [v for _, values, _ in series for v in values if v is not None]
    low = min(present, default=0.0) if low is None else low
    high = max(present, default=1.0) if high is None else high
    axis = ticks(low, high if high > low else low + 1)
    bottom, top = axis[0], axis[-1]

    def scale(v: float) -> float:
        return HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * (v - bottom) / (top - bottom)

    _, centre = _band(len(labels))
    lines = _open(label)
    _y_axis(lines, axis, scale, fmt)
    for name, values, colour in series:
        points = [
            (centre(i), scale(v), labels[i], v)
            for i, v in enumerate(values)
            if v is not None
        ]
        dash = ' stroke-dasharray="6 4"' if name in dashed else ""
        for run in _runs(values, points):
            lines.append(
                f'<polyline fill="none" stroke-width="2"{dash} '
                f'stroke="{colour}" points="'
                + " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in run)
                + '"/>'
            )
        for x, y, text, v in points:
            lines.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}">'
                f"<title>{escape(f'{text}: {name} {fmt(v)}')}</title></circle>"
            )
    _x_labels(lines, labels, centre)
    _legend(lines, [(s[0], s[2]) for s in series])

    return "\n".join([*lines, "</svg>"])


def _runs(values: Sequence[float | None], points: list) -> list[list]:
    """Split the points where a value is missing."""
    runs: list[list] = [[]]
    at = 0
    for value in values:
        if value is None:
            runs.append([])
            continue
        runs[-1].append(points[at])
        at += 1
    return [run for run in runs if len(run) > 1]


def hbar_chart(
    label: str,
    names: Sequence[str],
    values: Sequence[float],
    colours: Sequence[str],
    *,
    marks: Sequence[float] = (),
) -> str:
    """Horizontal bars, one per name, with dashed reference lines at ``marks``."""
    left, row = 170, 18
    height = TOP + row * len(names) + 30
    axis = ticks(0, max([*values, *marks], default=0) or 1)
    top = axis[-1]

    def scale(v: float) -> float:
        return left + (WIDTH - left - RIGHT) * v / top

    lines = _open(label, height=height)
    base = TOP + row * len(names)
    for value in axis:
        x = scale(value)
        lines.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{base}" '
            f'stroke="{GRID}"/><text x="{x:.1f}" y="{base + 14}" '
            f'text-anchor="middle" class="tick">{number(value)}</text>'
        )
    for i, (name, value, colour) in enumerate(zip(names, values, colours, strict=True)):
        y = TOP + row * i
        short = name if len(name) <= 24 else name[:23] + "\u2026"
        lines.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" '
            f'class="tick">{escape(short)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{max(scale(value) - left, 1):.1f}"'
            f' height="{row - 6}" fill="{colour}"><title>'
            f"{escape(name)}: {value:.4f}</title></rect>"
        )
    for mark in marks:
        x = scale(mark)
        lines.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{base}" '
            f'stroke="{INK}" stroke-dasharray="4 3"/>'
        )

    return "\n".join([*lines, "</svg>"])


def grouped_bars(
    label: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    axis_labels: Sequence[str] | None = None,
) -> str:
    """Bars side by side per label (a histogram pair), shares as percent.

    ``axis_labels`` (default: ``labels``, shortened) are written under the
    bars; ``labels`` go into the tooltips.
    """
    top_value = max((v or 0 for _, values, _ in series for v in values), default=0)
    axis = ticks(0, top_value or 1)
    top = axis[-1]

    def scale(v: float) -> float:
        return HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * v / top

    band, centre = _band(len(labels))
    width = min(band * 0.8 / len(series), 28)
    lines = _open(label)
    _y_axis(lines, axis, scale, lambda v: f"{v * 100:.3g}%")
    for j, (name, values, colour) in enumerate(series):
        offset = (j - (len(series) - 1) / 2) * width
        for i, value in enumerate(values):
            value = value or 0
            x = centre(i) + offset - width / 2
            lines.append(
                f'<rect x="{x:.1f}" y="{scale(value):.1f}" width="{width:.1f}" '
                f'height="{scale(0) - scale(value):.1f}" fill="{colour}">'
                f"<title>{escape(f'{labels[i]}: {name} {value * 100:.1f}%')}"
                "</title></rect>"
            )
    _x_labels(lines, axis_labels or [_short(t) for t in labels], centre)
    _legend(lines, [(s[0], s[2]) for s in series])

    return "\n".join([*lines, "</svg>"])


def _short(text: str, size: int = 12) -> str:
    return text if len(text) <= size else text[: size - 1] + "\u2026"
