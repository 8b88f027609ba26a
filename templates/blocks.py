"""Block documents: what the block editor saves, turned into MJML on the server.

A document is JSON: {"blocks": [{"type": "heading", ...}, ...]}. Every field is checked and
escaped here (the browser only arranges blocks and fills in fields), then written as MJML that
templates.formats compiles to HTML. Text blocks take Markdown for basic formatting (bold,
italic, links, lists); raw HTML in them is shown as text. Liquid merge fields work in any text.
"""

from __future__ import annotations

import json
import re
from html import escape
from typing import Any

from templates.formats import FormatError, markdown_to_html

MAX_BLOCKS = 200
MAX_TEXT = 20_000
MAX_SHORT = 500
SOCIAL_NETWORKS = ("facebook", "instagram", "linkedin", "x", "youtube")
SOCIAL_LABELS = {
    "facebook": "Facebook",
    "instagram": "Instagram",
    "linkedin": "LinkedIn",
    "x": "X",
    "youtube": "YouTube",
}
EMPTY_DOCUMENT = '{"blocks": []}'

_COLOUR = re.compile(r"^#[0-9a-fA-F]{3}(?:[0-9a-fA-F]{3})?$")
_LIQUID_URL = re.compile(r"^\{\{[^{}]*\}\}$")
_LIQUID = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)

# name -> (label for people, fields with their defaults)
BLOCK_TYPES: dict[str, tuple[str, dict[str, Any]]] = {
    "heading": ("Heading", {"text": "A heading", "level": 1, "align": "left"}),
    "text": ("Text", {"text": "Write something **bold** or *italic*, with [a link](https://example.com)."}),
    "image": ("Image", {"src": "", "alt": "", "href": "", "width": 600}),
    "button": ("Button", {"label": "Read more", "href": "https://example.com", "color": "#2563eb"}),
    "columns": ("Columns", {"columns": []}),
    "divider": ("Divider", {"color": "#e5e7eb"}),
    "spacer": ("Spacer", {"height": 24}),
    "social": ("Social links", {network: "" for network in SOCIAL_NETWORKS}),
    "footer": ("Footer", {"address": "", "text": ""}),
}
COLUMN_FIELDS = {"image": "", "alt": "", "heading": "", "text": "", "button_label": "", "button_href": ""}


class BlockError(FormatError):
    pass


def _str(block: dict, name: str, where: str, *, limit: int = MAX_SHORT, default: str = "") -> str:
    value = block.get(name, default)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise BlockError(f"{where}: {name} must be text")
    if len(value) > limit:
        raise BlockError(f"{where}: {name} is longer than {limit:,} characters")
    return value.strip()


def _int(block: dict, name: str, where: str, low: int, high: int, default: int) -> int:
    value = block.get(name, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BlockError(f"{where}: {name} must be a whole number") from None
    if not low <= number <= high:
        raise BlockError(f"{where}: {name} must be between {low} and {high}")
    return number


def _url(value: str, where: str, name: str, *, required: bool = False) -> str:
    """A link or image address: absolute http(s) or mailto, or one Liquid output ({{ unsubscribe_url }})."""
    if not value:
        if required:
            raise BlockError(f"{where}: {name} is required")
        return ""
    if _LIQUID_URL.match(value):
        return value
    lowered = value.lower()
    if not (lowered.startswith(("https://", "http://", "mailto:")) or lowered.startswith("{{")):
        raise BlockError(f"{where}: {name} must start with https://, http:// or mailto: (got {value[:60]!r})")
    if any(ch in value for ch in '<>"\\ \n\r\t'):
        raise BlockError(f"{where}: {name} must not contain spaces, quotes or angle brackets")
    return value


def _colour(block: dict, name: str, where: str, default: str) -> str:
    value = _str(block, name, where, default=default) or default
    if not _COLOUR.match(value):
        raise BlockError(f"{where}: {name} must be a colour like #2563eb")
    return value


def _clean_block(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BlockError(f"{where}: a block must be an object")
    kind = raw.get("type")
    if kind not in BLOCK_TYPES:
        raise BlockError(f"{where}: unknown block type {str(kind)[:40]!r}")
    where = f"{where} ({BLOCK_TYPES[kind][0].lower()})"
    block: dict[str, Any] = {"type": kind}
    if kind == "heading":
        block["text"] = _str(raw, "text", where)
        block["level"] = _int(raw, "level", where, 1, 3, 1)
        block["align"] = raw.get("align") if raw.get("align") in ("left", "center", "right") else "left"
    elif kind == "text":
        block["text"] = _str(raw, "text", where, limit=MAX_TEXT)
    elif kind == "image":
        block["src"] = _url(_str(raw, "src", where, limit=2000), where, "the image", required=True)
        block["alt"] = _str(raw, "alt", where)
        block["href"] = _url(_str(raw, "href", where, limit=2000), where, "the link")
        block["width"] = _int(raw, "width", where, 20, 600, 600)
    elif kind == "button":
        block["label"] = _str(raw, "label", where) or "Read more"
        block["href"] = _url(_str(raw, "href", where, limit=2000), where, "the link", required=True)
        block["color"] = _colour(raw, "color", where, "#2563eb")
    elif kind == "columns":
        columns = raw.get("columns")
        if not isinstance(columns, list) or not 2 <= len(columns) <= 3:
            raise BlockError(f"{where}: two or three columns are needed")
        block["columns"] = []
        for n, column in enumerate(columns, 1):
            if not isinstance(column, dict):
                raise BlockError(f"{where}: column {n} must be an object")
            cell = f"{where} column {n}"
            block["columns"].append(
                {
                    "image": _url(_str(column, "image", cell, limit=2000), cell, "the image"),
                    "alt": _str(column, "alt", cell),
                    "heading": _str(column, "heading", cell),
                    "text": _str(column, "text", cell, limit=MAX_TEXT),
                    "button_label": _str(column, "button_label", cell),
                    "button_href": _url(
                        _str(column, "button_href", cell, limit=2000), cell, "the button link"
                    ),
                }
            )
    elif kind == "divider":
        block["color"] = _colour(raw, "color", where, "#e5e7eb")
    elif kind == "spacer":
        block["height"] = _int(raw, "height", where, 4, 200, 24)
    elif kind == "social":
        for network in SOCIAL_NETWORKS:
            block[network] = _url(_str(raw, network, where, limit=2000), where, f"the {network} link")
        if not any(block[network] for network in SOCIAL_NETWORKS):
            raise BlockError(f"{where}: add at least one profile link")
    elif kind == "footer":
        block["address"] = _str(raw, "address", where, limit=1000)
        block["text"] = _str(raw, "text", where, limit=2000)
        if not block["address"]:
            # CAN-SPAM and most national laws: commercial mail names a postal address.
            raise BlockError(f"{where}: the postal address is required")
    return block


def parse_document(source: str | dict) -> dict[str, Any]:
    """The checked, normalised document; BlockError naming the block and field otherwise."""
    if isinstance(source, str):
        try:
            data = json.loads(source or EMPTY_DOCUMENT)
        except json.JSONDecodeError as exc:
            raise BlockError(f"the block document is not valid JSON ({exc.msg})") from None
    else:
        data = source
    if not isinstance(data, dict) or not isinstance(data.get("blocks"), list):
        raise BlockError('a block document is an object with a "blocks" list')
    raw_blocks = data["blocks"]
    if len(raw_blocks) > MAX_BLOCKS:
        raise BlockError(f"a message may have at most {MAX_BLOCKS} blocks")
    blocks = [_clean_block(raw, f"block {n}") for n, raw in enumerate(raw_blocks, 1)]
    if not blocks:
        raise BlockError("add at least one block")
    if not any(b["type"] == "footer" for b in blocks):
        raise BlockError("add a footer block: it carries the unsubscribe link and your postal address")
    return {"blocks": blocks}


def dump_document(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=1)


# --- MJML ---


def _text(value: str) -> str:
    """Escape text for MJML content, keeping Liquid markup as written."""
    out, last = [], 0
    for match in _LIQUID.finditer(value):
        out.append(escape(value[last : match.start()], quote=False))
        out.append(match.group(0))
        last = match.end()
    out.append(escape(value[last:], quote=False))
    return "".join(out)


def _attr(value: str) -> str:
    """An attribute value: escaped, Liquid kept (with single quotes, which end no attribute)."""
    out, last = [], 0
    for match in _LIQUID.finditer(value):
        out.append(escape(value[last : match.start()], quote=True))
        markup = match.group(0)
        out.append(markup if "'" in markup else markup.replace('"', "'"))
        last = match.end()
    out.append(escape(value[last:], quote=True))
    return "".join(out)


HEADING_SIZES = {1: "28px", 2: "22px", 3: "18px"}


def _block_mjml(block: dict[str, Any]) -> str:
    kind = block["type"]
    if kind == "heading":
        size = HEADING_SIZES[block["level"]]
        return (
            f'<mj-text align="{block["align"]}" font-size="{size}" font-weight="700" line-height="1.25">'
            f'<h{block["level"]} style="margin:0;font-size:{size}">{_text(block["text"])}</h{block["level"]}>'
            "</mj-text>"
        )
    if kind == "text":
        return f"<mj-text>{markdown_to_html(block['text'], allow_html=False)}</mj-text>"
    if kind == "image":
        href = f' href="{_attr(block["href"])}"' if block["href"] else ""
        return (
            f'<mj-image src="{_attr(block["src"])}" alt="{_attr(block["alt"])}"'
            f' width="{block["width"]}px"{href} />'
        )
    if kind == "button":
        return (
            f'<mj-button href="{_attr(block["href"])}" background-color="{block["color"]}">'
            f"{_text(block['label'])}</mj-button>"
        )
    if kind == "divider":
        return f'<mj-divider border-width="1px" border-color="{block["color"]}" />'
    if kind == "spacer":
        return f'<mj-spacer height="{block["height"]}px" />'
    if kind == "social":
        elements = "".join(
            f'<mj-social-element name="{network}" href="{_attr(block[network])}" '
            f'alt="{SOCIAL_LABELS[network]}"></mj-social-element>'
            for network in SOCIAL_NETWORKS
            if block[network]
        )
        return f'<mj-social mode="horizontal" icon-size="24px">{elements}</mj-social>'
    if kind == "footer":
        address = "<br>".join(_text(line) for line in block["address"].splitlines() if line.strip())
        extra = (
            f"{markdown_to_html(block['text'], allow_html=False, inline=True)}<br>" if block["text"] else ""
        )
        return (
            '<mj-text align="center" font-size="12px" color="#6b7280" line-height="1.6">'
            f"{extra}{address}<br>"
            '<a href="{{ view_in_browser_url }}" style="color:#6b7280">View in browser</a> · '
            '<a href="{{ preferences_url }}" style="color:#6b7280">Preferences</a> · '
            '<a href="{{ unsubscribe_url }}" style="color:#6b7280">Unsubscribe</a>'
            "</mj-text>"
        )
    raise BlockError(f"unknown block type {kind!r}")  # pragma: no cover - parse_document refused it


def _column_mjml(column: dict[str, str]) -> str:
    parts = []
    if column["image"]:
        parts.append(f'<mj-image src="{_attr(column["image"])}" alt="{_attr(column["alt"])}" />')
    if column["heading"]:
        parts.append(
            f'<mj-text font-size="18px" font-weight="700"><h3 style="margin:0;font-size:18px">'
            f"{_text(column['heading'])}</h3></mj-text>"
        )
    if column["text"]:
        parts.append(f"<mj-text>{markdown_to_html(column['text'], allow_html=False)}</mj-text>")
    if column["button_label"] and column["button_href"]:
        parts.append(
            f'<mj-button href="{_attr(column["button_href"])}">{_text(column["button_label"])}</mj-button>'
        )
    return "<mj-column>" + "".join(parts) + "</mj-column>"


def blocks_to_mjml(document: dict[str, Any]) -> str:
    """The MJML of a checked document: one section per block, columns side by side (stacked on phones)."""
    sections = []
    for block in document["blocks"]:
        if block["type"] == "columns":
            sections.append(f"<mj-section>{''.join(_column_mjml(c) for c in block['columns'])}</mj-section>")
        else:
            sections.append(f"<mj-section><mj-column>{_block_mjml(block)}</mj-column></mj-section>")
    return (
        "<mjml>\n<mj-head>\n<mj-attributes>\n"
        '<mj-all font-family="Helvetica, Arial, sans-serif" />\n'
        '<mj-text font-size="16px" line-height="1.55" color="#1f2937" padding="8px 28px" />\n'
        '<mj-section padding="0" background-color="#ffffff" />\n'
        '<mj-image padding="8px 28px" />\n'
        '<mj-button background-color="#2563eb" color="#ffffff" font-size="16px" border-radius="6px" />\n'
        "</mj-attributes>\n</mj-head>\n"
        '<mj-body background-color="#f3f4f6" width="600px">\n'
        + "\n".join(sections)
        + "\n</mj-body>\n</mjml>\n"
    )
