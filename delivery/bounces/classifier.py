"""One classifier for every bounce format: RFC 3464/6522 DSNs, RFC 5965 feedback reports,
RFC 3834 auto-replies and the plain-text reports of MTAs that follow none of them.

Pure Python, no database. Every input is hostile: its size, MIME depth and part count are
bounded, and a message that breaks the MIME parser is read as flat text instead.
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parseaddr
from multiprocessing.connection import Connection

from delivery.bounces import rules

log = logging.getLogger(__name__)
MAX_PARSE_BYTES = 2 * 1024 * 1024  # the report is at the top; a 50 MB attachment is not read
MAX_DEPTH = 24
MAX_PARTS = 200
MAX_RECIPIENTS = 100
MAX_DIAGNOSTIC = 500

DSN_TYPES = ("message/delivery-status", "message/global-delivery-status", "text/x-global-delivery-status")
# The email package parses message/* bodies as messages and loses their UTF-8 (RFC 6533) on the
# way; read global delivery status as text so its raw bytes stay ours to decode.
GLOBAL_DSN_RE = re.compile(rb"(?im)^(content-type:\s*)message/global-delivery-status")
ARF_TYPE = "message/feedback-report"
RETURNED_TYPES = ("message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers")

ADDRESS_RE = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)*[A-Za-z0-9-]{1,63}")
ADDRESS_LINE_RE = re.compile(
    r"^\s*(?:[-*•>]\s*)?(?:(?:recipient|to|address|rcpt|failed recipient|original-recipient|"
    r"e-?mail)[^:\n]{0,20}:\s*)?(?:rfc822;\s*)?<?("
    + ADDRESS_RE.pattern
    + r")>?(?:\s*[:.,]|\s*\(|\s+[^\s@]+|\s*$)",
    re.I | re.M,
)
ENHANCED_STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
REPLY_CODE_RE = re.compile(r"(?<![\d.#-])([245][0-5]\d)(?:[ -]|$)")
# Sendmail's per-recipient summary line, "554 <user@host>... reason" (one per failed recipient).
SENDMAIL_SUMMARY_RE = re.compile(
    r"^[ \t]*[45]\d\d[ -](?:[45]\.\d{1,3}\.\d{1,3} )?<(" + ADDRESS_RE.pattern + r")>\.\.\.[ \t]+\S.*$", re.M
)
SUMMARY_STOP_RE = re.compile(r"\s*(?:[245]\d\d\b|<<<|>>>|while talking|\.\.\. while talking)", re.I)
LEADING_REPLY_CODE_RE = re.compile(
    r"(?:^|said:?|reason:?|<<<|reply:?|response:?|error:?|smtp;|\()\s*[-:]?\s*[245][0-5]\d(?:[ -]|$)", re.I
)
SENDER_CONTEXT_RE = re.compile(r"(?:mail from|envelope-from|sender|from)\s*[:=]?\s*<?$", re.I)
SPACE_RE = re.compile(r"\s+")


@dataclass(frozen=True)
class BounceRecipient:
    address: str
    action: str
    status: str
    diagnostic: str
    reason: str
    kind: str
    reply_code: str = ""

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)  # every field is a str: no deep copy (asdict) needed


@dataclass
class BounceReport:
    """What one inbound message says. `format` is dsn, arf, auto_reply, text or none."""

    format: str
    recipients: list[BounceRecipient] = field(default_factory=list)
    envelope_to: list[str] = field(default_factory=list)
    original_headers: dict[str, str] = field(default_factory=dict)
    feedback_type: str = ""
    subject: str = ""
    errors: list[str] = field(default_factory=list)


# --- Text helpers ---


def normalise_line_ends(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(text: str) -> str:
    """Lowercased with every index kept, so a match in it is a match in `text`. Searching this
    without re.I is several times faster than re.I over the original, and these searches run over
    every report."""
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else text.translate(ASCII_LOWER)


def _collapse(text: str) -> str:
    return SPACE_RE.sub(" ", text).strip()


def _decode_header(value: object) -> str:
    if value is None:
        return ""
    try:
        return str(make_header(decode_header(str(value))))
    except Exception:  # broken encoded-words are common in bounces; keep the raw text
        return str(value)


def _unescape(text: str) -> str:
    """The email package keeps undecodable 8-bit bytes as surrogates; UTF-8 is the likely truth."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeError:
        return text


def _payload_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        inner = part.get_payload()
        return inner if isinstance(inner, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def _strip_html(text: str) -> str:
    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", text)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</tr>", "\n", text)
    text = re.sub(r"<[^>]+>", " ", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").replace("&nbsp;", " ")


def clean_address(value: str) -> str:
    value = value.strip()
    if ";" in value:
        kind, _, rest = value.partition(";")
        if " " not in kind.strip():
            value = rest.strip()
    value = value.strip().strip("<>").strip()
    match = re.search(r"<([^<>]+@[^<>]+)>", value)
    if match:
        value = match.group(1)
    return value.strip().strip(".,;:").lower() if "@" in value else value.strip()


# --- MIME walking without recursion ---


def _walk(message: Message) -> list[tuple[Message, int, bool]]:
    """(part, depth, inside a returned message) in document order, bounded."""
    out: list[tuple[Message, int, bool]] = []
    stack: list[tuple[Message, int, bool]] = [(message, 0, False)]
    while stack and len(out) < MAX_PARTS:
        part, depth, returned = stack.pop()
        out.append((part, depth, returned))
        if depth >= MAX_DEPTH or not part.is_multipart():
            continue
        ctype = part.get_content_type()
        inner_returned = returned or ctype in RETURNED_TYPES or ctype in DSN_TYPES or ctype == ARF_TYPE
        children = part.get_payload()
        if isinstance(children, list):
            for child in reversed(children):
                if isinstance(child, Message):
                    stack.append((child, depth + 1, inner_returned))
    return out


def _parse_fields(text: str) -> list[list[tuple[str, str]]]:
    """Header-like blocks ("Name: value", continuation lines) separated by blank lines."""
    blocks: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for line in text.split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
                current = []
            continue
        if line[0] in " \t" and current:
            name, value = current[-1]
            current[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,60}", name.strip()):
            current.append((name.strip().lower(), value.strip()))
    if current:
        blocks.append(current)
    return blocks


def _dsn_text(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):  # the email package parses message/* payloads as messages
        texts = []
        for block in payload:
            text = "\n".join(f"{k}: {v}" for k, v in block.items())
            body = block.get_payload() if isinstance(block, Message) else None
            if isinstance(body, str) and body.strip():
                text += "\n\n" + body
            texts.append(text)
        return _unescape("\n\n".join(texts))
    return _payload_text(part)


# --- Reason and kind ---


def find_status(text: str) -> str:
    best = ""
    for match in ENHANCED_STATUS_RE.finditer(text):
        code = ".".join(match.groups())
        if code[0] == "2":
            continue  # a success code in a transcript says nothing about the failure
        if not best or (best.endswith(".0.0") and not code.endswith(".0.0")):
            best = code
        if not best.endswith(".0.0"):
            break
    return best


def find_reply_code(text: str) -> str:
    match = REPLY_CODE_RE.search(text)
    return match.group(1) if match else ""


def _with_needles(
    table: list[tuple[str, re.Pattern[str]]],
) -> list[tuple[str, re.Pattern[str], tuple[str, ...] | None]]:
    return [(name, pattern, rules.needles(pattern)) for name, pattern in table]


def _first_match(table: list[tuple[str, re.Pattern[str], tuple[str, ...] | None]], text: str) -> str:
    """The name of the first pattern that matches `text` ("" for none). A pattern none of whose
    needles (rules.needles) is in the text cannot match it and is not searched."""
    for name, pattern, needles in table:
        if needles is not None and not any(needle in text for needle in needles):
            continue
        if pattern.search(text):
            return name
    return ""


# The refusal names the sender's domain (the From: header or envelope sender), not the recipient's.
SENDER_DOMAIN_RE = re.compile(r"\bfrom:? domain\b|\bsender(?:'s)? domain\b|valid from:", re.I)
AFTER_DATA_RE = re.compile(
    r"(?:after|end of|reply to|response to) (?:the )?data\b|>>> data|\bdata command", re.I
)
# The SMTP command a refusal answered, as MTAs report it: Postfix "(in reply to RCPT TO command)",
# Exim "after RCPT TO:<...>", Sendmail/Courier transcripts ">>> DATA" then "<<< 550 ...".
# Searched in fold()ed text.
PHASE_RES: list[tuple[str, re.Pattern[str]]] = [
    (
        "data",
        re.compile(
            r"(?:after|end of|reply to|response to) (?:the )?data\b|\bdata command|smtp command[-:\s]*data\b",
        ),
    ),
    # Postfix's "Recipient address rejected" comes from its RCPT TO restrictions.
    (
        "rcpt",
        re.compile(
            r"(?:after|reply to|response to) rcpt\b|\brcpt to command|\[rcpt_to\]|recipient address rejected|"
            r"smtp:rcpt\b|progress was rcpt to|"
            # "550 <user@host>: reason" is how Postfix and its kin answer RCPT TO for one mailbox
            r"\b[45]\d\d[: -]+(?:[45]\.\d{1,3}\.\d{1,3} )?<[^<>\s@]+@[^<>\s]+>:",
        ),
    ),
    ("mail", re.compile(r"(?:after|reply to|response to) mail\b|\bmail from command")),
]
PHASE_RES_NEEDLED = _with_needles(PHASE_RES)
TRANSCRIPT_COMMAND_RE = re.compile(r"^\s*>>>\s*(data|rcpt|mail|quit|rset|helo|ehlo|\.)(?![a-z])")
TRANSCRIPT_REPLY_RE = re.compile(r"^\s*<<<\s*([45])\d\d")


def _transcript_phase(address: str, text: str, diagnostic: str = "") -> str:
    """The command a session transcript (">>> CMD" / "<<< reply") shows this address's refusal
    answering, "" when no refusal in it is this address's. A reply is ours when it names the
    address, when its command named it (">>> RCPT To:<address>"), or when it is the diagnostic.

    With PIPELINING, Sendmail sends RCPT TO and DATA in one write and labels every reply with the
    last command written: when one command gets several replies, all but the last one answered the
    RCPT TOs before it (">>> DATA", "<<< 550 unknown user", "<<< 554 no valid recipients")."""
    lines = text.split("\n")[:400]
    if not any(TRANSCRIPT_COMMAND_RE.match(line) for line in lines):
        return ""
    lowered = address.lower()
    said = fold(_collapse(diagnostic))[:40].strip()
    # (command, command line, [reply lines]) per command written
    sent: list[tuple[str, str, list[str]]] = []
    for line in lines:
        command = TRANSCRIPT_COMMAND_RE.match(line)
        if command:
            sent.append((command.group(1), line, []))
        elif sent and TRANSCRIPT_REPLY_RE.match(line):
            sent[-1][2].append(line)
    for command, command_line, replies in sent:
        for index, reply in enumerate(replies):
            if not TRANSCRIPT_REPLY_RE.match(reply):
                continue
            ours = (lowered and (lowered in reply or lowered in command_line)) or (
                len(said) >= 12 and said in _collapse(reply)
            )
            if not ours:
                continue
            if command == "data" and index < len(replies) - 1:
                return "rcpt"  # pipelined: an earlier reply to one write answered a RCPT TO
            if command == ".":
                return "data"  # the reply to the message itself
            return command if command in ("data", "rcpt", "mail") else ""
    return ""


def smtp_phase(address: str, text: str, diagnostic: str = "") -> str:
    """ "data", "rcpt", "mail" or "" (unknown): which command the remote refusal answered. A
    transcript shows it best; else the words MTAs use to say it."""
    if not text:
        return ""
    text = fold(text)
    phase = _transcript_phase(address, text, diagnostic)
    if phase:
        return phase
    return _first_match(PHASE_RES_NEEDLED, text)


# What a bare refusal of a recipient says, beyond which the words would have a reason of their own.
WORDS_BEYOND_REJECTED_RE = re.compile(
    r"\b[245]\d\d\b|[245]\.\d{1,3}\.\d{1,3}|<[^<>]*>|\S+@\S+|recipient address rejected|"
    r"\(?in reply to rcpt to command\)?|[\s.,:;()-]+"
)


TEXT_RULES_NEEDLED = _with_needles(rules.TEXT_RULES)


def reason_for(status: str, diagnostic: str, reply_code: str = "", phase: str = "") -> str:
    text = diagnostic.lower()
    reason = _first_match(TEXT_RULES_NEEDLED, text)
    if reason:
        return _refine(reason, status, text, phase, reply_code)
    if status and not status[2:].startswith("0.0"):
        subject_detail = status.split(".", 1)[1]
        if subject_detail in rules.STATUS_RULES:
            return rules.STATUS_RULES[subject_detail]
        return rules.STATUS_SUBJECT_DEFAULTS.get(subject_detail.split(".")[0], "undefined")
    if reply_code in rules.REPLY_RULES:
        return rules.REPLY_RULES[reply_code]
    if (
        reply_code == "550"
        and phase == "rcpt"
        and not WORDS_BEYOND_REJECTED_RE.sub("", text).strip(" .,:;()")
    ):
        # RFC 5321 4.2.3: 550 to RCPT TO is "mailbox unavailable" when the words add nothing
        # ("550 <user@host>: Recipient address rejected. (in reply to RCPT TO command)")
        return "userunknown"
    return "undefined"


def _refine(reason: str, status: str, text: str, phase: str = "", reply_code: str = "") -> str:
    """An "unknown user" is proof that the mailbox does not exist only with an addressing code
    (X.1.x), the MTA's own directory lookup, or a refusal that answered RCPT TO. Said after DATA,
    or with no code and no phase, it may be a recipient's filter speaking (Japanese carriers,
    content filters answer so to refuse content): "filtered", soft."""
    if reason in ("userunknown", "hostunknown") and (
        phase == "mail" or status[2:] in ("1.7", "1.8") or SENDER_DOMAIN_RE.search(text)
    ):
        return "rejected"  # MAIL FROM, X.1.7/X.1.8 or the sender's domain: about the sender, not ours
    if reason in ("userunknown", "hostunknown") and reply_code == "501" and status[2:4] != "1.":
        return "syntaxerror"  # 501 is a syntax error in a command's arguments, not a lookup
    if reason != "userunknown":
        return reason
    if rules.FILTER_DISGUISED_AS_UNKNOWN.search(text):
        return "filtered"  # even when a relaying MTA has dressed it in an X.1.x code of its own
    if status[2:4] == "1." or rules.MAILBOX_LOOKUP_FAILED.search(text):
        return reason
    if phase == "rcpt" and not AFTER_DATA_RE.search(text):
        return reason
    return "filtered"


def classify_refusal(address: str, code: int, reply: str, stage: str) -> BounceRecipient:
    """A relay's 5xx to RCPT or to the data during sending, classified like a DSN's line."""
    diagnostic = f"{code} {reply}".strip()[:2000]
    status = find_status(diagnostic)
    reason = reason_for(status, diagnostic, str(code), stage)
    if stage == "data" and rules.REASON_KIND.get(reason) == rules.HARD:
        reason = "filtered"  # refused after the content was seen: the content, not the address
    kind = kind_for(reason, status, "failed", str(code))
    return BounceRecipient(
        address=address,
        action="failed",
        status=status,
        diagnostic=diagnostic,
        reason=reason,
        kind=kind,
        reply_code=str(code),
    )


def kind_for(reason: str, status: str, action: str, reply_code: str = "", final: bool = False) -> str:
    """`final`: a DSN said "Action: failed" itself (not inferred from prose)."""
    if action == "delayed":
        return rules.DELAYED
    kind = rules.REASON_KIND.get(reason, rules.UNKNOWN)
    # A "hard" reason given with a temporary code is not final (RFC 3463 class 4) -- unless the
    # MTA has given up on it and the code itself says the address does not exist (4.1.1 until
    # the queue lifetime ran out: a receiver configured to soft-reject unknown users).
    temporary = status.startswith("4") or (not status and reply_code.startswith("4"))
    if kind == rules.HARD and temporary and not (final and reason == "userunknown" and status[2:4] == "1."):
        return rules.SOFT
    return kind


DELAY_WORDS_RE = re.compile(
    r"will (?:continue to |keep )?(?:retry|try)|still (?:trying|being retried)|has been delayed|"
    r"delivery (?:is |has been )?delayed|not yet been delivered|no action is required|"
    r"warning: message|will be retried|retrying",
    re.I,
)
GIVE_UP_RE = re.compile(
    r"not going to try again|giving up|gave up|too long in the queue|will not (?:be )?retr|"
    r"no (?:more|further) (?:retries|attempts)|permanent(?:ly)? fail|has been returned|returned to sender",
    re.I,
)


def _phase_for(address: str, diagnostic: str, context: str) -> str:
    """The phase from a transcript of this address's session, else the words beside it."""
    phase = _transcript_phase(address, fold(context[:20000]), diagnostic)
    if phase:
        return phase
    near = _context_for(address, context) if address and context else ""
    return smtp_phase(address, f"{diagnostic}\n{near}") or smtp_phase(address, context[:20000], diagnostic)


def _recipient(address: str, action: str, status: str, diagnostic: str, context: str = "") -> BounceRecipient:
    final = action == "failed"
    diagnostic = _collapse(diagnostic)[:MAX_DIAGNOSTIC]
    # "Status: 5.4.4 (Illegal host/domain name found)": the comment is the MTA's own diagnosis.
    code, _, comment = status.strip().partition(" ")
    status = code if ENHANCED_STATUS_RE.fullmatch(code) else ""
    if not diagnostic and status:
        diagnostic = _collapse(comment.strip("() "))[:MAX_DIAGNOSTIC]
    found = find_status(diagnostic)
    if found and (not status or (status.endswith(".0.0") and found[0] == status[0])):
        status = found
    reply_code = find_reply_code(diagnostic) or find_reply_code(context)
    phase = _phase_for(address, diagnostic, context)
    reason = reason_for(status, diagnostic, reply_code, phase)
    if reason == "undefined" and context:
        reason = reason_for(status or find_status(context), _collapse(context)[:4000], reply_code, phase)
        if not status:
            status = find_status(context)
    if reason == "undefined" and not status:
        # Some receiving services word their refusals so variously (and in so many languages)
        # that only who they are tells what they mean: a mailing-list host refusing a poster.
        reason = rules.RECIPIENT_DOMAIN_REASON.get(address.rpartition("@")[2], reason)
    if not action:
        # A plain-text report with a temporary code is a delay warning only when it says it will
        # go on trying; one that returns the message ("I'm not going to try again") is final.
        temporary = status.startswith("4") or (not status and reply_code.startswith("4"))
        warning = DELAY_WORDS_RE.search(f"{diagnostic}\n{context}") and not GIVE_UP_RE.search(
            f"{diagnostic}\n{context}"
        )
        action = "delayed" if temporary and reason != "expired" and warning else "failed"
    return BounceRecipient(
        address=address,
        action=action,
        status=status,
        diagnostic=diagnostic,
        reason=reason,
        kind=kind_for(reason, status, action, reply_code, final),
        reply_code=reply_code,
    )


# --- The formats ---


def _parse_dsn(texts: list[str], human: str) -> list[BounceRecipient]:
    records: list[dict[str, str]] = []
    for text in texts:
        for block in _parse_fields(text):
            current: dict[str, str] = {}
            for name, value in block:
                if name in current and ("final-recipient" in current or "original-recipient" in current):
                    records.append(current)  # fields of the next recipient without a blank line
                    current = {}
                current.setdefault(name, value)
            if "final-recipient" in current or "original-recipient" in current:
                records.append(current)
    out: list[BounceRecipient] = []
    records = records[:MAX_RECIPIENTS]
    addresses = [_dsn_address(record) for record in records]
    for record, address in zip(records, addresses, strict=True):
        action = record.get("action", "").strip().lower().split(" ")[0]
        if action in ("delivered", "relayed", "expanded"):
            continue
        diagnostic = clean_address_type(record.get("diagnostic-code", ""))
        context = (
            _context_for(address, human, tuple(addresses))
            if not diagnostic or not find_status(diagnostic)
            else ""
        )
        if not diagnostic and not record.get("status", "").strip().partition(" ")[2] and context:
            # No Diagnostic-Code and no status comment: the report's own lines about this address
            # (an MTA often says there what its local delivery agent answered) are the diagnosis.
            diagnostic = context
        found = _recipient(address, action, record.get("status", ""), diagnostic, context or human)
        if len(records) == 1 and found.kind == rules.HARD:
            found = _unless_contradicted(found, human, context)
        out.append(found)
    return out


def _unless_contradicted(found: BounceRecipient, human: str, context: str) -> BounceRecipient:
    """A report about one recipient whose own words say the mailbox exists ("account is
    disabled", "not enough disk space") while its codes say it does not contradicts itself: that
    is no proof, so the words' soft reason stands."""
    rest = human.replace(context, " ") if context else human
    said = reason_for("", _collapse(rest)[:4000])
    if said in ("mailboxfull", "suspend"):
        return BounceRecipient(
            found.address, found.action, found.status, found.diagnostic, said, rules.SOFT, found.reply_code
        )
    return found


def _dsn_address(record: dict[str, str]) -> str:
    """Original-Recipient when the DSN gives one (RFC 3464 2.3.1: the address as the sender gave
    it, i.e. the one we sent to, before any alias or forward rewrote it into Final-Recipient)."""
    for name in ("original-recipient", "final-recipient"):
        value = record.get(name, "")
        kind, sep, _rest = value.partition(";")
        if sep and kind.strip().lower() not in ("rfc822", "utf-8"):
            continue  # an X.400 or local address type is not a mail address we could have sent to
        address = clean_address(value)
        if "@" in address and not address.startswith("@"):
            return address
    return clean_address(record.get("final-recipient") or record.get("original-recipient", ""))


def clean_address_type(value: str) -> str:
    kind, sep, rest = value.partition(";")
    if sep and re.fullmatch(r"\s*(?:smtp|x-[a-z0-9-]+|x-unix|unix|mail|x-postfix)\s*", kind, re.I):
        return rest.strip()
    return value.strip()


def _context_for(address: str, text: str, others: tuple[str, ...] = ()) -> str:
    """The lines of a human-readable report that speak of one address (up to the next one)."""
    if not address or not text:
        return ""
    lines = text.split("\n")
    lowered = address.lower()
    for index, line in enumerate(lines):
        if lowered in line.lower():
            chunk: list[str] = [line]
            for following in lines[index + 1 : index + 12]:
                if not following.strip() and len(chunk) > 2:
                    break
                folded = following.lower()
                if any(other in folded for other in others if other != lowered):
                    break
                chunk.append(following)
            return "\n".join(chunk)
    return ""


def _parse_arf(
    report_text: str, returned: dict[str, str], message: Message
) -> tuple[list[BounceRecipient], str]:
    fields: dict[str, str] = {}
    rcpt_tos: list[str] = []
    for block in _parse_fields(report_text):
        for name, value in block:
            fields.setdefault(name, value)
            if name == "original-rcpt-to":
                rcpt_tos.append(value)
    feedback_type = fields.get("feedback-type", "abuse").strip().lower() or "abuse"
    if len(rcpt_tos) > 1:  # one report about a message to several recipients
        addresses = list(dict.fromkeys(clean_address(v) for v in rcpt_tos if "@" in v))[:MAX_RECIPIENTS]
        diagnostic = _collapse(f"feedback-type={feedback_type} {fields.get('user-agent', '')}")[
            :MAX_DIAGNOSTIC
        ]
        return [
            BounceRecipient(a, "complained", "", diagnostic, "feedback", rules.COMPLAINT) for a in addresses
        ], feedback_type
    candidates = [
        fields.get("original-rcpt-to", ""),
        fields.get("removal-recipient", ""),
        returned.get("x-hmxmroriginalrecipient", ""),
    ]
    candidates += [addr for _, addr in getaddresses([returned.get("to", "")])]
    if str(message.get("x-apple-unsubscribe", "")).strip().lower() == "true":
        # Apple Mail's "unsubscribe" button mails the List-Unsubscribe address from the user.
        feedback_type = "opt-out"
        candidates.append(parseaddr(_decode_header(message.get("from")))[1])
    address = next((clean_address(c) for c in candidates if c and "@" in c), "")
    recipient = BounceRecipient(
        address=address,
        action="complained",
        status="",
        diagnostic=_collapse(f"feedback-type={feedback_type} {fields.get('user-agent', '')}")[
            :MAX_DIAGNOSTIC
        ],
        reason="feedback",
        kind=rules.COMPLAINT,
    )
    return [recipient], feedback_type


def _auto_reply_marked(message: Message) -> bool:
    for header, pattern in rules.AUTO_REPLY_HEADERS:
        value = message.get(header)
        if value is not None and pattern.search(str(value)):
            return True
    return bool(rules.AUTO_REPLY_SUBJECT.search(_decode_header(message.get("subject"))))


def _looks_like_bounce(message: Message, human: str) -> bool:
    if message.get("x-failed-recipients"):
        return True
    sender = _decode_header(message.get("from"))
    subject = _decode_header(message.get("subject"))
    if rules.BOUNCE_FROM.search(sender) or rules.BOUNCE_SUBJECT.search(subject):
        return True
    return bool(rules.BOUNCE_OPENERS.search(fold(human[:4000])))


def _cut_original(text: str) -> str:
    match = rules.ORIGINAL_MARKERS.search(fold(text))
    return text[: match.start()] if match else text


def _header_block_after(text: str) -> dict[str, str]:
    """Headers of a returned message pasted into the text after an 'original message' line."""
    match = rules.ORIGINAL_MARKERS.search(fold(text))
    if not match:
        return {}
    tail = text[match.end() :]
    tail = tail[tail.find("\n") + 1 :] if "\n" in tail else ""
    headers: dict[str, str] = {}
    for block in _parse_fields(tail.lstrip("\n")[:20000])[:1]:
        for name, value in block:
            headers.setdefault(name, value)
    return headers


def _parse_text(
    message: Message, human: str, excluded: set[str], returned: dict[str, str]
) -> list[BounceRecipient]:
    """Non-standard reports: Exim, qmail, old Sendmail, Gmail, Yahoo, Exchange and friends."""
    body = _cut_original(human)
    addresses: list[str] = []
    failed_header = message.get_all("x-failed-recipients") or []
    for value in failed_header:
        for _, addr in getaddresses([str(value)]):
            if "@" in addr:
                addresses.append(clean_address(addr))
    # Sendmail (v5 to v8) and its kin end each recipient's transcript with one summary line,
    # "550 <user@host>... User unknown": in order, one per failed recipient, with its own reason.
    summaries: dict[str, str] = {}
    if not addresses:
        start = 0
        for match in SENDMAIL_SUMMARY_RE.finditer(body):
            address = clean_address(match.group(1))
            if address not in excluded and address not in summaries:
                # its transcript: the lines since the previous summary line, and the line's own
                # continuation ("[RCPT_TO]", a wrapped reason) up to a blank or the next reply
                tail = []
                for line in body[match.end() :].split("\n")[1:3]:
                    if not line.strip() or SUMMARY_STOP_RE.match(line):
                        break
                    tail.append(line)
                summaries[address] = "\n".join([body[start : match.end()], *tail])
                addresses.append(address)
            start = match.end()
    if not addresses:
        for match in ADDRESS_LINE_RE.finditer(body):
            address = clean_address(match.group(1))
            prefix = body[max(0, match.start(1) - 20) : match.start(1)]
            if address in excluded or SENDER_CONTEXT_RE.search(prefix):
                continue
            addresses.append(address)
    if not addresses:
        for match in ADDRESS_RE.finditer(body):
            address = clean_address(match.group(0))
            prefix = body[max(0, match.start() - 20) : match.start()]
            if address in excluded or SENDER_CONTEXT_RE.search(prefix):
                continue
            addresses.append(address)
    if not addresses:
        for _, addr in getaddresses([returned.get("to", "")]):
            if "@" in addr:
                addresses.append(clean_address(addr))
    addresses = list(dict.fromkeys(addresses))
    # The bouncing system's own postmaster is named in many reports; it is the failed recipient
    # only when nobody else is.
    addresses = [a for a in addresses if not re.match(r"(?:postmaster|mailer-daemon)@", a)] or addresses
    addresses = addresses[:MAX_RECIPIENTS] or [""]
    has_code = bool(find_status(body) or find_reply_code(body) or rules.BOUNCE_OPENERS.search(fold(body)))
    out: list[BounceRecipient] = []
    for address in addresses:
        if address in summaries:
            block = summaries[address]
            own = block[block.rfind("\n", 0, block.lower().rfind(address)) + 1 :]
            # Sendmail words the summary for itself ("Service unavailable" for any refusal after
            # DATA); the remote's own reply in the transcript says why.
            replies = [line for line in block.split("\n") if TRANSCRIPT_REPLY_RE.match(line)]
            recipient = _recipient(address, "", "", f"{own}\n{replies[-1]}" if replies else own, block)
            out.append(recipient)
            continue
        chunk = _context_for(address, body, tuple(addresses)) if address else ""
        diagnostic = _diagnostic_line(chunk) or _diagnostic_line(body)
        recipient = _recipient(address, "", "", diagnostic or chunk, "" if not has_code else body)
        # Without any SMTP code or MTA wording, only a reason stated beside the address counts
        # (or the MTA's own X-Failed-Recipients header).
        if has_code or failed_header or recipient.reason != "undefined":
            out.append(recipient)
    return out


def _diagnostic_line(text: str) -> str:
    """The most telling sentence: the one carrying an SMTP reply or an enhanced status code.
    (A reply code opens its line or follows "said:", "<<<", "reason:"...; a bare number
    elsewhere is a size, a count or a time.)"""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    for index, line in enumerate(lines):
        if find_status(line) or LEADING_REPLY_CODE_RE.search(line):
            return " ".join(lines[index : index + 3])
    return ""


# --- Entry point ---


def parse_message(raw: bytes | str) -> Message:
    if isinstance(raw, str):
        raw = raw.encode("utf-8", errors="surrogateescape")
    raw = normalise_line_ends(raw[:MAX_PARSE_BYTES])
    # mbox "From " separator lines are not headers.
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
    raw = GLOBAL_DSN_RE.sub(rb"\1text/x-global-delivery-status", raw)
    try:
        return email.message_from_bytes(raw, policy=email.policy.compat32)
    except RecursionError:
        # MIME nested deeper than the parser can follow: keep the headers, read the rest as text.
        headers, _, body = raw.partition(b"\n\n")
        message = email.message_from_bytes(headers + b"\n\n", policy=email.policy.compat32)
        del message["content-type"]
        message.set_payload(body.decode("utf-8", errors="replace"))
        return message


def classify(raw: bytes | str, *, _forwarded: bool = False) -> BounceReport:
    """Every failed recipient a message reports, with reason and kind; format "none" if none."""
    message = parse_message(raw)
    envelope_to = [
        clean_address(addr)
        for header in ("delivered-to", "x-original-to", "envelope-to", "to")
        for _, addr in getaddresses([str(v) for v in (message.get_all(header) or [])])
        if "@" in addr
    ]
    parts = _walk(message)
    human_parts: list[str] = []
    dsn_texts: list[str] = []
    arf_text: str | None = None
    returned: dict[str, str] = {}
    for part, _depth, inside_returned in parts:
        ctype = part.get_content_type()
        if ctype in RETURNED_TYPES and not inside_returned and not returned:
            returned = _returned_headers(part)
        if inside_returned:
            continue
        if ctype in DSN_TYPES:
            dsn_texts.append(_dsn_text(part))
        elif ctype == ARF_TYPE:
            arf_text = _dsn_text(part)  # parsed like a DSN part: the email package splits it
        elif (
            (ctype.startswith("text/") or ctype.startswith("multipart/"))
            and not part.is_multipart()
            and ctype != "text/rfc822-headers"
        ):
            # (a multipart whose boundary never appears arrives as one flat text)
            text = normalise_line_ends(_payload_text(part).encode("utf-8", "replace")).decode("utf-8")
            if ctype == "text/html":
                if human_parts:
                    continue  # the plain alternative already said it
                text = _strip_html(text)
            human_parts.append(text)
    human = "\n".join(human_parts)
    if not returned:
        returned = _header_block_after(human)
    report = BounceReport(
        format="none", envelope_to=list(dict.fromkeys(envelope_to)), original_headers=returned
    )

    if arf_text is not None or _is_nonstandard_complaint(message, parts):
        text = arf_text if arf_text is not None else ""
        if arf_text is None:
            returned = returned or _first_returned(parts)
            report.original_headers = returned
        report.recipients, report.feedback_type = _parse_arf(text, returned, message)
        report.format = "arf"
        return report

    ses = _parse_ses_notification(human)
    if ses is not None:
        report.format, report.recipients = ses
        return report

    if not dsn_texts and re.search(r"(?im)^(?:final|original)-recipient:", human):
        dsn_texts = [human]  # a DSN pasted into a text part by a careless MTA
    if dsn_texts:
        recipients = _parse_dsn(dsn_texts, _cut_original(human))
        if recipients or any("action:" in t.lower() for t in dsn_texts):
            report.format = "dsn"
            report.recipients = recipients
            return report

    bounce_like = _looks_like_bounce(message, human)
    if not bounce_like and _auto_reply_marked(message):
        sender = clean_address(parseaddr(_decode_header(message.get("from")))[1])
        report.format = "auto_reply"
        report.recipients = [
            BounceRecipient(
                address=sender,
                action="auto-replied",
                status="",
                diagnostic=_collapse(_decode_header(message.get("subject")))[:MAX_DIAGNOSTIC],
                reason="vacation",
                kind=rules.AUTO_REPLY,
            )
        ]
        return report
    if not bounce_like:
        return report

    excluded = {
        clean_address(addr)
        for header in ("to", "from", "return-path", "reply-to", "sender")
        for _, addr in getaddresses([str(v) for v in (message.get_all(header) or [])])
    }
    excluded |= {clean_address(addr) for _, addr in getaddresses([returned.get("from", "")])}
    excluded |= {clean_address(addr) for _, addr in getaddresses([returned.get("return-path", "")])}
    report.recipients = _parse_text(message, human, excluded, returned)
    if report.recipients:
        report.format = "text"
        return report
    return (None if _forwarded else _forwarded_report(parts)) or report


def classify_safely(raw: bytes | str) -> BounceReport:
    """classify(), never raising: the classifier is bounded, but no inbound path may die of it."""
    try:
        return classify(raw)
    except Exception as exc:
        log.exception("bounce classifier failed")
        return BounceReport(format="none", errors=[repr(exc)])


def classify_each(raws: Sequence[bytes]) -> list[BounceReport]:
    """classify_safely() over several messages: one task of the SMTP listener's classifier
    processes (pure Python, no database, so it runs in any process)."""
    return [classify_safely(raw) for raw in raws]


def classify_served(connection: Connection) -> None:
    """A classifier process of the SMTP listener: classify_each over every list of messages its
    pipe brings, the reports sent back the same way, until the listener closes the pipe."""
    while True:
        try:
            raws = connection.recv()
        except EOFError:
            return
        connection.send(classify_each(raws))


def _forwarded_report(parts: list[tuple[Message, int, bool]]) -> BounceReport | None:
    """A bounce forwarded as an attachment (some gateways wrap the real report): read it once."""
    for part, depth, _inside in parts:
        if depth == 1 and part.get_content_type() == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message) and inner.get_content_type() == "multipart/report":
                report = classify(inner.as_bytes(), _forwarded=True)
                return report if report.recipients else None
    return None


def _parse_ses_notification(text: str) -> tuple[str, list[BounceRecipient]] | None:
    """Amazon SES's JSON notification, delivered by e-mail through an SNS topic."""
    text = text.lstrip()
    if not text.startswith("{"):
        return None
    data = None
    for candidate in (text[:1_000_000], re.sub(r"\n ?", "", text[:1_000_000])):  # mailers fold long lines
        try:
            data, _end = json.JSONDecoder().raw_decode(candidate)
            break
        except (ValueError, RecursionError):  # RecursionError: hostile nesting
            continue
    if isinstance(data, dict) and data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
        try:  # the SNS envelope: the SES notification is a JSON string inside it
            data = json.loads(data["Message"])
        except (ValueError, RecursionError):  # RecursionError: hostile nesting
            return None
    if not isinstance(data, dict):
        return None
    kind_of = data.get("notificationType") or data.get("eventType")
    if kind_of == "Complaint":
        complaint = data.get("complaint") or {}
        diagnostic = _collapse(f"feedback-type={complaint.get('complaintFeedbackType') or 'abuse'}")
        recipients = [
            BounceRecipient(
                clean_address(str(r.get("emailAddress", ""))),
                "complained",
                "",
                diagnostic,
                "feedback",
                rules.COMPLAINT,
            )
            for r in complaint.get("complainedRecipients") or []
            if isinstance(r, dict)
        ]
        return "arf", recipients[:MAX_RECIPIENTS]
    if kind_of != "Bounce":
        return None
    bounce = data.get("bounce") or {}
    ses_kind = rules.SES_BOUNCE_SUBTYPE_KIND.get(
        str(bounce.get("bounceSubType"))
    ) or rules.SES_BOUNCE_TYPE_KIND.get(str(bounce.get("bounceType")), rules.UNKNOWN)
    recipients = []
    for entry in (bounce.get("bouncedRecipients") or [])[:MAX_RECIPIENTS]:
        if not isinstance(entry, dict):
            continue
        diagnostic = clean_address_type(str(entry.get("diagnosticCode") or ""))
        found = _recipient(
            clean_address(str(entry.get("emailAddress", ""))),
            "failed",
            str(entry.get("status") or ""),
            diagnostic or f"{bounce.get('bounceType')}: {bounce.get('bounceSubType')}",
        )
        kind = found.kind
        if found.reason == "undefined" or (ses_kind != rules.HARD and kind == rules.HARD):
            kind = ses_kind  # SES's own verdict, unless the words show a block
        recipients.append(
            BounceRecipient(
                found.address,
                found.action,
                found.status,
                found.diagnostic,
                found.reason,
                kind,
                found.reply_code,
            )
        )
    return "dsn", recipients


def _returned_headers(part: Message) -> dict[str, str]:
    headers: dict[str, str] = {}
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    if isinstance(inner, Message):
        for name, value in inner.items():
            headers.setdefault(name.lower(), _decode_header(value))
        return headers
    for block in _parse_fields(_payload_text(part)[:20000])[:1]:
        for name, value in block:
            headers.setdefault(name, value)
    return headers


def _first_returned(parts: list[tuple[Message, int, bool]]) -> dict[str, str]:
    for part, _depth, _inside in parts:
        if part.get_content_type() in RETURNED_TYPES:
            return _returned_headers(part)
    return {}


def _is_nonstandard_complaint(message: Message, parts: list[tuple[Message, int, bool]]) -> bool:
    """Microsoft's JMRP and similar loops: the complained-about message, marked by the reporter."""
    for part, _depth, _inside in parts:
        if part.get_content_type() in RETURNED_TYPES:
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message) and inner.get("x-hmxmroriginalrecipient"):
                return True
    if str(message.get("x-apple-unsubscribe", "")).strip().lower() == "true":
        return True
    subject = _decode_header(message.get("subject")).lower()
    return subject.startswith("complaint about message from")
