"""Server-side SVG charts: no JavaScript, no build step, readable without the network."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

COLORS = {"opens": "#2f5bea", "clicks": "#b4530a", "machine": "#98a2b3"}


def line_chart(
    points: Sequence[dict[str, Any]],
    series: Sequence[str],
    *,
    width: int = 640,
    height: int = 220,
    title: str = "",
) -> SafeString:
    """Lines of points[i][name] for each series name, x labelled by points[i]["label"]."""
    if not points:
        return mark_safe('<p class="muted">No opens or clicks yet.</p>')  # noqa: S308 - constant
    left, bottom, top, right = 40, 28, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(1, *(int(p.get(name, 0)) for p in points for name in series))
    step = plot_w / max(1, len(points) - 1)

    def xy(index: int, value: int) -> tuple[float, float]:
        return left + index * step, top + plot_h - (value / peak) * plot_h

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#cfd4dc"/>',
        f'<text x="{left - 6}" y="{top + 4}" font-size="11" text-anchor="end" fill="#667085">{peak}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" font-size="11" text-anchor="end" fill="#667085">0</text>',
    ]
    every = max(1, len(points) // 8)
    for index, point in enumerate(points):
        if index % every == 0:
            x, _ = xy(index, 0)
            parts.append(
                f'<text x="{x:.1f}" y="{height - 8}" font-size="11" text-anchor="middle" fill="#667085">'
                f"{escape(point['label'])}</text>"
            )
    for name in series:
        coords = [xy(i, int(p.get(name, 0))) for i, p in enumerate(points)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        color = COLORS.get(name, "#1d2330")
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        for (x, y), point in zip(coords, points, strict=True):
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}">'
                f"<title>{escape(point['label'])}: {int(point.get(name, 0))} {escape(name)}</title></circle>"
            )
    legend_x = left + 8
    for name in series:
        color = COLORS.get(name, "#1d2330")
        parts.append(f'<rect x="{legend_x}" y="{top}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="{top + 9}" font-size="11">{escape(name)}</text>')
        legend_x += 80
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every value above is escaped or numeric


def bar_chart(
    rows: Sequence[dict[str, Any]], *, label: str, bars: Sequence[str], width: int = 640, title: str = ""
) -> SafeString:
    """Horizontal grouped bars: one row per item, one bar per name in `bars`."""
    if not rows:
        return mark_safe('<p class="muted">Nothing sent yet.</p>')  # noqa: S308 - constant
    row_h, label_w, right = 14 * len(bars) + 10, 160, 60
    height = row_h * len(rows) + 24
    peak = max(1, *(int(r.get(name, 0)) for r in rows for name in bars))
    plot_w = width - label_w - right
    palette = ["#1d2330", "#2f5bea", "#b4530a", "#c0362c"]
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for index, row in enumerate(rows):
        y = index * row_h + 4
        parts.append(
            f'<text x="{label_w - 8}" y="{y + row_h / 2:.0f}" font-size="12" text-anchor="end">'
            f"{escape(str(row[label])[:28])}</text>"
        )
        for bar_index, name in enumerate(bars):
            value = int(row.get(name, 0))
            w = value / peak * plot_w
            by = y + bar_index * 14
            color = palette[bar_index % len(palette)]
            parts.append(f'<rect x="{label_w}" y="{by}" width="{w:.1f}" height="12" fill="{color}">')
            parts.append(f"<title>{escape(str(row[label]))}: {value} {escape(name)}</title></rect>")
            parts.append(f'<text x="{label_w + w + 4:.1f}" y="{by + 10}" font-size="10">{value}</text>')
    legend_x = label_w
    for bar_index, name in enumerate(bars):
        color = palette[bar_index % len(palette)]
        parts.append(f'<rect x="{legend_x}" y="{height - 14}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="{height - 5}" font-size="11">{escape(name)}</text>')
        legend_x += 90
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every value above is escaped or numeric
