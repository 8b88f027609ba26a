"""delivery.tracking's link table and slot splitting: pure functions, no database."""

from __future__ import annotations

from delivery import tracking


def _fill(literals, indexes, values):
    out = [literals[0]]
    for index, literal in zip(indexes, literals[1:], strict=True):
        out += [values[index], literal]
    return "".join(out)


def test_literal_links_become_slots_and_links_with_merge_fields_stay():
    literals = [
        '<p><a href="https://a.example.com/x?a=1&amp;b=2">x</a> <A class="b" HREF=\'https://b.example.com/\'>b</A> <a href="https://a.example.com/',
        '">per person</a></p>',
    ]
    out, indexes, links, pixel = tracking.instrument_literals(
        literals, [0], first_slot=1, opens=True, clicks=True
    )
    assert links == ["https://a.example.com/x?a=1&b=2", "https://b.example.com/"]
    html = _fill(out, indexes, ["ID", "L0", "L1", "PIXEL"])
    assert html == (
        '<p><a href="L0">x</a> <A class="b" HREF=\'L1\'>b</A> <a href="https://a.example.com/ID">per person</a></p>'
        '<img src="PIXEL" width="1" height="1" alt="" style="display:block;border:0">'
    )


def test_pixel_goes_before_the_last_body_end_and_repeated_links_share_a_slot():
    literals = [
        '<body><a href="https://a.example.com/">1</a><a href="https://a.example.com/">2</a></BODY></html>'
    ]
    out, indexes, links, _ = tracking.instrument_literals(literals, [], first_slot=0, opens=True, clicks=True)
    assert links == ["https://a.example.com/"]
    assert _fill(out, indexes, ["L0", "P"]) == (
        '<body><a href="L0">1</a><a href="L0">2</a><img src="P" width="1" height="1" alt="" '
        'style="display:block;border:0"></BODY></html>'
    )


def test_text_urls_of_the_html_links_share_their_slots():
    literals = ["Sale: [See](https://a.example.com/x?a=1&b=2). Other: https://c.example.com/ ", "\n"]
    out, indexes = tracking.instrument_text(
        literals, [0], links=["https://a.example.com/x?a=1&b=2"], first_slot=1
    )
    assert _fill(out, indexes, ["NAME", "L0"]) == "Sale: [See](L0). Other: https://c.example.com/ NAME\n"


def test_slow_path_rewrites_only_the_mailing_links(settings):
    html = '<a href="https://a.example.com/">a</a><a href="https://evil.example.net/">b</a></body>'
    out = tracking.rewrite_html(
        html, mailing_id=3, message_id=9, links=["https://a.example.com/"], opens=False
    )
    token = tracking.token(3, 9)
    assert (
        out
        == f'<a href="{settings.SITE_URL}/t/c/{token}/0">a</a><a href="https://evil.example.net/">b</a></body>'
    )


def test_tokens_name_mailing_and_message_and_refuse_tampering():
    value = tracking.token(12, 3456)
    assert tracking.parse_token(value) == (12, 3456)
    mailing, message, mac = value.split(".")
    assert tracking.parse_token(f"{mailing}.{message}1.{mac}") is None
    assert tracking.parse_token(f"{mailing}.{message}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}") is None
    assert tracking.parse_token("../../etc") is None
