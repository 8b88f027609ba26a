"""Compile an email template once; render it per recipient fast.

`compile_template` validates every part with Liquid (errors carry the part, line and column),
inlines the CSS, derives the plain-text part when none is written and splits each part into
literal text and slots. A template whose parts hold only merge fields (`{{ contact.first_name }}`,
optionally `| default: "there"`) renders by filling those slots with `str.format`, without a
template engine; anything else (conditions, loops, other filters) renders through Liquid with
its limits. The compiled form is plain JSON so a mailing can snapshot it.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html import escape as html_escape
from html.parser import HTMLParser
from typing import Any, NamedTuple

import css_inline
from inscriptis import get_text
from inscriptis.model.config import ParserConfig
from liquid import BoundTemplate, Environment
from liquid.builtin.content import ContentNode
from liquid.builtin.expressions.arguments import PositionalArgument
from liquid.builtin.expressions.filtered import FilteredExpression
from liquid.builtin.expressions.path import Path
from liquid.builtin.expressions.primitive import StringLiteral
from liquid.builtin.output import OutputNode
from liquid.exceptions import (
    BlockNestingError,
    ContextDepthError,
    LiquidError,
    LocalNamespaceLimitError,
    LoopIterationLimitError,
    OutputStreamLimitError,
    ResourceLimitError,
)
from liquid.stringify import to_liquid_string

try:  # markupsafe's C escaper without the Markup wrapper: the per-recipient hot path
    from markupsafe._speedups import _escape_inner as _escape
except ImportError:  # pragma: no cover - pure-Python markupsafe
    from markupsafe import escape as _markup_escape

    def _escape(value: str) -> str:
        return str(_markup_escape(value))


from mailplatform.errors import Invalid
from templates.context import sample_context
from templates.liquid_env import (
    BLOCK_NESTING_LIMIT,
    HTML_ENV,
    LOOP_ITERATION_LIMIT,
    OUTPUT_STREAM_LIMIT,
    SOURCE_LIMIT,
    TEXT_ENV,
    check_static_limits,
    plain_data,
)

FORMAT_VERSION = 1
PARTS = ("subject", "preheader", "html", "text")
MAX_SUBJECT = 998  # one header line (RFC 5322)

# Characters that end a header line somewhere (SMTP, Python's email package, str.splitlines).
_LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_NO_BREAKS = str.maketrans(dict.fromkeys(_LINE_BREAKS, " "))

# Liquid markup in an HTML source: raw and comment blocks whole, then outputs and tags.
_LIQUID_MARKUP = re.compile(
    r"\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\}"
    r"|\{%-?\s*comment\s*-?%\}.*?\{%-?\s*endcomment\s*-?%\}"
    r"|\{\{.*?\}\}|\{%.*?%\}",
    re.DOTALL,
)
# Paths whose last segment Liquid resolves specially; they go through the engine.
_SPECIAL_KEYS = frozenset({"size", "first", "last"})
_SPACE_LINES = re.compile(r"\n[ \t]+(?=\n)")
_BLANK_RUNS = re.compile(r"\n{3,}")
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_TEXT_CONFIG = ParserConfig(display_links=True)


class TemplateError(Invalid):
    """A template that cannot be compiled; says which part, where and what.

    `message` is the bare message (the editor shows it beside the line); str() and the platform
    error's `messages` carry the part and place as well. The field is the part when a form or
    request has one by that name, else the body (`html`).
    """

    PARTS = ("name", "subject", "preheader", "html", "text", "layout", "kind")

    def __init__(
        self,
        message: str,
        *,
        part: str,
        line: int | None = None,
        column: int | None = None,
        limit: bool = False,
    ):
        where = f" at line {line}, column {column}" if line is not None else ""
        self.text = f"{part}{where}: {message}"
        super().__init__(
            self.text,
            code="template_limit" if limit else "template_error",
            field=part if part in self.PARTS else "html",
        )
        self.message = message
        self.limit = limit  # a resource limit (loops, output size, nesting) stopped it
        self.part = part
        self.line = line
        self.column = column

    def __str__(self) -> str:
        return self.text

    def as_dict(self) -> dict[str, Any]:
        return {"message": self.message, "part": self.part, "line": self.line, "column": self.column}


class RenderedEmail(NamedTuple):
    subject: str
    html: str
    text: str


# A slot: the path looked up in the context and the literal `default` (None when absent).
Slot = tuple[tuple[str | int, ...], str | None]


@dataclass(frozen=True)
class CompiledTemplate:
    subject: str
    html: str
    text: str
    uses_logic: bool
    fields: frozenset[str]
    # Fast path only (empty when uses_logic): per part, its literal pieces and the slot index between each pair.
    segments: Mapping[str, tuple[tuple[str, ...], tuple[int, ...]]] = field(default_factory=dict)
    slots: tuple[Slot, ...] = ()
    # Files sent with every message: [{"filename", "content_type", "size", "sha256", "storage_name"}].
    attachments: tuple[Mapping[str, Any], ...] = ()
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    # --- serialisation (the delivery snapshot) ---

    def to_dict(self) -> dict[str, Any]:
        data = {
            "format": FORMAT_VERSION,
            "subject": self.subject,
            "html": self.html,
            "text": self.text,
            "uses_logic": self.uses_logic,
            "fields": sorted(self.fields),
            "segments": {part: [list(lits), list(idx)] for part, (lits, idx) in self.segments.items()},
            "slots": [[list(path), default] for path, default in self.slots],
        }
        if self.attachments:  # absent otherwise: snapshots of templates without files keep their checksum
            data["attachments"] = [dict(a) for a in self.attachments]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CompiledTemplate:
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"unknown compiled template format {data.get('format')!r}")
        return cls(
            subject=data["subject"],
            html=data["html"],
            text=data["text"],
            uses_logic=bool(data["uses_logic"]),
            fields=frozenset(data["fields"]),
            segments={part: (tuple(lits), tuple(idx)) for part, (lits, idx) in data["segments"].items()},
            slots=tuple((tuple(path), default) for path, default in data["slots"]),
            attachments=tuple(dict(a) for a in data.get("attachments", ())),
        )

    # --- rendering ---

    def render(self, context: Mapping[str, Any]) -> RenderedEmail:
        if self.uses_logic:
            rendered = self._render_liquid(context)
            # Tags on lines of their own leave blank lines behind in the text part.
            return rendered._replace(text=_BLANK_RUNS.sub("\n\n", _SPACE_LINES.sub("\n", rendered.text)))
        plan = self._cache.get("plan")
        if plan is None:
            plan = self._cache["plan"] = _fill_plan(self.segments)
        (subject_buf, subject_idx), (html_buf, html_idx), (text_buf, text_idx) = plan
        raw, escaped = self.slot_values(context)
        # Literal pieces sit at even positions of a prepared list; values go into the odd ones.
        subject = subject_buf.copy()
        subject[1::2] = [raw[i] for i in subject_idx]
        html = html_buf.copy()
        html[1::2] = [escaped[i] for i in html_idx]
        text = text_buf.copy()
        text[1::2] = [raw[i] for i in text_idx]
        return RenderedEmail(
            "".join(subject).translate(_NO_BREAKS).strip(),
            "".join(html),
            "".join(text),
        )

    def slot_values(self, context: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """Each slot's value for one recipient: as text, and HTML-escaped (fast path only).

        For callers that keep their own pre-encoded segments: slot i of `slots` goes where
        `segments[part][1]` names index i.
        """
        return slot_values(context, self.slots)

    def _render_liquid(self, context: Mapping[str, Any]) -> RenderedEmail:
        parsed = self._cache.get("liquid")
        if parsed is None:
            parsed = self._cache["liquid"] = (
                TEXT_ENV.from_string(self.subject),
                HTML_ENV.from_string(self.html),
                TEXT_ENV.from_string(self.text),
            )
        data = plain_data(context)
        rendered = []
        for part, template in zip(("subject", "html", "text"), parsed, strict=True):
            try:
                rendered.append(template.render(**data))
            except LiquidError as exc:
                raise _error(exc, part, getattr(self, part)) from None
        subject, html, text = rendered
        return RenderedEmail(subject.translate(_NO_BREAKS).strip(), html, text)

    def render_liquid(self, context: Mapping[str, Any]) -> RenderedEmail:
        """Render through the engine even when the fast path applies (benchmarks, equivalence tests)."""
        return self._render_liquid(context)


def _fill_plan(
    segments: Mapping[str, tuple[tuple[str, ...], tuple[int, ...]]],
) -> tuple[tuple[list[str], tuple[int, ...]], ...]:
    plan = []
    for part in ("subject", "html", "text"):
        literals, indexes = segments[part]
        buffer: list[str] = [""] * (2 * len(literals) - 1)
        buffer[0::2] = literals
        plan.append((buffer, indexes))
    return tuple(plan)


# --- compiling ---


def _parse(env: Environment, source: str, part: str) -> BoundTemplate:
    if len(source) > SOURCE_LIMIT:
        raise TemplateError(
            f"too long: {len(source):,} characters (the limit is {SOURCE_LIMIT:,})", part=part
        )
    try:
        template = env.from_string(source)
        analysis = template.analyze()
        check_static_limits(template)
    except LiquidError as exc:
        raise _error(exc, part, source) from None
    except RecursionError:
        raise TemplateError("is nested too deeply", part=part) from None
    for name, spans in analysis.filters.items():
        if name not in env.filters:
            line, column = _line_column(source, spans[0].index)
            raise TemplateError(f"unknown filter '{name}'", part=part, line=line, column=column)
    return template


_LIMIT_MESSAGES = {
    LoopIterationLimitError: f"loops ran more than {LOOP_ITERATION_LIMIT:,} iterations in total",
    OutputStreamLimitError: f"the output grew beyond {OUTPUT_STREAM_LIMIT:,} characters",
    LocalNamespaceLimitError: "assigned or captured values grew too large",
    ContextDepthError: "the template nests too deeply",
    BlockNestingError: f"blocks are nested more than {BLOCK_NESTING_LIMIT} deep",
}


def _error(exc: LiquidError, part: str, source: str) -> TemplateError:
    limit = isinstance(exc, ResourceLimitError)
    message = next((m for cls, m in _LIMIT_MESSAGES.items() if isinstance(exc, cls)), None)
    message = message or str(exc.message or exc.__class__.__name__)
    where = exc.context() if exc.token is not None and exc.token.source == source else None
    if where is not None:
        return TemplateError(message, part=part, line=where[0], column=where[1] + 1, limit=limit)
    if limit:
        return TemplateError(message, part=part, limit=True)
    # "expected tag endif, found end of expression": the mistake is the {% if %} never closed,
    # not the end of the source where the parser noticed it.
    unclosed = _EXPECTED_END.search(message)
    if unclosed is not None:
        opener = _unclosed_block(source, unclosed.group(1))
        if opener is not None:
            line, column = _line_column(source, opener)
            tag = unclosed.group(1)
            return TemplateError(
                f"{{% {tag} %}} is never closed: add {{% end{tag} %}} where its block ends",
                part=part, line=line, column=column,
            )  # fmt: skip
    # Other errors found at the end of the source point at its last line.
    lines = source.splitlines() or [""]
    return TemplateError(message, part=part, line=len(lines), column=len(lines[-1]) + 1)


_EXPECTED_END = re.compile(r"expected (?:tag )?'?end(\w+)'?")
_TAG = re.compile(r"\{%-?\s*(\w+)")
_VERBATIM = ("raw", "comment")


def _unclosed_block(source: str, tag: str) -> int | None:
    """Where the innermost `{% tag %}` without its `{% endtag %}` starts (an index), or None."""
    stack: list[tuple[str, int]] = []
    verbatim = None
    for match in _TAG.finditer(source):
        name = match.group(1)
        if verbatim is not None:
            if name == f"end{verbatim}":
                stack.pop()
                verbatim = None
            continue
        if name.startswith("end"):
            opened = name[3:]
            for depth in range(len(stack) - 1, -1, -1):
                if stack[depth][0] == opened:
                    del stack[depth:]
                    break
        elif name in BLOCK_TAGS:
            stack.append((name, match.start()))
            if name in _VERBATIM:
                verbatim = name
    starts = [start for name, start in stack if name == tag]
    return starts[-1] if starts else None


# Tags that take an end tag (the standard ones and our own).
BLOCK_TAGS = frozenset({"if", "unless", "for", "case", "capture", "tablerow", "comment", "raw", "block"})


def _line_column(source: str, index: int) -> tuple[int, int]:
    line = source.count("\n", 0, index) + 1
    return line, index - (source.rfind("\n", 0, index) + 1) + 1


def _simple_slot(node: OutputNode) -> Slot | None:
    """The slot for `{{ a.b }}` or `{{ a.b | default: "x" }}`; None for anything else."""
    expression = node.expression
    if not isinstance(expression, FilteredExpression):
        return None
    left = expression.left
    if not isinstance(left, Path) or not all(isinstance(s, str | int) for s in left.path):
        return None
    if any(s in _SPECIAL_KEYS for s in left.path if isinstance(s, str)):
        return None
    filters = expression.filters or []
    default: str | None = None
    if filters:
        if len(filters) != 1 or filters[0].name != "default" or len(filters[0].args) != 1:
            return None
        argument = filters[0].args[0]
        if not isinstance(argument, PositionalArgument) or not isinstance(argument.value, StringLiteral):
            return None
        default = argument.value.value
    return tuple(left.path), default


def _segments(
    template: BoundTemplate, slots: dict[Slot, int]
) -> tuple[tuple[str, ...], tuple[int, ...]] | None:
    literals: list[str] = [""]
    indexes: list[int] = []
    for node in template.nodes:
        if isinstance(node, ContentNode):
            literals[-1] += node.text
        elif isinstance(node, OutputNode) and (slot := _simple_slot(node)) is not None:
            indexes.append(slots.setdefault(slot, len(slots)))
            literals.append("")
        else:
            return None
    return tuple(literals), tuple(indexes)


def _protect(source: str, make_marker) -> tuple[str, list[str]]:
    found: list[str] = []

    def replace(match: re.Match[str]) -> str:
        found.append(match.group(0))
        return make_marker(len(found) - 1)

    return _LIQUID_MARKUP.sub(replace, source), found


def _restore(source: str, pattern: re.Pattern[str], found: list[str]) -> str:
    return pattern.sub(lambda m: found[int(m.group(1))], source)


_HTML_MARKER = re.compile(r"<!--posthorn-liquid:(\d+)-->")
_TEXT_MARKER = re.compile("\ue000(\\d+)\ue001")


# Start tags (quoted attribute values may hold '>'), with comments and style/script bodies skipped.
_MARKUP_SCAN = re.compile(
    r"<!--.*?-->"
    r"|<(style|script)\b[^>]*>.*?</\1\s*>"
    r"|<([a-zA-Z][\w:-]*)((?:\s+[^\s\"'>/=]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+))?)*)\s*(/?)>",
    re.DOTALL | re.IGNORECASE,
)
_STYLE_ATTR = re.compile(r"""(\s)style\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+)""", re.IGNORECASE)
_MARK_ATTR = "data-posthorn-n"


class _StyleHarvester(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.styles: dict[int, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        mark = values.get(_MARK_ATTR)
        if mark is not None and values.get("style"):
            self.styles[int(mark)] = values["style"] or ""

    handle_startendtag = handle_starttag


def inline_css(html: str) -> str:
    """Inline the <style> rules into style attributes, changing nothing else in the source.

    css-inline parses HTML5 and re-serialises it, which would move Liquid tags that sit
    between table rows (and add tbody elements around them). So each start tag of the source
    is numbered, css-inline computes the styles, and only the style attributes are written
    back into the untouched source. Liquid markup is hidden in comments meanwhile.
    """
    protected, found = _protect(html, lambda i: f"<!--posthorn-liquid:{i}-->")
    counter = 0

    def number(match: re.Match[str]) -> str:
        nonlocal counter
        if match.group(2) is None:
            return match.group(0)
        counter += 1
        return f'<{match.group(2)}{match.group(3)} {_MARK_ATTR}="{counter}"{match.group(4)}>'

    numbered = _MARKUP_SCAN.sub(number, protected)
    try:
        # Style tags stay for clients that read them: media queries make a layout responsive.
        inlined = css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False).inline(numbered)
    except (css_inline.InlineError, ValueError) as exc:
        raise TemplateError(f"CSS could not be inlined: {exc}", part="html") from None
    harvester = _StyleHarvester()
    harvester.feed(inlined)
    harvester.close()
    counter = 0

    def restyle(match: re.Match[str]) -> str:
        nonlocal counter
        if match.group(2) is None:
            return match.group(0)
        counter += 1
        style = harvester.styles.get(counter)
        attributes = match.group(3)
        # A style attribute holding Liquid stays as written: it is computed per recipient.
        if style is None or "<!--posthorn-liquid:" in attributes:
            return match.group(0)
        quoted = style.replace("&", "&amp;").replace('"', "&quot;")
        if _STYLE_ATTR.search(attributes):
            attributes = _STYLE_ATTR.sub(lambda m: f'{m.group(1)}style="{quoted}"', attributes, count=1)
        else:
            attributes += f' style="{quoted}"'
        return f"<{match.group(2)}{attributes}{match.group(4) and ' /'}>"

    return _restore(_MARKUP_SCAN.sub(restyle, protected), _HTML_MARKER, found)


_TABLE_OPEN = re.compile(r"<(table|thead|tbody|tfoot|tr)\b", re.IGNORECASE)
_TABLE_CLOSE = re.compile(r"</(table|thead|tbody|tfoot|tr)\s*>", re.IGNORECASE)
_CELL_OPEN = re.compile(r"<(td|th)\b", re.IGNORECASE)
_CELL_CLOSE = re.compile(r"</(td|th)\s*>", re.IGNORECASE)


def _flatten_tables(html: str) -> str:
    html = _TABLE_CLOSE.sub("</div>", _TABLE_OPEN.sub("<div", html))
    return _CELL_CLOSE.sub("</span> ", _CELL_OPEN.sub("<span", html))


def _is_liquid(source: str) -> bool:
    try:
        TEXT_ENV.from_string(source)
    except LiquidError:
        return False
    return True


def html_to_text(html: str) -> str:
    """The plain-text part of an HTML body, keeping its Liquid markup (inscriptis, Apache-2.0).

    The converter moves text found between table rows out of the table, which would reorder
    Liquid tags; when that happens the tables are converted as plain blocks instead.
    """
    protected, found = _protect(html, lambda i: f"\ue000{i}\ue001")
    for source in (protected, _flatten_tables(protected)):
        text = get_text(source, _TEXT_CONFIG)
        # Hidden elements (the preheader) drop their markup: fine, as long as none moved.
        seen = [int(i) for i in _TEXT_MARKER.findall(text)]
        if seen == sorted(set(seen)) and _is_liquid(_restore(text, _TEXT_MARKER, found)):
            break
    else:
        raise TemplateError(
            "the plain-text part could not be derived from this HTML; write the text part yourself",
            part="text",
        )
    lines = textwrap.dedent("\n".join(line.rstrip() for line in text.splitlines())).strip("\n").splitlines()
    # Collapse runs of blank lines left by layout tables.
    collapsed = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return _restore(collapsed, _TEXT_MARKER, found) + "\n"


def _text_as_html(source: str) -> str:
    """Escape plain text for HTML while keeping its Liquid markup (values are escaped at render)."""
    protected, found = _protect(source, lambda i: f"\ue000{i}\ue001")
    return _restore(html_escape(protected, quote=False), _TEXT_MARKER, found)


def _with_preheader(html: str, preheader: str) -> str:
    if not preheader.strip():
        return html
    preheader = _text_as_html(preheader.strip())
    hidden = (
        '<div style="display:none;max-height:0;overflow:hidden;mso-hide:all;font-size:1px;'
        'line-height:1px;color:transparent;opacity:0">'
        f"{preheader}{'&#847;&zwnj;&nbsp;' * 30}</div>"
    )
    match = _BODY_OPEN.search(html)
    if match is None:
        return hidden + html
    return html[: match.end()] + hidden + html[match.end() :]


def _lf(source: str) -> str:
    return source.replace("\r\n", "\n").replace("\r", "\n")


def _attachments_checked(attachments: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    files = tuple(dict(a) for a in attachments)
    if not files:
        return files
    from django.conf import settings

    if len(files) > settings.TEMPLATE_ATTACHMENTS_MAX_FILES:
        raise TemplateError(
            f"{len(files)} files attached; at most {settings.TEMPLATE_ATTACHMENTS_MAX_FILES} are allowed",
            part="attachments",
        )
    total = sum(int(a["size"]) for a in files)
    limit = settings.TEMPLATE_ATTACHMENTS_MAX_BYTES
    if total > limit:
        raise TemplateError(
            f"the attachments total {total / 1048576:.1f} MB; a message may carry at most "
            f"{limit / 1048576:.1f} MB of attachments",
            part="attachments",
        )
    return files


def _body_html(source_format: str, html: str, layout_html: str | None) -> tuple[str, str | None]:
    """The body as HTML (and the layout it goes into) for a body written in `source_format`."""
    from templates.formats import HTML, MARKDOWN, MARKDOWN_FRAME, FormatError, body_to_html

    if source_format == HTML:
        return html, layout_html
    if layout_html is not None and source_format != MARKDOWN:
        raise TemplateError(
            "MJML and block templates are whole documents: they cannot go into a base layout", part="layout"
        )
    try:
        body = body_to_html(source_format, html)
    except FormatError as exc:
        raise TemplateError(str(exc), part="html") from None
    if source_format == MARKDOWN and layout_html is None:
        layout_html = MARKDOWN_FRAME
    return body, layout_html


def compile_template(
    *,
    subject: str,
    html: str,
    text: str | None = None,
    preheader: str = "",
    layout_html: str | None = None,
    source_format: str = "html",
    attachments: Iterable[Mapping[str, Any]] = (),
) -> CompiledTemplate:
    """Validate, inline and split a template; raises TemplateError naming the part, line and column.

    `layout_html`, when given, is a base layout whose `{{ content }}` receives `html`.
    `source_format` says what `html` holds: HTML, or MJML, Markdown or a block document, which
    become HTML first (templates.formats). `attachments` are files sent with every message
    (their metadata; the bytes stay in media storage), bounded in number and total size.
    """
    files = _attachments_checked(attachments)
    # Browsers post CR LF; Liquid writes LF. One convention from here on.
    html, preheader = _lf(html), _lf(preheader)
    text = _lf(text) if text is not None else None
    layout_html = _lf(layout_html) if layout_html is not None else None
    subject = subject.strip()
    if not subject:
        raise TemplateError("a subject is required", part="subject")
    if not html.strip():
        raise TemplateError("an HTML body is required", part="html")
    if len(subject) > MAX_SUBJECT:
        raise TemplateError(
            f"too long: {len(subject):,} characters (the limit is {MAX_SUBJECT})", part="subject"
        )
    if any(ch in subject for ch in _LINE_BREAKS):
        raise TemplateError("the subject must be one line", part="subject", line=1, column=1)
    html, layout_html = _body_html(source_format, html, layout_html)
    # Each part is checked on its own source so line and column point into what the author wrote.
    _parse(TEXT_ENV, subject, "subject")
    _parse(TEXT_ENV, preheader, "preheader")
    _parse(HTML_ENV, html, "html")
    if text is not None and text.strip():
        _parse(TEXT_ENV, text, "text")
    else:
        text = None
    if layout_html is not None:
        _parse(HTML_ENV, layout_html, "layout")
        if not re.search(r"\{\{-?\s*content\s*-?\}\}", layout_html):
            raise TemplateError("the layout has no {{ content }} placeholder", part="layout")
        html = re.sub(r"\{\{-?\s*content\s*-?\}\}", lambda _: html, layout_html, count=1)

    full_html = inline_css(_with_preheader(html, preheader))
    full_text = text if text is not None else html_to_text(full_html)

    parsed = {
        "subject": _parse(TEXT_ENV, subject, "subject"),
        "html": _parse(HTML_ENV, full_html, "html"),
        "text": _parse(TEXT_ENV, full_text, "text"),
    }
    fields: set[str] = set()
    for template in parsed.values():
        fields |= {str(v) for variables in template.analyze().globals.values() for v in variables}
    slots: dict[Slot, int] = {}
    segments = {part: _segments(template, slots) for part, template in parsed.items()}
    uses_logic = any(s is None for s in segments.values())
    compiled = CompiledTemplate(
        subject=subject,
        html=full_html,
        text=full_text,
        uses_logic=uses_logic,
        fields=frozenset(fields),
        segments={} if uses_logic else segments,  # type: ignore[arg-type]
        slots=() if uses_logic else tuple(sorted(slots, key=slots.__getitem__)),
        attachments=files,
    )
    if uses_logic:
        _trial_render(compiled)
    return compiled


def _trial_render(compiled: CompiledTemplate) -> None:
    """Render once with sample data so a loop or output that always breaks a limit fails at save time.

    Only resource limits count here: other errors may depend on a real recipient's data.
    """
    try:
        compiled.render(sample_context())
    except TemplateError as exc:
        if exc.limit:
            raise


def slot_values(
    context: Mapping[str, Any], slots: Iterable[tuple[tuple, str | None]]
) -> tuple[list[str], list[str]]:
    """Each slot's value as text, raw and HTML-escaped, with Liquid's semantics (the fast path's core;
    delivery's byte-segment builder calls it too)."""
    raw: list[str] = []
    escaped: list[str] = []
    for path, default in slots:
        value: Any = context
        for key in path:
            try:
                value = value[key]
            except (KeyError, IndexError, TypeError):
                value = None
                break
        # Liquid's `default`: nil, false and empty strings, lists and hashes take the default; 0 does not.
        if default is not None and (
            value is None or value is False or (not value and isinstance(value, str | list | dict))
        ):
            # The default is the author's own literal: Liquid outputs it unescaped, and so do we.
            raw.append(default)
            escaped.append(default)
            continue
        value = value if type(value) is str else to_liquid_string(value, False)
        if "\r" in value:  # Liquid's output stream turns CR LF and CR into LF; match it
            value = value.replace("\r\n", "\n").replace("\r", "\n")
        raw.append(value)
        escaped.append(_escape(value))
    return raw, escaped
