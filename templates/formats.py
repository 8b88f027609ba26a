"""Source formats of a template body: HTML, MJML, Markdown and block documents.

Whatever the format, the result is HTML that then goes through the same Liquid compile, checks,
versions and fast path (templates.compiler). MJML compiles on the server with mjml-python (MRML,
Rust, no Node); a block document (templates.blocks) becomes MJML first, so the browser never
produces the HTML that is sent. Markdown renders with markdown-it-py into a base layout (the
template's own, or a plain built-in frame).
"""

from __future__ import annotations

import re

import mjml
from markdown_it import MarkdownIt

from mailplatform.errors import Invalid

HTML, MJML, MARKDOWN, BLOCKS = "html", "mjml", "markdown", "blocks"
SOURCE_FORMATS = (HTML, MJML, MARKDOWN, BLOCKS)
FORMAT_LABELS = {HTML: "HTML", MJML: "MJML", MARKDOWN: "Markdown", BLOCKS: "Blocks"}

# Liquid markup, kept out of markdown's hands (it would escape quotes and percent-encode links).
_LIQUID = re.compile(r"\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\}|\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_PLACEHOLDER = re.compile(r"phlq(\d+)qlhp")

# Markdown without a base layout sits in this frame.
MARKDOWN_FRAME = """<!doctype html>
<html>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { margin: 0; background: #f3f4f6; }
  .frame { max-width: 600px; margin: 0 auto; background: #ffffff; padding: 24px 28px;
    font-family: Helvetica, Arial, sans-serif; font-size: 16px; line-height: 1.55; color: #1f2937; }
  a { color: #2563eb; }
  img { max-width: 100%; height: auto; }
</style>
</head>
<body>
<div class="frame">
{{ content }}
</div>
</body>
</html>
"""


class FormatError(Invalid):
    """A body that its format cannot turn into HTML, or a switch that would lose content."""

    default_code = "invalid_format"
    default_field = "html"


def _markdown(html: bool) -> MarkdownIt:
    # Raw HTML is the author's choice in Markdown mode; block text is Markdown only.
    return MarkdownIt("commonmark", {"html": html, "breaks": True, "typographer": False}).enable(
        ["table", "strikethrough"]
    )


_MD_WITH_HTML = _markdown(True)
_MD_TEXT_ONLY = _markdown(False)


def markdown_to_html(source: str, *, allow_html: bool = True, inline: bool = False) -> str:
    """Markdown to HTML, with Liquid markup passed through untouched."""
    found: list[str] = []

    def hide(match: re.Match[str]) -> str:
        found.append(match.group(0))
        return f"phlq{len(found) - 1}qlhp"

    hidden = _LIQUID.sub(hide, source)
    md = _MD_WITH_HTML if allow_html else _MD_TEXT_ONLY
    rendered = md.renderInline(hidden) if inline else md.render(hidden)

    def show(match: re.Match[str]) -> str:
        index = int(match.group(1))
        if index >= len(found):
            return match.group(0)
        markup = found[index]
        # Inside an attribute (a link's href) a double quote would end it: Liquid reads single quotes alike.
        if "'" not in markup:
            markup = markup.replace('"', "'")
        return markup

    return _PLACEHOLDER.sub(show, rendered)


def mjml_to_html(source: str) -> str:
    if not source.strip():
        raise FormatError("the MJML document is empty")
    if "<mjml" not in source:
        raise FormatError("an MJML document starts with <mjml> (and holds <mj-body>)")
    try:
        return mjml.mjml2html(source)
    except (ValueError, RuntimeError) as exc:  # MRML's parse and render errors
        raise FormatError(f"MJML could not be compiled: {exc}") from None


def body_to_html(source_format: str, source: str) -> str:
    """The HTML a body becomes (Markdown: the fragment that goes into its layout's {{ content }})."""
    if source_format == HTML:
        return source
    if source_format == MJML:
        return mjml_to_html(source)
    if source_format == MARKDOWN:
        return markdown_to_html(source)
    if source_format == BLOCKS:
        from templates.blocks import blocks_to_mjml, parse_document

        return mjml_to_html(blocks_to_mjml(parse_document(source)))
    raise FormatError(f"unknown source format {source_format!r}: use one of {', '.join(SOURCE_FORMATS)}")


def is_blank(source: str) -> bool:
    return not source.strip()


def switch_format(source_format: str, source: str, target: str, *, has_layout: bool = False) -> str:
    """The body in another format, when nothing is lost; FormatError saying why not otherwise.

    Allowed: anything that is empty; blocks to MJML (the MJML they compile from); blocks, MJML
    and Markdown to HTML (the HTML they compile to). Not allowed: HTML to anything else, or
    MJML and Markdown to blocks: no editor can turn free markup into blocks without losing it.
    """
    if target not in SOURCE_FORMATS:
        raise FormatError(f"unknown source format {target!r}")
    if target == source_format:
        return source
    if is_blank(source):
        from templates.blocks import EMPTY_DOCUMENT

        return EMPTY_DOCUMENT if target == BLOCKS else ""
    if source_format == BLOCKS and target == MJML:
        from templates.blocks import blocks_to_mjml, parse_document

        return blocks_to_mjml(parse_document(source))
    if target == HTML and source_format in (BLOCKS, MJML):
        return body_to_html(source_format, source)
    if target == HTML and source_format == MARKDOWN:
        body = markdown_to_html(source)
        # Without a layout Markdown sits in the built-in frame; as HTML it keeps that frame.
        return body if has_layout else MARKDOWN_FRAME.replace("{{ content }}", body)
    names = FORMAT_LABELS
    raise FormatError(
        f"{names[source_format]} cannot become {names[target]} without losing content: "
        f"keep {names[source_format]}, or start a new template in {names[target]}"
    )
