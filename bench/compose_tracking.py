"""Per-recipient cost of open/click tracking in the message builder's fast path.

    python bench/compose_tracking.py --messages 20000 --links 10

Builds the same personalised newsletter (~18 KB encoded) for N recipients with tracking off (the reference)
and on (each link in the HTML and text parts through a signed click URL, plus the open pixel),
alternating rounds so machine load hits both alike. Pure computation: no database or Redis.
Last line: one JSON object with plain_per_s, tracked_per_s, ratio and the extra microseconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from django.conf import settings  # noqa: E402

settings.configure(
    SECRET_KEY="bench-" + "x" * 40, SITE_URL="https://mail.example.com", BOUNCE_DOMAIN="bounce.example.com"
)

from delivery.compose import MessageBuilder, Recipient  # noqa: E402
from templates.compiler import compile_template  # noqa: E402
from templates.context import recipient_context  # noqa: E402

STORY = "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt.</p>\n"


def compiled(links: int) -> dict:
    body = [
        f'<p><a href="https://shop.example.com/item/{i}?ref=mail">Item {i}</a></p>{STORY * 2}'
        for i in range(links)
    ]
    html = (
        "<html><body><h1>Hello {{ contact.first_name | default: 'there' }}</h1>"
        + "".join(body)
        + STORY * max(0, 80 - 2 * links)
        + '<a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>'
    )
    return compile_template(subject="News for {{ contact.first_name }}", html=html).to_dict()


def builder(data: dict, tracked: bool) -> MessageBuilder:
    return MessageBuilder(
        mailing_id=42, from_email="news@example.com", from_name="News", reply_to="", list_ids=[1],
        kind="marketing", send_group="campaign:42", extra_headers={}, compiled=data,
        track_opens=tracked, track_clicks=tracked,
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--links", type=int, default=10)
    args = parser.parse_args()
    if args.messages < 10:
        parser.error("--messages must be at least 10")
    if not 0 <= args.links <= 40:
        parser.error("--links must be 0 to 40")
    data = compiled(args.links)
    contexts = [
        recipient_context(
            contact={"email": f"user{i}@example.org", "first_name": f"Name{i}"},
            urls={"unsubscribe_url": f"https://mail.example.com/delivery/u/{i:x}-abcdefgh/"},
        )
        for i in range(args.messages)
    ]
    builders = {"plain": builder(data, False), "tracked": builder(data, True)}
    sizes = {name: len(b.build(Recipient(1, "a@example.org", contexts[0]))) for name, b in builders.items()}
    seconds = dict.fromkeys(builders, 0.0)
    rounds = 5
    for index in range(rounds):
        part = contexts[index::rounds]
        for name, b in builders.items():
            start = time.perf_counter()
            for number, context in enumerate(part):
                b.build(Recipient(number + 1, "user@example.org", context))
            seconds[name] += time.perf_counter() - start
    plain = args.messages / seconds["plain"]
    tracked = args.messages / seconds["tracked"]
    extra_us = (seconds["tracked"] - seconds["plain"]) / args.messages * 1e6
    print(f"plain    {plain:10.0f} messages/s  ({sizes['plain']} bytes)")
    print(f"tracked  {tracked:10.0f} messages/s  ({sizes['tracked']} bytes, {args.links} links + pixel)")
    print(f"tracking costs {extra_us:.1f} us per message")
    result = {
        "messages": args.messages,
        "links": args.links,
        "plain_per_s": round(plain, 1),
        "tracked_per_s": round(tracked, 1),
        "ratio": round(tracked / plain, 3),
        "extra_us_per_message": round(extra_us, 2),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
