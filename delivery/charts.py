"""Server-side SVG for delivery's pages (the reports' approach: campaigns.charts): no JavaScript,
nothing inline that the CSP blocks, readable without the network."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

COLORS = {
    "delivered": "#2f7d32",
    "deferred": "#b4530a",
    "bounced": "#c0362c",
    "complained": "#7a1fa2",
    "unsubscribed": "#2f5bea",
}
THRESHOLD_COLOR = "#667085"


def rate_chart(
    points: Sequence[dict[str, Any]],
    series: Sequence[str],
    *,
    thresholds: Sequence[tuple[float, str]] = (),
    title: str = "",
    width: int = 640,
    height: int = 220,
    floor_peak: float = 0.5,
    ceiling: float | None = None,
) -> SafeString:
    """Lines of points[i]["rates"][name] (percent; None: nothing attempted, a gap) with a dashed
    horizontal line at each threshold; x labelled by points[i]["label"]. With `ceiling` the scale
    stops there (so that thresholds near 0 stay readable): higher values are drawn on the top edge,
    their figure in the point's tooltip."""
    if not any(p["attempted"] for p in points):
        return mark_safe(f'<p class="muted">Nothing attempted in this period ({escape(title)}).</p>')  # noqa: S308
    left, bottom, top, right = 48, 28, 30, 16
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [p["rates"][name] for p in points for name in series if p["rates"][name] is not None]
    peak = max([floor_peak, *values, *(limit * 1.25 for limit, _ in thresholds)])
    clipped = ceiling is not None and peak > ceiling
    if clipped:
        peak = ceiling
    step = plot_w / max(1, len(points) - 1)

    def y(value: float) -> float:
        return top + plot_h - min(value, peak) / peak * plot_h

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#cfd4dc"/>',
        f'<text x="{left - 6}" y="{top + 4}" font-size="11" text-anchor="end" fill="#475467">'
        f"{'≥' if clipped else ''}{_percent(peak)}</text>",
        f'<text x="{left - 6}" y="{top + plot_h}" font-size="11" text-anchor="end" fill="#475467">0%</text>',
    ]
    for number, (limit, label) in enumerate(thresholds):
        ty = y(limit)
        # Labels of lines close together go to opposite ends.
        anchor, lx = ("end", width - right - 4) if number % 2 == 0 else ("start", left + 4)
        parts.append(
            f'<line class="threshold" data-threshold="{limit:g}" x1="{left}" y1="{ty:.1f}" x2="{width - right}" '
            f'y2="{ty:.1f}" stroke="{THRESHOLD_COLOR}" stroke-dasharray="5 4"><title>{escape(label)}</title></line>'
        )
        parts.append(
            f'<text x="{lx}" y="{ty - 3:.1f}" font-size="10" text-anchor="{anchor}" '
            f'fill="#475467">{escape(label)}</text>'
        )
    every = max(1, len(points) // 8)
    for index, point in enumerate(points):
        if index % every == 0:
            parts.append(
                f'<text x="{left + index * step:.1f}" y="{height - 8}" font-size="11" text-anchor="middle" '
                f'fill="#475467">{escape(point["label"])}</text>'
            )
    for name in series:
        color = COLORS.get(name, "#1d2330")
        run: list[str] = []
        runs = [run]
        for index, point in enumerate(points):
            value = point["rates"][name]
            if value is None:
                run = []
                runs.append(run)
                continue
            x = left + index * step
            run.append(f"{x:.1f},{y(value):.1f}")
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y(value):.1f}" r="2.5" fill="{color}">'
                f"<title>{escape(point['label'])}: {value:g}% {escape(name)} of {point['attempted']}</title></circle>"
            )
        for segment in runs:
            if len(segment) > 1:
                parts.append(
                    f'<polyline data-series="{escape(name)}" fill="none" stroke="{color}" stroke-width="2" '
                    f'points="{" ".join(segment)}"/>'
                )
    legend_x = left + 8
    for name in series:
        color = COLORS.get(name, "#1d2330")
        parts.append(f'<rect x="{legend_x}" y="4" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="13" font-size="11">{escape(name)}</text>')
        legend_x += 100
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every value above is escaped or numeric


def _percent(value: float) -> str:
    return f"{value:.0f}%" if value >= 10 else f"{value:.2g}%"
