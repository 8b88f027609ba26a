"""What every browser journey checks on the pages it visits: axe-core's serious and critical
violations (axe vendored under vendor/, tests only) and sideways scrolling at phone width."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def settle(page: Page) -> None:
    """Let fragments loaded after the page (htmx, hx-trigger="load") arrive. A page that polls
    (progress every 2 s) may never be idle on a loaded machine: after 5 s it is checked as it is."""
    try:
        page.wait_for_load_state("networkidle", timeout=5_000)
    except PlaywrightTimeout:
        pass


def axe_serious(page: Page) -> list[dict]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE.read_text())
    return page.evaluate(
        "async () => { const r = await axe.run(document, {resultTypes: ['violations']});"
        " return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})); }"
    )


def overflow(page: Page) -> int:
    """How far the page itself scrolls sideways (0: it fits)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def too_wide(page: Page) -> list[str]:
    """The innermost elements that reach past the window's right edge (to say what to fix)."""
    return page.evaluate(
        "() => { const w = window.innerWidth; const out = [];"
        " for (const el of document.querySelectorAll('body *')) {"
        "   const r = el.getBoundingClientRect();"
        "   if (r.right > w + 1 && ![...el.children].some(c => c.getBoundingClientRect().right > w + 1))"
        "     out.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '') + ' ' + Math.round(r.right - w) + 'px');"
        " } return out.slice(0, 5); }"
    )


def page_problems(page: Page, *, restore: dict | None = None) -> list[str]:
    """axe at the current size, then the overflow at 390 px (the size is restored after)."""
    url = page.url
    problems = [f"{url}: axe {v['impact']} {v['id']} at {v['nodes']}" for v in axe_serious(page)]
    before = restore or page.viewport_size
    page.set_viewport_size(PHONE)
    wider = overflow(page)
    if wider > 0:
        problems.append(f"{url}: at 390 px the page scrolls sideways by {wider} px: {too_wide(page)}")
    if before:
        page.set_viewport_size(before)
    return problems


def scroll_overflow(page: Page) -> int:
    """How far the document scrolls sideways at the current size (0: it fits)."""
    return page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")


def problems_here(page: Page) -> list[str]:
    """axe's serious and critical violations and sideways overflow, both at the current size."""
    url = page.url
    problems = [f"{url}: axe {v['impact']} {v['id']} at {v['nodes']}" for v in axe_serious(page)]
    wider = scroll_overflow(page)
    if wider > 0:
        width = page.viewport_size["width"] if page.viewport_size else "?"
        problems.append(f"{url}: at {width} px the page scrolls sideways by {wider} px: {too_wide(page)}")
    return problems
