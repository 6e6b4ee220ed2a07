"""Server-rendered SVG sparklines: a series of numbers as a small polyline, no script needed."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe


def svg(values: Sequence[float | None], *, width: int = 180, height: int = 36, label: str = "",
        floor: float = 0.0) -> SafeString:
    """An <svg> with one polyline through the values (None: a gap), scaled to the largest value
    (at least `floor`, so an idle series stays flat at the bottom). Only numbers go into the
    markup; `label` (the accessible name) is escaped."""
    points = [v for v in values if v is not None]
    top = max([floor, *points]) or 1.0
    n = len(values)
    step = width / max(n - 1, 1)
    segments, current = [], []
    for i, v in enumerate(values):
        if v is None:
            if current:
                segments.append(current)
            current = []
            continue
        y = height - 2 - (v / top) * (height - 4)
        current.append(f"{i * step:.1f},{y:.1f}")
    if current:
        segments.append(current)
    lines = "".join(
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{" ".join(seg)}"/>'
        if len(seg) > 1 else f'<circle r="1.5" fill="currentColor" cx="{seg[0].split(",")[0]}" cy="{seg[0].split(",")[1]}"/>'
        for seg in segments)
    return mark_safe(
        f'<svg class="sparkline" role="img" aria-label="{escape(label)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f'<line x1="0" y1="{height - 1}" x2="{width}" y2="{height - 1}" stroke="currentColor" stroke-opacity="0.2"/>'
        f"{lines}</svg>")
