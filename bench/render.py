"""Render N personalised messages through the compiled fast path and through full Liquid.

    python bench/render.py --messages 100000

A 10 KB HTML template with 5 merge fields; each recipient's context differs. Prints the
figures, then as its last line one JSON object: messages, fast_per_s, full_per_s, ratio.
Pure computation: no database or Redis is used.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from templates.compiler import compile_template  # noqa: E402
from templates.context import recipient_context  # noqa: E402

PARAGRAPH = (
    '<tr><td class="story"><h2>Section {n}</h2><p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, '
    "sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis "
    "nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.</p></td></tr>\n"
)


def build_html(size: int = 10 * 1024) -> str:
    head = (
        "<!doctype html><html><head><style>.story { padding: 0 32px 24px; font-family: Helvetica, Arial, "
        "sans-serif; color: #374151 } h2 { font-size: 18px } p { margin: 0 0 16px }</style></head><body>"
        '<table role="presentation" width="600"><tr><td><h1>Hello {{ contact.first_name | default: "there" }} '
        "{{ contact.last_name }}</h1><p>We send this to {{ contact.email }} in {{ contact.city }}.</p></td></tr>\n"
    )
    tail = '<tr><td><a href="{{ unsubscribe_url }}">Unsubscribe</a></td></tr></table></body></html>'
    body, n = [], 0
    while len(head) + sum(map(len, body)) + len(tail) < size:
        n += 1
        body.append(PARAGRAPH.format(n=n))
    return head + "".join(body) + tail


def recipients(count: int) -> list[tuple[dict, dict]]:
    """(contact, urls) as the delivery engine holds them, before the template context is built."""
    return [
        (
            {
                "email": f"user{i}@example.com",
                "first_name": "" if i % 7 == 0 else f"Name{i}",
                "last_name": f"O'Last<{i}>",
                "fields": {"city": "Zürich & Co"},
            },
            {"unsubscribe_url": f"https://example.com/u/{i:08x}?t=abc&s=1"},
        )
        for i in range(count)
    ]


def contexts(count: int) -> list[dict]:
    return [recipient_context(contact=c, urls=u) for c, u in recipients(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000, help="messages per path (default 100,000)")
    parser.add_argument(
        "--full-messages",
        type=int,
        default=None,
        help="messages for the Liquid path (default: same, max 20,000)",
    )
    args = parser.parse_args(argv)
    if args.messages < 1:
        parser.error("--messages must be at least 1")
    full_count = args.full_messages or min(args.messages, 20_000)

    html = build_html()
    compiled = compile_template(subject='Hi {{ contact.first_name | default: "there" }}', html=html)
    assert not compiled.uses_logic, "the benchmark template must take the fast path"
    distinct = contexts(min(args.messages, 1000))
    print(
        f"template: {len(html.encode())} bytes HTML, {len(compiled.slots)} slots, fields {sorted(compiled.fields)}"
    )

    # Both paths must produce the same mail, or the comparison means nothing.
    for ctx in distinct[:20]:
        assert compiled.render(ctx) == compiled.render_liquid(ctx)

    render = compiled.render
    start = time.perf_counter()
    size = 0
    for i in range(args.messages):
        size += len(render(distinct[i % len(distinct)]).html)
    fast_seconds = time.perf_counter() - start

    # The same, building each recipient's context too (what the delivery engine does per message).
    raw = recipients(min(args.messages, 1000))
    start = time.perf_counter()
    for i in range(args.messages):
        contact, urls = raw[i % len(raw)]
        render(recipient_context(contact=contact, urls=urls))
    with_context_seconds = time.perf_counter() - start

    render_liquid = compiled.render_liquid
    start = time.perf_counter()
    for i in range(full_count):
        render_liquid(distinct[i % len(distinct)])
    full_seconds = time.perf_counter() - start

    fast_per_s = args.messages / fast_seconds
    full_per_s = full_count / full_seconds
    print(f"fast path:   {args.messages:>9,} messages in {fast_seconds:7.3f} s = {fast_per_s:>10,.0f}/s")
    with_context_per_s = args.messages / with_context_seconds
    print(
        f"fast + context: {args.messages:>6,} messages in {with_context_seconds:7.3f} s = {with_context_per_s:>10,.0f}/s"
    )
    print(f"full Liquid: {full_count:>9,} messages in {full_seconds:7.3f} s = {full_per_s:>10,.0f}/s")
    print(
        f"ratio fast/full: {fast_per_s / full_per_s:.1f}x; mean fast HTML size {size // args.messages} chars"
    )
    print(
        json.dumps(
            {
                "messages": args.messages,
                "full_messages": full_count,
                "fast_per_s": round(fast_per_s, 1),
                "full_per_s": round(full_per_s, 1),
                "fast_with_context_per_s": round(with_context_per_s, 1),
                "ratio": round(fast_per_s / full_per_s, 2),
                "fast_render_ms": round(fast_seconds / args.messages * 1000, 5),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
