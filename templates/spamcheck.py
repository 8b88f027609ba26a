"""A pre-send content check: SpamAssassin (Debian's package) scores a message, locally.

`spamassassin -L` runs only the local rules: no DNS blocklists, no Razor/Pyzor, nothing leaves the
machine; Bayes is off (it would learn from our own previews) and no preferences file is created
(`-x`), so the check writes nothing outside the repository's var/. One run loads the whole rule
set (1-5 s), so results are cached by the message's hash: the same preview is scored once.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from django.core.cache import cache

from mailplatform.paths import ensure_var

MAX_MESSAGE_BYTES = 2 * 1024 * 1024  # SpamAssassin itself skips bigger mail (its default 500 KB)
TIMEOUT_SECONDS = 60
CACHE_SECONDS = 24 * 3600
ARGS = ["-L", "-x", "-t", "--cf=use_bayes 0", "--cf=bayes_auto_learn 0", "--cf=report_safe 0"]

# SpamAssassin's own descriptions are terse ("BODY: HTML: images with 0-400 bytes of words"):
# the rules a campaign most often trips, said so that a marketer knows what to change.
PLAIN_WORDS: dict[str, str] = {
    "MIME_HTML_ONLY": "The message has only an HTML part: give it a plain-text version too.",
    "HTML_IMAGE_ONLY_04": "Almost all images and hardly any text.",
    "HTML_IMAGE_ONLY_08": "Almost all images and hardly any text.",
    "HTML_IMAGE_ONLY_12": "Mostly images with little text.",
    "HTML_IMAGE_ONLY_16": "Mostly images with little text.",
    "HTML_IMAGE_ONLY_20": "Mostly images with little text.",
    "HTML_IMAGE_ONLY_24": "Mostly images with little text.",
    "HTML_IMAGE_ONLY_28": "More images than text.",
    "HTML_IMAGE_RATIO_02": "Much more image than text: add words.",
    "HTML_IMAGE_RATIO_04": "Much more image than text: add words.",
    "HTML_IMAGE_RATIO_06": "More image than text: add words.",
    "HTML_IMAGE_RATIO_08": "More image than text.",
    "HTML_SHORT_LINK_IMG_1": "A short message whose image is a link.",
    "HTML_SHORT_LINK_IMG_2": "A short message whose image is a link.",
    "HTML_SHORT_LINK_IMG_3": "A short message whose image is a link.",
    "SHORT_SHORTNER": "A short message that is little more than a link through a URL shortener.",
    "URI_SHORTENER": "A link goes through a URL shortener: link to your own site instead.",
    "SUBJ_ALL_CAPS": "The subject is written in capitals.",
    "SUBJ_EXCLAIM": "The subject has several exclamation marks.",
    "UPPERCASE_50_75": "Half or more of the text is in capitals.",
    "UPPERCASE_75_100": "Most of the text is in capitals.",
    "HTML_FONT_LOW_CONTRAST": "Text in a colour close to its background (it looks hidden).",
    "HTML_TEXT_INVISIBLE_FONT": "Text too small or too faint to read (it looks hidden).",
    "HTML_TEXT_INVISIBLE_STYLE": "Text styled to be invisible.",
    "HTML_FONT_SIZE_TINY": "Text in a tiny font.",
    "HTML_FONT_SIZE_HUGE": "Text in a huge font.",
    "HTML_MIME_NO_HTML_TAG": "The HTML part has no <html> tag.",
    "MPART_ALT_DIFF": "The plain-text and HTML versions say different things.",
    "MPART_ALT_DIFF_COUNT": "The plain-text and HTML versions say different things.",
    "FREEMAIL_FROM": "The From address is at a free mail provider: send from your own domain.",
    "FREEMAIL_REPLYTO": "The Reply-To address is at a free mail provider.",
    "LOTS_OF_MONEY": "It speaks of large sums of money.",
    "MONEY_BACK": "It promises money back.",
    "ADVANCE_FEE_2_NEW_MONEY": "It reads like an advance-fee scam.",
    "T_REMOTE_IMAGE": "It loads images from the web (normal for newsletters; worth nothing).",
    "HTML_MESSAGE": "It has an HTML part (normal; worth nothing).",
    "EMPTY_MESSAGE": "The message has no text.",
    "MISSING_SUBJECT": "The subject is empty.",
    "EMPTY_SUBJECT": "The subject is empty.",
    "DEAR_SOMETHING": "It opens with a generic \u201cDear ...\u201d.",
    "CLICK_BELOW": "It asks the reader to click below.",
    "BODY_SINGLE_WORD": "The body is a single word.",
}
_PREFIX = re.compile(r"^(?:BODY|HEADER|URI|RAW|MIME|RAWBODY|FULL|META|HTML|Informational):\s*", re.I)
_LINE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*\S)?\s*$")
_TOTAL = re.compile(r"Content analysis details:\s+\((-?[\d.]+) points, (-?[\d.]+) required\)")


@dataclass(frozen=True)
class SpamRule:
    name: str
    points: float
    description: str

    @property
    def plain(self) -> str:
        if self.name in PLAIN_WORDS:
            return PLAIN_WORDS[self.name]
        text = _PREFIX.sub("", _PREFIX.sub("", self.description)).strip()
        return text[:1].upper() + text[1:] if text else self.name


@dataclass
class SpamReport:
    available: bool
    score: float = 0.0
    required: float = 5.0
    rules: list[SpamRule] = field(default_factory=list)
    error: str = ""

    @property
    def is_spam(self) -> bool:
        return self.available and not self.error and self.score >= self.required

    @property
    def counting(self) -> list[SpamRule]:
        return [r for r in self.rules if r.points != 0]

    @property
    def informational(self) -> list[SpamRule]:
        return [r for r in self.rules if r.points == 0]


def spamassassin_path() -> str | None:
    return shutil.which("spamassassin")


def parse_report(output: str) -> tuple[float, float, list[SpamRule]]:
    """The score, the threshold and each rule from `spamassassin -t`'s "Content analysis details"."""
    total = _TOTAL.search(output)
    if not total:
        raise ValueError("SpamAssassin printed no report")
    rules: list[SpamRule] = []
    table = output[total.end() :].split("\n")
    started = False
    for line in table:
        if line.startswith("----"):
            started = True
            continue
        if not started:
            continue
        if not line.strip():
            break
        match = _LINE.match(line)
        if match:
            rules.append(SpamRule(match.group(2), float(match.group(1)), match.group(3) or ""))
        elif rules and line.startswith(" "):  # a description wrapped onto the next line
            last = rules[-1]
            rules[-1] = SpamRule(last.name, last.points, f"{last.description} {line.strip()}")
    rules.sort(key=lambda r: (-r.points, r.name))
    return float(total.group(1)), float(total.group(2)), rules


def spam_check(raw: bytes) -> SpamReport:
    """Score one whole message (headers and body, as it would be sent)."""
    program = spamassassin_path()
    if program is None:
        return SpamReport(
            available=False, error="SpamAssassin is not installed (apt-get install spamassassin)."
        )
    raw = raw[:MAX_MESSAGE_BYTES]
    key = "spamcheck:" + hashlib.sha256(raw).hexdigest()
    cached = cache.get(key)
    if cached is not None:
        return cached
    home = ensure_var() / "spamassassin"  # its HOME: anything it writes stays in var/
    home.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [program, *ARGS],
            input=raw,
            capture_output=True,
            timeout=TIMEOUT_SECONDS,
            env={"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"},
            check=False,
        )
        score, required, rules = parse_report(done.stdout.decode("utf-8", errors="replace"))
    except subprocess.TimeoutExpired:
        return SpamReport(available=True, error=f"SpamAssassin took longer than {TIMEOUT_SECONDS} s.")
    except (OSError, ValueError) as exc:
        return SpamReport(available=True, error=f"SpamAssassin failed: {exc}")
    report = SpamReport(available=True, score=score, required=required, rules=rules)
    cache.set(key, report, CACHE_SECONDS)
    return report
