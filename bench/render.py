"""Render N personalised messages through the compiled fast path and through full Liquid.

    python bench/render.py --messages 100000

A 10 KB HTML template with 5 merge fields; each recipient's context differs. Then a 10-block
document (templates.blocks): how long its MJML takes to compile (`mjml_compile_ms`, and the
whole block compile `blocks_compile_ms`), and the message builder's fast path (delivery.compose,
message bytes only, no SMTP) for it with one 100 KB attachment against the same without
(`attachment_ratio`). Prints the figures, then as its last line one JSON object.
Pure computation: no database or Redis is used (the attachment sits in a temporary directory).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from django.conf import settings  # noqa: E402

_MEDIA_DIR = tempfile.TemporaryDirectory(prefix="posthorn-bench-media-")
settings.configure(
    SECRET_KEY="bench-" + "x" * 40,
    SITE_URL="https://mail.example.com",
    BOUNCE_DOMAIN="bounce.example.com",
    STORAGES={
        "media": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": _MEDIA_DIR.name},
        }
    },
    TEMPLATE_ATTACHMENTS_MAX_BYTES=10 * 1024 * 1024,
    TEMPLATE_ATTACHMENTS_MAX_FILES=10,
)

from delivery.compose import MessageBuilder, Recipient  # noqa: E402
from media.storage import store_bytes  # noqa: E402
from templates.blocks import blocks_to_mjml, parse_document  # noqa: E402
from templates.compiler import compile_template  # noqa: E402
from templates.context import recipient_context  # noqa: E402
from templates.formats import mjml_to_html  # noqa: E402

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


def ten_blocks() -> dict:
    """A newsletter of ten blocks: what a marketer builds in the block editor."""
    story = "Lorem ipsum dolor sit amet, **consectetur** adipiscing elit, sed do eiusmod tempor incididunt."
    return {
        "blocks": [
            {"type": "heading", "text": 'Hello {{ contact.first_name | default: "there" }}'},
            {"type": "text", "text": f"{story} We write to {{{{ contact.email }}}}.\n\n{story}"},
            {"type": "image", "src": "https://mail.example.com/media/f/images/abc/600.png", "alt": "Hero"},
            {"type": "button", "label": "Read more", "href": "https://shop.example.com/spring"},
            {
                "type": "columns",
                "columns": [{"heading": "One", "text": story}, {"heading": "Two", "text": story}],
            },
            {"type": "divider"},
            {"type": "columns", "columns": [{"heading": f"Item {n}", "text": story} for n in range(3)]},
            {"type": "spacer", "height": 16},
            {"type": "social", "instagram": "https://instagram.com/x", "facebook": "https://facebook.com/x"},
            {"type": "footer", "address": "Posthorn Ltd\n1 Harbour Road, Leith"},
        ]
    }


def _builds_per_s(builders: dict, recipients_: list, count: int, rounds: int = 6) -> dict[str, float]:
    """Messages per second per builder, alternating rounds so machine load hits each alike."""
    seconds = dict.fromkeys(builders, 0.0)
    per_round = max(1, count // rounds)
    for _ in range(rounds):
        for name, builder in builders.items():
            build = builder.build
            start = time.perf_counter()
            for i in range(per_round):
                build(recipients_[i % len(recipients_)])
            seconds[name] += time.perf_counter() - start
    return {name: per_round * rounds / spent for name, spent in seconds.items()}


def blocks_figures(messages: int) -> dict:
    document = ten_blocks()
    mjml = blocks_to_mjml(parse_document(document))
    runs = 30
    start = time.perf_counter()
    for _ in range(runs):
        mjml_to_html(mjml)
    mjml_ms = (time.perf_counter() - start) / runs * 1000
    start = time.perf_counter()
    for _ in range(5):
        compiled = compile_template(
            subject="News for {{ contact.first_name }}", html=json.dumps(document), source_format="blocks"
        )
    blocks_ms = (time.perf_counter() - start) / 5 * 1000
    assert not compiled.uses_logic, "the block document must take the fast path"

    name, digest = store_bytes("attachments", os.urandom(100 * 1024), "price-list.pdf")
    attachment = {"filename": "price-list.pdf", "content_type": "application/pdf", "size": 100 * 1024,
                  "sha256": digest, "storage_name": name}  # fmt: skip
    with_file = compile_template(
        subject="News for {{ contact.first_name }}", html=json.dumps(document), source_format="blocks",
        attachments=[attachment],
    )  # fmt: skip
    common = dict(
        mailing_id=1, from_email="news@example.com", from_name="News", reply_to="", list_ids=[1],
        kind="marketing", send_group="bench", extra_headers={},
    )  # fmt: skip
    builders = {
        "plain": MessageBuilder(**common, compiled=compiled.to_dict()),
        "attachment": MessageBuilder(**common, compiled=with_file.to_dict()),
    }
    people = [
        Recipient(i + 1, f"user{i}@example.com", recipient_context(contact=c, urls=u))
        for i, (c, u) in enumerate(recipients(min(messages, 1000)))
    ]
    sizes = {name: len(builder.build(people[0])) for name, builder in builders.items()}
    rates = _builds_per_s(builders, people, messages)
    print(
        f"10 blocks: MJML compile {mjml_ms:.2f} ms, whole block compile {blocks_ms:.2f} ms; "
        f"messages {sizes['plain']:,} B plain, {sizes['attachment']:,} B with a 100 KB attachment"
    )
    print(
        f"message builder: {rates['plain']:>10,.0f}/s plain, {rates['attachment']:>10,.0f}/s with the attachment "
        f"(ratio {rates['attachment'] / rates['plain']:.2f})"
    )
    return {
        "mjml_compile_ms": round(mjml_ms, 3),
        "blocks_compile_ms": round(blocks_ms, 3),
        "blocks_plain_per_s": round(rates["plain"], 1),
        "blocks_attachment_per_s": round(rates["attachment"], 1),
        "attachment_ratio": round(rates["attachment"] / rates["plain"], 3),
        "attachment_message_bytes": sizes["attachment"],
    }


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
    blocks = blocks_figures(args.messages)
    print(
        json.dumps(
            {
                **blocks,
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
