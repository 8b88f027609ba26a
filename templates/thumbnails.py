"""Gallery thumbnails drawn as SVG from a template's blocks: no browser, no stored images.

Each block type has a small wireframe drawing; the text is never drawn (a thumbnail shows
the layout), so the markup holds nothing but shapes and can go into the page as it is.
"""

from __future__ import annotations

from collections.abc import Iterable

WIDTH, HEIGHT, PAD = 120, 160, 10
INK, LINE, IMAGE, ACCENT = "#1f2937", "#c7cdd6", "#dbe3ee", "#2563eb"


def _lines(x: float, y: float, width: float, count: int) -> list[str]:
    shapes = []
    for n in range(count):
        w = width * (0.95, 0.85, 0.6)[n % 3]
        shapes.append(
            f'<rect x="{x:.1f}" y="{y + n * 5:.1f}" width="{w:.1f}" height="2.5" rx="1" fill="{LINE}"/>'
        )
    return shapes


def _block(kind: str, y: float, columns: int = 2) -> tuple[list[str], float]:
    inner = WIDTH - 2 * PAD
    if kind == "heading":
        return [f'<rect x="{PAD}" y="{y}" width="{inner * 0.7:.1f}" height="6" rx="1.5" fill="{INK}"/>'], 11
    if kind == "text":
        return _lines(PAD, y, inner, 3), 16
    if kind == "image":
        return [f'<rect x="{PAD}" y="{y}" width="{inner}" height="28" rx="2" fill="{IMAGE}"/>'], 33
    if kind == "button":
        return [f'<rect x="{PAD}" y="{y}" width="34" height="8" rx="3" fill="{ACCENT}"/>'], 13
    if kind == "divider":
        return [f'<rect x="{PAD}" y="{y + 2}" width="{inner}" height="0.8" fill="{LINE}"/>'], 6
    if kind == "spacer":
        return [], 6
    if kind == "social":
        return [
            f'<circle cx="{WIDTH / 2 + (n - 1) * 9:.1f}" cy="{y + 4}" r="3" fill="{INK}"/>' for n in range(3)
        ], 11
    if kind == "columns":
        gap = 4
        width = (inner - gap * (columns - 1)) / columns
        shapes = []
        for n in range(columns):
            x = PAD + n * (width + gap)
            shapes.append(
                f'<rect x="{x:.1f}" y="{y}" width="{width * 0.8:.1f}" height="4" rx="1" fill="{INK}"/>'
            )
            shapes += _lines(x, y + 7, width, 3)
        return shapes, 24
    if kind == "footer":
        return [
            f'<rect x="{WIDTH / 2 - 25}" y="{y + 2}" width="50" height="2" fill="{LINE}"/>',
            f'<rect x="{WIDTH / 2 - 18}" y="{y + 6}" width="36" height="2" fill="{LINE}"/>',
        ], 12
    return _lines(PAD, y, inner, 2), 11


def thumbnail_svg(outline: Iterable[tuple[str, int]], *, label: str = "") -> str:
    """An SVG drawing of blocks [(type, columns), ...] from top to bottom, clipped to the page."""
    shapes, y = [], PAD
    for kind, columns in outline:
        drawn, height = _block(kind, y, columns)
        if y + height > HEIGHT - 4:
            break
        shapes += drawn
        y += height
    # Decorative: the starter's name and description sit beside it.
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}" aria-hidden="true" class="starter-thumbnail" data-label="{label}">'
        f'<rect width="{WIDTH}" height="{HEIGHT}" rx="4" fill="#ffffff" stroke="#e5e7eb"/>'
        + "".join(shapes)
        + "</svg>"
    )


def document_outline(document: dict) -> list[tuple[str, int]]:
    return [(b.get("type", "text"), len(b.get("columns") or ()) or 2) for b in document.get("blocks", [])]
