"""The classifier's declarative tables: which words, codes and headers mean what.

Reasons follow sisimai's vocabulary (the most thorough open classifier), so our answers can be
compared with its answers; kinds are what the policy acts on. Order matters in TEXT_RULES: the
first rule whose pattern matches the diagnostic wins, so sender-side refusals (spam, blocklists,
authentication) come before the generic "rejected"/"unknown" wording that often accompanies them.
"""

from __future__ import annotations

import re
from re import _parser as _sre_parser  # type: ignore[attr-defined]  (reads the literals out of a rule)

HARD = "hard"
SOFT = "soft"
BLOCK = "block"
COMPLAINT = "complaint"
AUTO_REPLY = "auto_reply"
DELAYED = "delayed"
UNKNOWN = "unknown"
KINDS = (HARD, SOFT, BLOCK, COMPLAINT, AUTO_REPLY, DELAYED, UNKNOWN)

# What each reason means for the address. Block: the refusal is aimed at the sender (its IP,
# domain, content or authentication); the address may be fine, so the contact is left alone.
REASON_KIND: dict[str, str] = {
    "userunknown": HARD,
    "hostunknown": HARD,
    "hasmoved": HARD,
    "notaccept": HARD,
    "mailboxfull": SOFT,
    "suspend": SOFT,
    "exceedlimit": SOFT,
    "systemfull": SOFT,
    "mesgtoobig": SOFT,
    "expired": SOFT,
    "networkerror": SOFT,
    "systemerror": SOFT,
    "mailererror": SOFT,
    "onhold": SOFT,
    "syntaxerror": SOFT,
    "failedstarttls": SOFT,
    "filtered": SOFT,
    "blocked": BLOCK,
    "spamdetected": BLOCK,
    "policyviolation": BLOCK,
    "rejected": BLOCK,
    "securityerror": BLOCK,
    "authfailure": BLOCK,
    "requireptr": BLOCK,
    "norelaying": BLOCK,
    "virusdetected": BLOCK,
    "badreputation": BLOCK,
    "contenterror": BLOCK,
    "speeding": BLOCK,
    "toomanyconn": BLOCK,
    "notcompliantrfc": BLOCK,
    "feedback": COMPLAINT,
    "vacation": AUTO_REPLY,
    "delayed": DELAYED,
    "undefined": UNKNOWN,
}


def _rx(*phrases: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in phrases))


def needles(pattern: re.Pattern[str]) -> tuple[str, ...] | None:
    """Literal strings, at least one of which is in every text `pattern` matches (None when that
    cannot be told). The regular expression engine tries each of a rule's dozens of alternatives at
    every position of the text; `needle in text` for each rule's few needles rules most rules out
    at C speed, and the rest are searched as before, so the answer is the same."""
    if pattern.flags & ~re.UNICODE:  # (case folding and friends: literals would not be literal)
        return None
    try:
        found = _sequence_needles(_sre_parser.parse(pattern.pattern))
    except Exception:  # an engine change: no shortcut, never a wrong answer
        return None
    return tuple(sorted(found)) if found else None


def _sequence_needles(items) -> frozenset[str] | None:  # noqa: ANN001  (re's parse tree)
    """The best set of needles of a sequence: every item of a sequence is in the match, so the
    needles of any one item (with a run of literals as one needle) are needles of all of it."""
    ops = _sre_parser  # (the parser module carries the opcodes)
    candidates: list[frozenset[str]] = []
    run: list[str] = []
    for op, value in items:
        if op is ops.LITERAL:
            run.append(chr(value))
            continue
        if run:
            candidates.append(frozenset(["".join(run)]))
            run = []
        inner = None
        if op is ops.SUBPATTERN and not value[1] and not value[2]:  # (a group with no flags of its own)
            inner = _sequence_needles(value[3])
        elif op is ops.BRANCH:  # each branch must bring needles of its own
            branches = [_sequence_needles(branch) for branch in value[1]]
            if all(branches):
                inner = frozenset().union(*branches)
        elif op in (ops.MAX_REPEAT, ops.MIN_REPEAT) and value[0] >= 1:  # (not an optional part)
            inner = _sequence_needles(value[2])
        if inner:
            candidates.append(inner)
    if run:
        candidates.append(frozenset(["".join(run)]))
    # the most selective: the longest shortest needle, then the fewest
    return max(candidates, key=lambda c: (min(map(len, c)), -len(c)), default=None)


# (reason, pattern over the lowercased, whitespace-collapsed diagnostic). First match wins.
TEXT_RULES: list[tuple[str, re.Pattern[str]]] = [
    (
        "networkerror",
        _rx(
            r"name service error.*(?:try again|malformed|unexpected|temporar)",
            r"malformed or unexpected name server",
        ),
    ),
    (
        "contenterror",
        _rx(r"8-?bit data", r"illegal (?:character|header)", r"message header", r"improper use of"),
    ),
    (
        # The recipient's own account is blocked or the message timed out: not a refusal of us,
        # whatever "blocked" or "connection refused" follows.
        "suspend",
        _rx(r"(?:recipient|destination)(?:'s)? (?:account|mailbox) (?:is |has been )?(?:blocked|locked)"),
    ),
    ("expired", _rx(r"\bmessage expired\b")),
    (
        "blocked",
        _rx(
            r"service refused?\b",
            r"messages from \d{1,3}(?:\.\d{1,3}){3}",
            r"not accepting connections",
            r"user complaints",
        ),
    ),
    (
        # Wordings that settle the question before any generic "denied" or "rejected" can.
        "userunknown",
        _rx(
            r"5\.4\.1 recipient address rejected: access denied",
            r"this user doesn'?t have a [^ ]+ account",
            r"mailbox unavailable",
            r"5\.4\.1 .{0,80}recipient address rejected: access denied",
            r"(?:recipient|name|address) is not recogni[sz]ed",
            r"not listed in (?:domino directory|public name & address book)",
        ),
    ),
    (
        "virusdetected",
        _rx(r"\bvirus", r"malware", r"infected", r"malicious (?:content|attachment)"),
    ),
    (
        "authfailure",
        _rx(
            r"\bspf\b",
            r"\bdkim\b",
            r"\bdmarc\b",
            r"5\.7\.2[3-7]\b",
            r"unauthenticated (?:e-?)?mail",
            r"sender authentication",
            r"authentication (?:check|result)s? (?:failed|not passing)",
            r"not (?:pass|passing) authentication",
            r"email authentication",
            r"arc validation",
        ),
    ),
    (
        "requireptr",
        _rx(
            r"reverse (?:dns|lookup|hostname)",
            r"\bptr\b",
            r"\brdns\b",
            r"no (?:dns )?(?:reverse|ptr)",
            r"cannot find your hostname",
            r"(?:host ?name|ip address) (?:does not|doesn't|did not) (?:resolve|match)",
            r"client host .* (?:unknown|not resolv)",
            r"unresolvable (?:client|host|ip)",
            r"ip name (?:lookup|possibly forged)",
            r"forward-confirmed",
        ),
    ),
    (
        "badreputation",
        _rx(r"(?:poor|bad|low) (?:ip )?reputation", r"reputation (?:of|is)", r"sender score"),
    ),
    (
        "spamdetected",
        _rx(
            r"\bspam(?!haus|cop)",
            r"junk ?mail",
            r"\bbulk (?:e-?)?mail",
            r"unsolicited",
            r"\buce\b",
            r"content (?:filter|rejected)",
            r"message (?:content )?(?:rejected|refused) (?:as|due to)",
            r"suspicious",
            r"looks like",
            r"phish",
            r"score",
        ),
    ),
    (
        "norelaying",
        _rx(
            r"relay(?:ing)? (?:access )?(?:denied|not (?:permitted|allowed))",
            r"not (?:permitted|allowed|authori[sz]ed) to relay",
            r"unable to relay",
            r"(?:we|i) do not relay",
            r"no relaying",
            r"relay not permitted",
            r"open relay",
        ),
    ),
    (
        "toomanyconn",
        _rx(
            r"too many (?:connections|concurrent|simultaneous|sessions)",
            r"connection (?:limit|rate)",
            r"too many (?:smtp )?sessions",
        ),
    ),
    (
        "speeding",
        _rx(
            r"rate limit",
            r"rate[- ]limited",
            r"too many (?:messages|mails|emails|recipients)",
            r"sending rate",
            r"(?:unusual|high) (?:rate|volume)",
            r"throttl",
            r"try (?:again )?later.*(?:rate|volume)",
            r"receiving mail at a rate",
        ),
    ),
    (
        "blocked",
        _rx(
            r"block ?list",
            r"black ?list",
            r"\bblocked",
            r"\brbl\b",
            r"dnsbl",
            r"spamhaus",
            r"spamcop",
            r"sorbs",
            r"barracuda",
            r"listed (?:in|on|at|by)",
            r"client host (?:\[[^\]]*\] )?(?:rejected|blocked|refused)",
            r"access denied",
            r"(?:your|sender|sending|client|connecting) (?:ip|host|server|network)",
            r"(?:your|sender'?s?|client|sending) ip address",
            r"dynamic(?:ally)? (?:ip|assigned|address)",
            r"residential",
            r"connection (?:refused|rejected|dropped)",
            r"refused to (?:talk|accept)",
            r"not allowed to send",
            r"banned",
            r"\bdenied\b",
            r"please use the smtp server of your isp",
            r"service unavailable.*(?:client|ip)",
            r"temporarily deferred",
        ),
    ),
    (
        "policyviolation",
        _rx(
            r"polic(?:y|ies)",
            r"violat",
            r"prohibited",
            r"not permitted",
            r"not allowed",
            r"has not been accepted for delivery",
        ),
    ),
    (
        "rejected",
        _rx(
            r"sender (?:address )?(?:rejected|refused|denied|verify failed|not allowed|blocked)",
            r"(?:envelope|mail) from (?:address )?(?:rejected|refused)",
            r"domain of sender",
            r"sender domain",
            r"invalid sender",
            r"unverified (?:sender|address)",
            r"sender (?:is )?(?:unknown|invalid|not (?:found|exist))",
            r"bad sender",
            r"return path",
            r"address verification",
            r"sender verification",
            r"unroutable sender",
        ),
    ),
    (
        "securityerror",
        _rx(
            r"authentication (?:required|failed|credentials)",
            r"must (?:be )?authenticat",
            r"(?:password|credentials)",
            r"security",
            r"encryption required",
            r"must issue a starttls",
            r"\btls (?:required|is required)",
            r"certificate",
        ),
    ),
    ("failedstarttls", _rx(r"starttls")),
    (
        "notcompliantrfc",
        _rx(
            r"rfc ?5322",
            r"rfc ?2822",
            r"rfc ?822",
            r"not (?:rfc[- ]?)?compliant",
            r"duplicate (?:header|message-id)",
            r"multiple (?:from|to|subject|date|message-id)",
            r"(?:missing|invalid|malformed) (?:header|from|date|message-id)",
            r"header (?:is )?(?:missing|invalid|malformed)",
        ),
    ),
    (
        "mesgtoobig",
        _rx(
            r"message (?:is )?too (?:big|large|long)",
            r"message (?:size )?exceeds",
            r"exceeds? (?:the )?(?:maximum |max )?(?:message )?size",
            r"size limit",
            r"mail size",
            r"message length exceeds",
            r"too big",
            r"line (?:length )?limit exceeded",
        ),
    ),
    (
        "exceedlimit",
        _rx(r"exceeds? (?:the )?(?:recipient'?s? )?(?:limit|quota for)", r"exceeded (?:the )?limit"),
    ),
    (
        "systemfull",
        _rx(
            r"insufficient (?:system )?(?:storage|disk)",
            r"(?:mail ?)?system (?:is )?full",
            r"out of (?:disk|storage)",
            r"disk (?:is )?full",
        ),
    ),
    (
        "mailboxfull",
        _rx(
            r"mail ?box (?:is )?(?:full|over)",
            r"full mailbox",
            r"mailbox size",
            r"over ?quota",
            r"quota (?:exceed|full|limit)",
            r"exceed(?:ed|s)? (?:the )?(?:storage|quota)",
            r"(?:is|are) over (?:its|their|the|his|her)? ?(?:quota|storage)",
            r"not enough (?:disk )?(?:space|storage)",
            r"storage (?:limit|quota|space)",
            r"(?:user|recipient|account) (?:is )?(?:full|over)",
            r"inbox is (?:out of storage|full)",
            r"mailfolder is full",
            r"mailbox exceeds",
            r"メールボックスが(?:一杯|いっぱい|満杯)",
            r"postfach (?:ist )?(?:voll|[üu]berf[üu]llt)|speicherplatz (?:ist )?(?:voll|ersch[öo]pft)|quota [üu]berschritten",
            r"bo[îi]te (?:aux lettres |mail |de r[ée]ception )?(?:est )?pleine|quota (?:d[ée]pass[ée]|atteint)",
            r"buz[oó]n (?:de correo )?(?:est[aá] )?(?:lleno|completo)|cuota (?:excedida|superada)",
            r"casella (?:di posta )?(?:è )?piena|spazio (?:esaurito|insufficiente)",
            r"caixa (?:postal |de correio |de entrada )?(?:est[aá] )?(?:cheia|lotada)",
            r"mailbox (?:is )?vol\b|postvak (?:is )?vol",
            r"(?:почтовый )?ящик (?:переполнен|заполнен)|превышен(?:а)? квот",
            r"(?:邮箱|信箱)(?:已满|空间不足)|容量(?:超過|オーバー|不足)",
            r"too many messages in",
        ),
    ),
    (
        "mailererror",
        _rx(
            r"mailer error",
            r"command (?:died|failed|output)",
            r"exit (?:status|code)",
            r"procmail",
            r"pipe to",
            r"\|/",
            r"unknown mailer",
            r"mail(?:er)? program",
        ),
    ),
    (
        "hasmoved",
        _rx(r"(?:address|user|mailbox|recipient) has moved", r"moved (?:to|permanently)", r"has moved"),
    ),
    (
        "suspend",
        _rx(
            r"(?:account|mailbox|user|address|recipient)(?: is| has been)? (?:disabled|suspended|deactivated|inactive|locked|frozen|blocked|expired)",
            r"(?:disabled|suspended|deactivated|inactive|locked) (?:account|mailbox|user)",
            r"not (?:an )?active",
            r"temporarily (?:disabled|unavailable)",
            r"no longer (?:active|in use|valid)",
            r"\bis (?:disabled|inactive|suspended|deactivated|locked)",
            r"temporar(?:y|ily) locked",
            r"disabled (?:recipient|address)",
            r"has been (?:disabled|suspended|deactivated)",
            r"is not accepting (?:any )?(?:mail|messages|email)",
        ),
    ),
    (
        "hostunknown",
        _rx(
            r"host (?:or domain name )?(?:unknown|not found)",
            r"unknown host",
            r"(?:domain|host) (?:name )?(?:not found|does not exist|doesn't exist|not exist|unknown|lookup failed)",
            r"(?<![\w@.-])(?:[a-z0-9-]+\.)+[a-z]{2,} does not exist",  # a domain name, not an address
            r"no such (?:domain|host)",
            r"unrouteable (?:mail )?domain",
            r"unrouteable address",  # Exim: no route to the domain
            r"unroutable (?:mail )?domain",
            r"name or service not known",
            r"name service error",
            r"could not be resolved",
            r"couldn'?t find any host",
            r"couldn'?t find a mail exchanger",
            r"domain is not reachable",
            r"illegal host/domain",
            r"no (?:valid )?mx",
            r"mx records? (?:point to )?non-existent",
            r"unknown domain",
            r"domain (?:is )?invalid",
            r"invalid domain",
            r"nxdomain",
            r"dns (?:lookup )?fail",
            r"domain\w* (?:ist )?(?:unbekannt|existiert nicht)|unbekannte domain",
            r"domaine (?:est )?(?:inconnu|inexistant|introuvable)|le domaine .{0,40}n'existe pas",
            r"dominio (?:es )?(?:desconocido|inexistente|no existe)|il dominio .{0,40}non esiste",
            r"dom[ií]nio (?:[eé] )?(?:desconhecido|inexistente|n[aã]o existe)",
            r"домен (?:не найден|не существует)",
            r"ドメインが(?:存在しません|見つかりません)|域名不存在",
        ),
    ),
    (
        "notaccept",
        _rx(
            r"does not accept (?:e-?)?mail",
            r"accepts no mail",
            r"null mx",
            r"indicated no smtp service",
            r"not accept(?:ing)? (?:any )?mail",
            r"system not accepting network messages",
            r"no mail (?:service|accepted)",
        ),
    ),
    (
        "userunknown",
        _rx(
            r"user(?:name)? (?:is )?unknown",
            r"unknown (?:user|recipient|address|local ?part|mailbox|account)",
            r"no such (?:user|mailbox|recipient|address|account|local user|person)",
            r"(?:user|recipient|mailbox|address|account|addressee|person)(?: name)? (?:is )?(?:not found|not known|does not exist|doesn't exist|not exist|unknown|invalid|not listed|unavailable|non-?existent)",
            r"(?:invalid|bad|non-?existent|unknown) (?:recipient|mailbox|user|address|destination|account)",
            r"invalid (?:final )?(?:delivery )?user ?(?:id|name)\b",
            r"(?:does not|doesn't|did not) exist",
            r"not (?:a )?(?:valid|known) (?:user|recipient|mailbox|address)",
            r"no (?:mailbox|account|user)(?: here)?",
            r"mailbox not found",
            r"address not present",
            r"could ?n[o']t be found",
            r"not found",
            r"not listed in",
            r"is not a known user",
            r"no longer (?:exist|available|with)",
            r"(?:account|address) (?:that )?you tried to reach",
            r"unknown$",
            r"undeliverable address",
            r"no valid recipients",
            r"relay recipient table",
            r"local recipient table",
            r"\bdisabled\b",
            # German, French, Spanish, Italian, Portuguese, Dutch, Russian, Japanese, Chinese
            r"(?:benutzer|empf[äa]nger|adresse|postfach|mailbox)\w* (?:ist )?(?:unbekannt|existiert nicht|ung[üu]ltig|nicht gefunden)",
            r"unbekannte[rn]? (?:benutzer|empf[äa]nger|adresse)|kein(?:en)? (?:solchen )?benutzer",
            r"(?:utilisateur|destinataire|adresse|bo[îi]te)(?: aux lettres)?(?: destinataire)? (?:est )?(?:inconnue?|inexistante?|invalide|introuvable)",
            r"n'existe pas|aucun utilisateur|destinataire inconnu",
            r"(?:usuario|destinatario|direcci[oó]n|buz[oó]n|cuenta)(?: de correo)? (?:es )?(?:desconocid[oa]|inexistente|no existe|no v[aá]lid[oa])",
            r"(?:utente|destinatario|indirizzo|casella)(?: di posta)? (?:è )?(?:sconosciut[oa]|inesistente|non esiste|non valid[oa])",
            r"(?:usu[aá]rio|destinat[aá]rio|endere[cç]o|conta)(?: de e-?mail)? (?:[eé] )?(?:desconhecid[oa]|inexistente|n[aã]o existe)",
            r"(?:gebruiker|ontvanger|adres|mailbox) (?:is )?(?:onbekend|bestaat niet)|onbekende (?:gebruiker|ontvanger)",
            r"(?:пользовател|получател|адрес|почтов)\w* (?:не найден|не существует|неизвест)|нет такого (?:пользователя|адреса|ящика)",
            r"宛先(?:不明|が見つかりません)|存在しない(?:ユーザ|アドレス|宛先)|ユーザ(?:ー)?(?:が)?(?:存在しません|不明)",
            r"(?:用户|收件人|邮箱|帳號|账号|地址)(?:名)?(?:不存在|无效|未找到)",
        ),
    ),
    (
        "expired",
        _rx(
            r"retry (?:time|timeout)",
            r"delivery time expired",
            r"(?:message|queue) (?:time )?expired",
            r"expired",
            r"too long in (?:the )?queue",
            r"giving up",
            r"have been failing for",
            r"(?:could not|couldn't|not) (?:be )?delivered (?:for|within|in)",
            r"gave up",
            r"was not delivered within",
            r"timed? ?out.*(?:days|hours)",
            r"maximum time",
            r"ttl",
        ),
    ),
    (
        "networkerror",
        _rx(
            r"network (?:is )?unreachable",
            r"(?:host|server) (?:is )?unreachable",
            r"no route to host",
            r"connection timed? ?out",
            r"could not connect",
            r"couldn'?t connect",
            r"unable to connect",
            r"connect to .* (?:failed|timed out)",
            r"too many hops",
            r"mail loop",
            r"loops? back",
            r"routing loop",
            r"loop detected",
            r"lost connection",
            r"timed? ?out",
            r"dns error",
            r"temporary (?:dns|lookup)",
            r"did not accept our requests to connect",
            r"host (?:is )?not reachable",
        ),
    ),
    (
        "syntaxerror",
        _rx(
            r"syntax error",
            r"command (?:not recogni[sz]ed|unrecognized)",
            r"bad sequence",
            r"(?:command|parameter) (?:parameter )?not implemented",
        ),
    ),
    (
        "filtered",
        _rx(
            r"filter",
            r"refused by (?:the )?recipient",
            r"rejected by (?:the )?recipient",
            r"recipient'?s? (?:settings|preferences)",
            r"delivery not authori[sz]ed",
            r"not accepting mail from",
            r"user reject",
            r"does not want",
        ),
    ),
    (
        "systemerror",
        _rx(
            r"system error",
            r"internal (?:server )?error",
            r"configuration error",
            r"server error",
            r"local error",
            r"temporary (?:local )?(?:failure|problem|error)",
            r"resources? (?:temporarily )?unavailable",
            r"service (?:is )?(?:currently |temporarily )?(?:not available|unavailable)",
            r"try again later",
            r"i/o error",
        ),
    ),
]

# When a report gives neither a code nor words we know: what a refusal from these receiving
# services means (Google Groups: the group does not exist or the sender may not post to it).
RECIPIENT_DOMAIN_REASON: dict[str, str] = {"googlegroups.com": "rejected"}

# Enhanced status codes (RFC 3463) by "subject.detail", when the words said nothing we know.
STATUS_RULES: dict[str, str] = {
    "1.1": "userunknown",
    "1.0": "userunknown",
    "1.3": "userunknown",
    "1.2": "hostunknown",
    "1.6": "hasmoved",
    "1.10": "notaccept",
    "1.8": "rejected",
    "1.7": "rejected",
    "2.0": "filtered",
    "2.1": "filtered",
    "2.2": "mailboxfull",
    "2.3": "exceedlimit",
    "2.4": "systemerror",
    "3.0": "systemerror",
    "3.1": "systemfull",
    "3.2": "notaccept",  # RFC 3463: system not accepting network messages
    "3.3": "systemerror",
    "3.4": "mesgtoobig",
    "3.5": "systemerror",
    "4.0": "networkerror",
    "4.1": "networkerror",
    "4.2": "networkerror",
    "4.3": "systemerror",
    "4.4": "hostunknown",
    "4.5": "networkerror",
    "4.6": "networkerror",
    "4.7": "expired",
    "5.0": "syntaxerror",
    "5.1": "syntaxerror",
    "5.2": "syntaxerror",
    "5.3": "speeding",
    "5.4": "syntaxerror",
    "6.0": "contenterror",
    "6.1": "contenterror",
    "7.0": "securityerror",
    "7.1": "rejected",
    "7.7": "securityerror",
    "7.8": "securityerror",
    "7.9": "securityerror",
    "7.25": "requireptr",
    "7.26": "authfailure",
    "7.27": "notaccept",
}

# When only the subject of the status code is known (X.7.999 and the like).
STATUS_SUBJECT_DEFAULTS: dict[str, str] = {
    "1": "userunknown",
    "2": "filtered",
    "3": "systemerror",
    "4": "networkerror",
    "5": "syntaxerror",
    "6": "contenterror",
    "7": "securityerror",
}

# The reporting MTA's own directory lookup, in its own words, with no remote SMTP reply to
# second-guess: Lotus Notes/Domino, Exchange 2003, IMail, Gmail's notice, Verizon's MMS
# gateway, RFC 5321's own 550 text. Unlike a bare "user unknown", which some receivers answer
# after DATA to disguise a content filter, these are never a filter speaking.
MAILBOX_LOOKUP_FAILED = _rx(
    r"delivery error: dd this user doesn'?t have",  # Yahoo's own answer
    # RFC 5321's own text for a RCPT TO naming no mailbox
    r"5\d\d[ -]+requested action not taken: mailbox unavailable",
    r"(?:^|mail\.local: )unknown user: ",  # the local delivery agent's own lookup
    r"not listed in (?:the )?(?:domino directory|public name & address book)",
    r"recipient name is not recognized",
    r"invalid final delivery userid",
    r"^unknown user: ",
    r"address couldn'?t be found",
    r"no valid recipients for this mm",
    # webmail services' own notices, in the languages they send them in
    r"adresse (?:est )?introuvable",
    r"adresse wurde nicht gefunden|adresse nicht gefunden",
    r"no se (?:ha )?(?:encontrado|pudo encontrar) la direcci[oó]n",
    r"indirizzo non (?:è stato )?trovato",
    r"endere[cç]o n[aã]o (?:foi )?encontrado",
    r"adres (?:is )?niet gevonden",
    r"адрес не найден",
    r"アドレスが見つかりません|宛先のアドレスが見つかりませんでした",
)

# "550 : User unknown": the form Japanese carriers and content filters answer after DATA to refuse
# content (no address between the code and the colon). Never proof, whatever code wraps it.
FILTER_DISGUISED_AS_UNKNOWN = re.compile(r"\b[45]\d\d :\s*user unknown")

# Basic SMTP reply codes (RFC 5321), the last resort.
REPLY_RULES: dict[str, str] = {
    "551": "hasmoved",
    "552": "mailboxfull",
    "553": "userunknown",
    "554": "rejected",
    "521": "notaccept",
    "556": "notaccept",
    "452": "mailboxfull",
    "421": "systemerror",
    "450": "systemerror",
    "451": "systemerror",
}

# Is this message a delivery report at all? Header patterns of MTAs' own bounces.
BOUNCE_FROM = re.compile(
    r"mailer-daemon|post_?master|mail delivery|maildelivery|mail-daemon|mail administrator|"
    r"delivery (?:status|subsystem|notification)|mmdf|bounce|nobody@|root@|"
    r"microsoftexchange|\bnotify|internet mail delivery|automated|returned",
    re.I,
)
BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (?:status|failure|failed|notification|problem|report)|"
    r"returned mail|mail delivery failed|failure notice|could not send|returned to sender|"
    r"delivery (?:has )?failed|not delivered|non[- ]?delivery|nondeliverable|bounce|"
    r"mail system error|rejected|warning: (?:could not|message)|delayed mail|delivery delayed|"
    r"message (?:not delivered|delayed|blocked|could not)|permanent error|failed delivery|"
    r"mail could not be delivered|error sending|mail failure|unable to deliver|"
    r"benachrichtung|unzustellbar|nicht zugestellt|non remis|non distribu|échec de (?:la )?(?:remise|distribution)|"
    r"no entregado|no se (?:pudo|puede) entregar|error de entrega|non recapitat|mancato recapito|"
    r"n[aã]o (?:foi )?entregue|falha na entrega|onbestelbaar|niet bezorgd|не доставлен|недоставлен|"
    r"配信(?:エラー|失敗|不能)|エラーメール|退信|未能送达|邮件投递失败|"
    r"(?:^|\s)(?:failed|failure)(?:\s|:|$)",
    re.I,
)
# Phrases MTAs open their human-readable bounce text with.
BOUNCE_OPENERS = re.compile(
    r"this is the qmail-send program|i'?m afraid i wasn'?t able to deliver|"
    r"could not be delivered to one or more|delivery to the following recipients? failed|"
    r"the following address(?:es)?(?:\(es\))? (?:had permanent fatal errors|failed)|"
    r"message could not be delivered|unable to deliver (?:your )?message|"
    r"your message (?:could not|did not|was not|wasn'?t|cannot) (?:be )?(?:delivered|reach)|"
    r"sorry, we were unable to deliver|permanent (?:fatal )?error|"
    r"delivery has failed to these recipients|transcript of session follows|"
    r"message was not delivered|could not deliver|undeliverable|failed to deliver|"
    r"delivery to .* (?:failed|has been delayed)|mail delivery (?:failed|subsystem)|"
    r"your message wasn'?t delivered|returned to sender|did not reach the following recipient|"
    r"an error has occurred while attempting to deliver|could not be delivered to:|-+\s*failure reasons\s*-+|was not delivered to:?[ \t]*(?:\n|$)|"
    # the same openers in the languages webmail services and older MTAs write them in
    r"konnte nicht (?:an .{1,80} )?zugestellt werden|nicht zugestellt werden|unzustellbar|"
    r"n'a (?:pas )?pu (?:être|etre) (?:remis|distribu|livr)|n'a pas été (?:remis|distribu|livr)|"
    r"no (?:se )?(?:ha )?(?:podido|pudo) (?:ser )?entregar|no se ha entregado|"
    r"non (?:è stato possibile|e' stato possibile) (?:recapitare|consegnare)|non (?:è stato|e' stato) (?:recapitato|consegnato)|"
    r"n[aã]o (?:foi poss[ií]vel|p[oô]de ser) entreg|"
    r"kon niet (?:worden )?(?:bezorgd|afgeleverd)|"
    r"не (?:может быть|удалось|было) доставлен|"
    r"配信(?:できません|できませんでした|に失敗)|送信できませんでした|无法(?:投递|送达)|未能(?:投递|送达)",
    # matched against ASCII-lowercased text (classifier.fold): re.I is several times slower
)
# Where a returned copy of the original message starts in a plain-text bounce.
ORIGINAL_MARKERS = re.compile(
    r"^(?:[-=_*#\s]*)(?:"
    # (not Sendmail's and Courier's "The original message was received at ...", a preamble line)
    r"original message(?! was received)|below this line is a copy of the message|"
    r"this is a copy of the message|the original message(?! was received)|original message follows|copy of the original|unsent message (?:below|follows)|"
    r"returned message|message header follows|included is a copy|headers of the original|"
    r"content-type: message/rfc822|undelivered message|the message follows|"
    r"here is a copy of the first part|your message reads|--- the header of the original|"
    r"originalnachricht|urspr[üu]ngliche nachricht|message d'origine|message original|mensaje original|"
    r"messaggio originale|mensagem original|oorspronkelijk bericht|исходное сообщение|元のメッセージ|原始邮件"
    r")",
    re.M,  # over ASCII-lowercased text, as BOUNCE_OPENERS
)

# RFC 3834 and the widespread non-standard auto-reply marks.
AUTO_REPLY_HEADERS: list[tuple[str, re.Pattern[str]]] = [
    ("auto-submitted", re.compile(r"^\s*auto-replied", re.I)),
    ("x-autoreply", re.compile(r".")),
    ("x-autorespond", re.compile(r".")),
    ("x-autoresponder", re.compile(r".")),
    ("x-mail-autoreply", re.compile(r".")),
    ("precedence", re.compile(r"auto[_-]?reply", re.I)),
    ("x-precedence", re.compile(r"auto[_-]?reply", re.I)),
]
AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[ -]?(?:reply|response|respons|answer)|auto:|out of (?:the )?office|"
    r"away from|on vacation|vacation|abwesenheit|absence|réponse automatique|respuesta automática|"
    r"risposta automatica|автоответ|自動応答|不在)",
    re.I,
)

# Amazon SES's own bounce classification (SNS notifications, by e-mail or webhook).
SES_BOUNCE_SUBTYPE_KIND: dict[str, str] = {
    "MailboxFull": SOFT,
    "MessageTooLarge": SOFT,
    "ContentRejected": BLOCK,
    "AttachmentRejected": BLOCK,
}
SES_BOUNCE_TYPE_KIND: dict[str, str] = {"Permanent": HARD, "Transient": SOFT, "Undetermined": UNKNOWN}
