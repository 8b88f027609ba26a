"""Checks shown to the marketer before a send: pure functions of a compiled template."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from html.parser import HTMLParser

from templates.compiler import CompiledTemplate
from templates.context import CONTACT_FIELDS, ORG_FIELDS, URL_NAMES

GMAIL_CLIP_BYTES = 102 * 1024
# Every contact's merge data has these (contacts.selectors.contact_merge_data), custom fields besides.
CONTACT_STANDARD = (*CONTACT_FIELDS, "language", "timezone")
_ABSOLUTE = re.compile(r"^(https?:|mailto:|tel:|sms:|#|cid:|data:image/)", re.IGNORECASE)
_STARTS_WITH_LIQUID = re.compile(r"^\s*(\{\{|\{%)")


@dataclass(frozen=True)
class CheckResult:
    code: str
    message: str
    severity: str  # "error" | "warning" | "info"

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "severity": self.severity}


class _LinkScanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images_without_alt: list[str] = []
        self.relative_links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            src = values.get("src") or ""
            if values.get("alt") is None:
                self.images_without_alt.append(src)
            if src and not _ABSOLUTE.match(src) and not _STARTS_WITH_LIQUID.match(src):
                self.relative_links.append(src)
        elif tag == "a":
            href = values.get("href")
            if href is not None and not _ABSOLUTE.match(href.strip()) and not _STARTS_WITH_LIQUID.match(href):
                self.relative_links.append(href)


class _EmptyLinks(HTMLParser):
    """<a> tags whose href is missing a value or blank, with the text they show."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.empty: list[str] = []
        self._open: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        names = {name for name, _ in attrs}
        href = dict(attrs).get("href")
        if "href" in names and not (href or "").strip():
            self._open = []
            self.empty.append("")

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.empty[-1] = " ".join("".join(self._open).split()) or "(a link without text)"
            self._open = None


def empty_links(
    compiled: CompiledTemplate, custom_fields: Iterable[str] | None = None, *, transactional: bool = False
) -> list[str]:
    """The texts of links whose address is empty in a real message: rendered with the URLs every
    message carries (unsubscribe, preferences, view in browser), a sample contact and a value for
    every declared custom field (and, for transactional mail, for every top-level name the send's
    data may bring), so only an empty href or a field nothing fills is left empty."""
    from templates.compiler import TemplateError
    from templates.context import RESERVED, SAMPLE_CONTACT, SAMPLE_ORG, SAMPLE_URLS, recipient_context

    contact = {**SAMPLE_CONTACT, **{name: "sample" for name in custom_fields or ()}}
    extra = {}
    if transactional:
        extra = {
            path: "https://example.com/sample"
            for path in compiled.fields
            if "." not in path and path not in RESERVED and path.isidentifier()
        }
    try:
        html = compiled.render(
            recipient_context(contact=contact, urls=SAMPLE_URLS, extra=extra, org=SAMPLE_ORG)
        ).html
    except TemplateError:
        return []  # the render's own error is reported where the template is compiled
    scanner = _EmptyLinks()
    scanner.feed(html)
    scanner.close()
    return scanner.empty


def _shorten(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(repr(i[:80]) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def unknown_fields(fields: Iterable[str], custom_fields: Iterable[str] | None = None) -> list[str]:
    """Fields a template uses that no recipient context provides.

    Without `custom_fields` any contact.<name> counts as a possible custom field.
    """
    known_contact = set(CONTACT_STANDARD) | set(custom_fields or ())
    unknown = []
    for path in fields:
        head, _, rest = path.partition(".")
        if head == "contact":
            name = re.split(r"[.\[]", rest, maxsplit=1)[0]
            if not name or (custom_fields is not None and name not in known_contact):
                unknown.append(path)
        elif head == "org":
            if rest.split(".")[0] not in ORG_FIELDS:
                unknown.append(path)
        elif head not in URL_NAMES:
            unknown.append(path)
    return sorted(unknown)


def _with_suggestion(path: str, custom_fields: Iterable[str] | None) -> str:
    """`contact.fist_name (did you mean contact.first_name?)` when a known field is close."""
    head, _, rest = path.partition(".")
    if head == "contact":
        name = re.split(r"[.\[]", rest, maxsplit=1)[0]
        known = [*CONTACT_STANDARD, *(custom_fields or ())]
        prefix = "contact."
    else:
        name, known, prefix = head, list(URL_NAMES), ""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    return f"{path} (did you mean {prefix}{close[0]}?)" if close else path


def compiled_checks(
    compiled: CompiledTemplate,
    *,
    custom_fields: Iterable[str] | None = None,
    transactional: bool = False,
) -> list[CheckResult]:
    """What a marketer should fix before sending: an error stops nothing by itself; campaigns decide."""
    results: list[CheckResult] = []
    if "unsubscribe_url" not in compiled.fields and not transactional:
        results.append(
            CheckResult(
                "no_unsubscribe",
                'There is no unsubscribe link: add <a href="{{ unsubscribe_url }}">Unsubscribe</a>. '
                "Marketing mail without one breaks the law in many countries and Gmail's bulk sender rules.",
                "error",
            )
        )
    size = len(compiled.html.encode())
    if size > GMAIL_CLIP_BYTES:
        results.append(
            CheckResult(
                "html_too_large",
                f"The HTML is {size / 1024:.0f} KB; Gmail clips messages over 102 KB "
                "(the rest, often including the unsubscribe link, is hidden).",
                "warning",
            )
        )
    scanner = _LinkScanner()
    scanner.feed(compiled.html)
    scanner.close()
    if scanner.images_without_alt:
        results.append(
            CheckResult(
                "image_without_alt",
                f"{len(scanner.images_without_alt)} image(s) without alt text: "
                f"{_shorten(scanner.images_without_alt)}. Many clients block images; alt text is what they show.",
                "warning",
            )
        )
    if scanner.relative_links:
        results.append(
            CheckResult(
                "relative_link",
                f"{len(scanner.relative_links)} link(s) or image(s) are not absolute URLs: "
                f"{_shorten(scanner.relative_links)}. In an email they lead nowhere; use https://...",
                "warning",
            )
        )
    empty = empty_links(compiled, custom_fields, transactional=transactional)
    if empty:
        hint = " (unless a transactional send passes the data that fills it)" if transactional else ""
        results.append(
            CheckResult(
                "empty_link",
                f"{len(empty)} link(s) lead nowhere, their address is empty in the mail: {_shorten(empty)}{hint}. "
                "Fill in the address, or use a field every message has (e.g. {{ view_in_browser_url }}).",
                "warning" if transactional else "error",
            )
        )
    unknown = unknown_fields(compiled.fields, custom_fields)
    if unknown:
        hint = " (fine if a transactional send passes them as data)" if not transactional else ""
        named = [_with_suggestion(path, custom_fields) for path in unknown]
        results.append(
            CheckResult(
                "unknown_field",
                f"Unknown field(s): {'; '.join(named)}{hint}. They render empty.",
                "warning" if not transactional else "info",
            )
        )
    return results
