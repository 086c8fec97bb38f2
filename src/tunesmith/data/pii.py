"""Sensitive data: find it, and write a redacted copy with typed placeholders.

    spans = find_sensitive("mail me at ann@acme.io")          # [Span(kind="EMAIL", start=11, end=22, ...)]
    text, mapping = redact(text, mapping)                     # "mail me at [EMAIL_1]"

Types: EMAIL, PHONE, CARD (Luhn-valid, and written as a card is: in its issuer's groups, or next to a word such as
"card" or "visa"), IBAN (mod-97 valid), SSN (US, valid ranges), IP, ADDRESS (street lines), and secrets:
PRIVATE_KEY, AWS_KEY, OPENAI_KEY, GITHUB_TOKEN, SECRET (a connection URL's password, a value assigned to a
credential's name as in `password: hunter2`, and generic tokens judged by their own structure and entropy: three
character classes, high entropy, not a URL's host or path, not a path of words, not Base64 of a file or of text, not a
public id such as YouTube's `list=`). Reserved documentation domains (example.com, .test, .invalid) are not personal
data and are left alone. A record is read whole: its turns' content, its tool calls' arguments and its rejected turns.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from tunesmith.data.findings import Code, Finding, Severity

SECRET_KINDS = {"PRIVATE_KEY", "AWS_KEY", "OPENAI_KEY", "GITHUB_TOKEN", "SECRET"}
RESERVED_DOMAINS = re.compile(r"(^|\.)(example\.(com|org|net)|[a-z0-9-]+\.(test|invalid|example|localhost))$", re.I)
# A connection URL's password (postgres://admin:S3cr3t@db.internal/app), found before EMAIL takes "S3cr3t@db.internal"
# for a mail address. The span found is the `value` group, as in ASSIGNED_CREDENTIAL.
URL_CREDENTIAL = re.compile(
    r"\b[a-z][a-z0-9+.-]*://[^\s:/@?#]*:(?P<value>[^\s/@?#]+)@(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])", re.I
)
# A value assigned to a credential's name (the name's end: DB_PASSWORD, client_secret): `password: hunter2`,
# `DB_PASSWORD="Summer2024!"`, `{"api_key": "..."}`. A quoted value is the whole string; a bare one ends where a word
# does, not at a call or an index (`get_password()`, `os.environ["PW"]`), and without a sentence's full stop.
ASSIGNED_CREDENTIAL = re.compile(
    r"(?:p(?:ass(?:word|wd|phrase)|wd)|[_-]pass|secret|api[_-]?key|access[_-]?key|token)[\"']?\s*(?:=>|:=|==|[:=])\s*"
    r"(?P<q>[\"'`])?(?P<value>(?(q)[^\s\"'`]{6,200}|[^\s\"'`,;&<>(){}\[\]]{6,200}?))"
    r"(?(q)(?P=q)|(?=[.,:;]*(?:[\s\"'`,;&<>{})\]]|$)))",
    re.I,
)
TOKEN = re.compile(r"\b[A-Za-z0-9_+/=-]{24,}\b")  # a generic secret, judged by its own structure (_valid)

PATTERNS: list[tuple[str, re.Pattern]] = [
    ("PRIVATE_KEY", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----")),
    ("AWS_KEY", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("OPENAI_KEY", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}\b")),
    ("GITHUB_TOKEN", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b")),
    ("SECRET", URL_CREDENTIAL),
    ("SECRET", ASSIGNED_CREDENTIAL),
    ("EMAIL", re.compile(r"\b[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})\b")),
    ("IBAN", re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b")),
    # IP before the numeric shapes: 192.168.10.254 is not a phone number. IPv6 may be compressed (fe80::1).
    ("IP", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")),
    ("IP", re.compile(r"(?<![\w:])(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4}(?![\w:])")),  # IPv6
    ("CARD", re.compile(r"(?<![+\d])\b(?:\d[ -]?){12,18}\d\b")),
    ("SSN", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    ("PHONE", re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d{1,5}(?:[ .-]\d{2,8}){1,4}(?![\w-])")),
    (
        "ADDRESS",
        re.compile(
            r"\b\d{1,5}\s+(?:[A-Z][a-z]+\s){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|"
            r"Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Straße|Strasse|Rue)\b\.?"
        ),
    ),
    ("SECRET", TOKEN),
]


# Cheap pre-tests: a pattern cannot match a text without one of its needles (or without a digit). Keyed by kind, or
# by pattern where a kind has several.
NEEDLES: dict[str | re.Pattern, tuple[str, ...]] = {
    URL_CREDENTIAL: ("://",),
    # a case-blind pattern's needles are looked for in the lower-cased text (PassWord, SECRET, Api_Key alike)
    ASSIGNED_CREDENTIAL: ("assw", "assp", "wd", "_pass", "-pass", "ecret", "oken", "key"),
    "PRIVATE_KEY": ("PRIVATE KEY",),
    "AWS_KEY": ("AKIA", "ASIA"),
    "OPENAI_KEY": ("sk-",),
    "GITHUB_TOKEN": ("gh", "github_pat_"),
    "EMAIL": ("@",),
    "ADDRESS": (
        "St",
        "Av",
        "Rd",
        "Road",
        "Blvd",
        "Boulevard",
        "Lane",
        "Ln",
        "Dr",
        "Court",
        "Ct",
        "Way",
        "Pl",
        "Terrace",
        "Rue",
    ),
}
MIN_DIGITS = {"IBAN": 8, "CARD": 12, "SSN": 9, "PHONE": 8, "ADDRESS": 1}  # IPv4 has 4 digits, IPv6 maybe none
_NO_DIGITS = str.maketrans("", "", "0123456789")
_DIGIT_DOT = re.compile(r"\d\.\d")
IPV6 = next(p for kind, p in PATTERNS if kind == "IP" and "a-f" in p.pattern)
IPV4 = next(p for kind, p in PATTERNS if kind == "IP" and p is not IPV6)
_PLAN = [
    (kind, p, NEEDLES.get(p, NEEDLES.get(kind)), 4 if p is IPV4 else MIN_DIGITS.get(kind, 0), bool(p.flags & re.I))
    for kind, p in PATTERNS
]
# A URL's host and path (not its query, where a token may well sit): a long path segment is an article id, not a key.
URL_PATH = re.compile(
    r"(?:\b[a-z][a-z0-9+.-]*://|\bwww\.)[^\s?#\"'<>)\]]*|\b(?:[\w-]+\.)+[a-z]{2,}/[^\s?#\"'<>)\]]*", re.I
)
PATH_WORD = re.compile(r"[a-z]{3,}(?:[-_][a-z]+)*")
# Words that make a run of digits a payment card when no grouping says so ("card 4111111111111111").
CARD_WORDS = re.compile(
    r"\b(?:card|cards|visa|master\s?card|amex|american express|discover|maestro|credit|debit|cc|"
    r"cvv|cvc|pan|expir\w*|charged?|pay(?:ment|ing|ed)?|paid|checkout)\b",
    re.I,
)
WORD_CONTEXT = 48  # characters either side of a number searched for a card or a phone word
DATE_LIKE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
# Words that make a number in an unusual grouping a phone number ("mobile 138 0013 8000").
PHONE_WORDS = re.compile(
    r"\b(?:call(?:s|ed|ing)?|phone[sd]?|tel|telephone|mobile|cell(?:phone)?|fax|dial(?:l?ed|l?ing)?|ring|whatsapp|"
    r"sms|hotline|contact)\b",
    re.I,
)
# A dotted number after one of these is a version or a section (version 2.0.0.1, Section 1.1.1.1), not an IP address.
NUMBERED_BEFORE = re.compile(
    r"(?:\b(?:version|ver|v|release|build|rev|revision|section|sec|chapter|clause|article|paragraph|para|rule|step|"
    r"figure|fig|table|item)|§)\.?:?\s*$",
    re.I,
)
# Query parameters whose values are public ids, not keys: YouTube's video, playlist and share ids, Google's
# result-click ids, ad-click ids and campaign tags.
PUBLIC_ID_PARAMS = frozenset(
    {"v", "list", "si", "index", "t", "pp", "feature", "ab_channel", "ved", "ei", "usg", "fbclid", "gclid", "igshid"}
    | {"utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"}
)
# The first bytes of files sent as Base64 (image, document, archive, audio, video and executable formats).
FILE_SIGNATURES = (
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF8",
    b"%PDF",
    b"PK\x03\x04",
    b"\x1f\x8b",
    b"RIFF",
    b"OggS",
    b"ID3",
    b"fLaC",
    b"wOFF",
    b"wOF2",
    b"\x00asm",
    b"\x7fELF",
    b"II*\x00",
    b"MM\x00*",
    b"7z\xbc\xaf",
    b"\x00\x00\x01\x00",
)
# Two or more lines of nothing but Base64: an encoded file, wrapped at 76 (MIME) or 64 (PEM) characters.
BASE64_LINES = re.compile(r"^(?:[ \t]*[A-Za-z0-9+/]{16,}={0,2}[ \t]*(?:\r?\n|\Z)){2,}", re.M)
# What a credential is not: a template or variable (<password>, {pw}, ${DB_PASSWORD}, %(pw)s), a mask (********),
# a path or a URL, a placeholder (YOUR_API_KEY, changeme, a tutorial's password123 or secret123).
NOT_A_CREDENTIAL = re.compile(
    r"[<>{}$]|%\(|^%|\*\*|^(?:[/~]|\.\.?/)|://|your|example|sample|dummy|placeholder|changeme|xxx|passw(?:or)?d|secret",
    re.I,
)


@dataclass(frozen=True)
class Span:
    kind: str
    start: int
    end: int
    text: str


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    s = text.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _entropy(s: str) -> float:
    counts = Counter(s)
    return -sum(n / len(s) * math.log2(n / len(s)) for n in counts.values())


def _valid(kind: str, match: re.Match) -> bool:
    text = match.group(0)
    if kind == "EMAIL":
        return not RESERVED_DOMAINS.search(match.group(1))
    if kind == "CARD":
        digits = re.sub(r"\D", "", text)
        groups = [len(g) for g in re.split(r"[ -]", text)]
        # Cards are written as one run or in their issuers' groups (4-4-4-4, Amex 4-6-5, ...), not as 2-3-8.
        grouped = groups[:-1] == [4] * (len(groups) - 1) or groups in ([4, 6, 5], [4, 6, 4])
        if not (13 <= len(digits) <= 19 and (len(groups) == 1 or grouped) and luhn_ok(digits)):
            return False
        # One Luhn-valid run in ten passes by chance (a 14-digit product in a maths answer): a run of digits needs a
        # card word nearby; a number written in the issuer's groups says "card" by itself.
        return len(groups) > 1 or _word_near(match, CARD_WORDS)
    if kind == "IBAN":
        return iban_ok(text)
    if kind == "SSN":
        area, group, serial = text.split("-")
        return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"
    if kind == "IP":
        if text.count(":") and text.count(":") < 2 + ("::" not in text) * 5:
            return False  # IPv6 has 8 groups, or fewer with "::"; "10:30:15" is a time
        if NUMBERED_BEFORE.search(match.string, max(0, match.start() - 24), match.start()):
            return False
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            return False
        return not (ip.is_loopback or ip.is_unspecified)
    if kind == "PHONE":
        digits = re.sub(r"\D", "", text)
        if not 8 <= len(digits) <= 15 or DATE_LIKE.fullmatch(text) or _in_equation(match):
            return False
        return text[0] in "+(" or _national_number(match)
    if match.re is URL_CREDENTIAL:
        return _credential_like(match.group("value")) and not RESERVED_DOMAINS.search(match.group("host"))
    if match.re is ASSIGNED_CREDENTIAL:
        return _credential_like(match.group("value"), bare=match.group("q") is None)
    if kind == "SECRET":
        classes = sum(bool(re.search(p, text)) for p in (r"[a-z]", r"[A-Z]", r"\d"))
        return (
            classes == 3
            and _entropy(text) >= 4.0
            and not _path_like(text)
            and not _in_url_path(match)
            and not _joined_words(text)
            and not _public_id(text)
            and not _encoded_data(match)
        )
    return True


_RUN_BEFORE = re.compile(r"\d[ .-]$")  # a number just before: "2 4 [8 16 32 64 128]"
_RUN_AFTER = re.compile(r"[ .-]\d")  # a number just after: "[12 15 18 21 24] 27"


def _national_number(match: re.Match) -> bool:
    """A number without a country code or a bracketed area code is a phone number when written as a country writes
    its numbers: after a trunk 0 ("020 7946 0958", "01 23 45 67 89") or in North America's 3-3-4 ("555-123-4567",
    "1-800-222-1222"); in another grouping ("138 0013 8000") only beside a word such as "call" or "mobile". Two bare
    groups ("case 2024-0871") are a reference, and no number in a longer run of numbers ("12 15 18 21 24 27") or in
    thousands ("67 390 000") is a phone number."""
    groups = re.findall(r"\d+", match.group(0))
    sizes = [len(g) for g in groups]
    trunk = groups[0].startswith("0") and sizes[0] > 1
    text, start, end = match.string, match.start(), match.end()
    if _RUN_BEFORE.search(text, max(0, start - 2), start) or _RUN_AFTER.match(text, end):
        return False
    if trunk or sizes in ([3, 3, 4], [1, 3, 3, 4]):
        return True
    thousands = sizes[0] <= 3 and all(n == 3 for n in sizes[1:])
    return len(groups) > 2 and not thousands and _word_near(match, PHONE_WORDS)


def _credential_like(value: str, bare: bool = False) -> bool:
    """A password or key as people set them: letters with a digit or a symbol ("hunter2", "Summer2024!"), not a word
    ("secret"), a template, a mask or a placeholder (NOT_A_CREDENTIAL); a bare one not a variable's name either
    (`password = db_pass2`, `token = self.token2`)."""
    if NOT_A_CREDENTIAL.search(value) or not re.search(r"[A-Za-z]", value):
        return False
    if bare and re.fullmatch(r"[A-Za-z_][\w.]*", value) and re.search(r"[_.]", value):
        return False
    return bool(re.search(r"[\d!@#^&*+=?~]", value))


def _public_id(token: str) -> bool:
    """A query parameter that carries a public id (`list=PLrAXtmErZgOeiKm4sgNOknGvNjby9efdf`, a YouTube playlist)."""
    name, eq, _ = token.partition("=")
    return bool(eq) and name.lower() in PUBLIC_ID_PARAMS


def _encoded_data(match: re.Match) -> bool:
    """Base64 of data, not of a key: an inline file (`data:image/png;base64,...`), a file (its first bytes decode to
    a signature), wrapped over lines or not, or text. A key decodes to random bytes, and the Base64 of a credential
    ("user:password", a token) to text with no spaces, which stays a secret."""
    text, start = match.string, match.start()
    if text[max(0, start - 12) : start].rstrip("+/").lower().endswith(";base64,"):
        return True
    block = next((b for b in _base64_blocks(text) if b.start() <= start < b.end()), None)
    return _decodes_to_data(block.group(0) if block else match.group(0))


@lru_cache(maxsize=64)  # a wrapped block is asked once for each of its lines
def _decodes_to_data(encoded: str) -> bool:
    """Whether Base64 text decodes to a file (its signature) or to readable text."""
    raw = _b64decode(encoded)
    if raw is None:
        return False
    if raw.startswith(FILE_SIGNATURES) or raw[4:8] == b"ftyp":  # ftyp: MP4, MOV, HEIC, AVIF
        return True
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    printable = sum(c.isprintable() or c in "\t\n\r" for c in decoded)
    spaced = any(c.isspace() for c in decoded) or decoded.startswith(("{", "[", "<"))  # prose, JSON, XML
    return printable >= 0.95 * len(decoded) and spaced


@lru_cache(maxsize=16)  # asked once for each token of a text
def _base64_blocks(text: str) -> tuple[re.Match, ...]:
    return tuple(BASE64_LINES.finditer(text))


def _b64decode(token: str) -> bytes | None:
    """The bytes a Base64 (or base64url) token encodes, padding optional; None if it is no Base64."""
    body = "".join(token.split()).rstrip("=")
    if len(body) % 4 == 1:
        return None
    try:
        return base64.b64decode(
            body + "=" * (-len(body) % 4), altchars=b"-_" if "-" in body or "_" in body else None, validate=True
        )
    except binascii.Error:
        return None


CAMEL_PIECE = re.compile(r"[A-Z][a-z]+|[a-z]+|[A-Z]+(?![a-z])|\d+")


def _joined_words(token: str) -> bool:
    """Words run together ("MyDayIn140Characterswould", a hashtag's CamelCase): every letter piece two letters or
    more with a vowel. A key's random characters break into single letters and vowel-less pairs ("Pq", "Lm")."""
    pieces = CAMEL_PIECE.findall(token)
    if "".join(pieces) != token:
        return False
    letters = [p for p in pieces if p.isalpha()]
    return len(letters) >= 3 and all(len(p) >= 2 and re.search(r"[aeiouyAEIOUY]", p) for p in letters)


_TIMES_AFTER = re.compile(r"\)\s*(?:[*/+×x-]\s*[\d(.]|=)")  # "(...)*100", "(...) x 100", "(...)= 5"


def _in_equation(match: re.Match) -> bool:
    """A run of numbers joined by dashes next to an equals sign is arithmetic ("960-480-120 = 360", GSM8K's
    "<<100-50-30-15=5>>"), and so is one in brackets that an operator follows ("(18.75-18.48)x 100"): not a
    phone number."""
    before, after = match.string[: match.start()].rstrip(), match.string[match.end() :].lstrip()
    bracketed = before.endswith("(") and _TIMES_AFTER.match(after) is not None
    return after.startswith("=") or before.endswith(("=", "<<")) or bracketed


def _word_near(match: re.Match, words: re.Pattern) -> bool:
    text = match.string
    near = (
        text[max(0, match.start() - WORD_CONTEXT) : match.start()]
        + " "
        + text[match.end() : match.end() + WORD_CONTEXT]
    )
    return bool(words.search(near))


def _path_like(token: str) -> bool:
    """A slash-separated run of words ("wiki/Some_Article/2019") is a path; a key's slashes sit between random
    characters (base64), so at most one of its pieces is a lowercase word."""
    pieces = [p for p in token.split("/") if p]
    return len(pieces) >= 2 and sum(bool(PATH_WORD.fullmatch(p.lower())) and p.islower() for p in pieces) >= 2


def _in_url_path(match: re.Match) -> bool:
    """Whether the token lies in a URL's scheme, host or path (its query string is still searched)."""
    text, start = match.string, match.start()
    if text[match.end() : match.end() + 1] == "@":
        return False  # credentials before a host (https://user:TOKEN@host) are a secret
    line_start = text.rfind("\n", 0, start) + 1
    return any(url.start() <= start < url.end() for url in URL_PATH.finditer(text, line_start, match.end()))


# A string shaped like one of these but failing its checks is not sensitive, and no looser pattern may claim it
# either: a card number inside a bad IBAN (see _scan), a phone number in a bad SSN or in a version's dotted number
# (version 10.20.30.40), a mail address in a URL's placeholder credentials (postgres://user:password@db).
SHAPE_RESERVES = {p for kind, p in PATTERNS if kind == "SSN"} | {IPV4, URL_CREDENTIAL}


def _iban_prefix(match: re.Match) -> int | None:
    """End of the valid IBAN in an IBAN-shaped match, or None. The optional short last group may have taken a word
    that follows ("BE27270591573160 I paid"), so the match without it is tried too (and nothing shorter: a random
    prefix passes mod 97 one time in 97)."""
    text = match.group(0)
    if iban_ok(text):
        return match.end()
    head, _, tail = text.rpartition(" ")
    if head and len(tail) <= 3 and iban_ok(head):
        return match.start() + len(head)
    return None


def find_sensitive(text: str) -> list[Span]:
    """Every sensitive span in `text`, earlier patterns winning overlaps (keys before generic secrets)."""
    return list(_scan(text))


@lru_cache(maxsize=4096)  # system prompts and canned replies repeat across records
def _scan(text: str) -> tuple[Span, ...]:
    taken: list[Span] = []
    # Pre-tests ~50x cheaper than the patterns: most texts hold no key, and too few digits for a card or phone.
    digits = len(text) - len(text.translate(_NO_DIGITS)) if text.isascii() else len(text)
    longest_word = max(map(len, text.split()), default=0)
    lowered = None
    for kind, pattern, needles, min_digits, blind in _PLAN:
        if digits < min_digits:
            continue
        if needles and blind:
            lowered = text.lower() if lowered is None else lowered
            if not any(map(lowered.__contains__, needles)):
                continue
        elif needles and not any(map(text.__contains__, needles)):
            continue
        if pattern is IPV6 and text.count(":") < 2 or pattern is IPV4 and not _DIGIT_DOT.search(text):
            continue
        if pattern is TOKEN and longest_word < 24:
            continue  # a 24-character run holds no whitespace, so some whitespace-free word is that long
        for m in pattern.finditer(text):
            start, end = m.span("value") if "value" in pattern.groupindex else m.span()
            if any(start < s.end and s.start < end for s in taken):
                continue
            if kind == "IBAN":
                valid_end = _iban_prefix(m)
                if valid_end is not None:
                    taken.append(Span(kind, start, valid_end, text[start:valid_end]))
                else:
                    taken.append(Span("", start, end, m.group(0)))
            elif _valid(kind, m):
                taken.append(Span(kind, start, end, text[start:end]))
            elif pattern in SHAPE_RESERVES:
                taken.append(Span("", start, end, text[start:end]))
    return tuple(sorted((s for s in taken if s.kind), key=lambda s: s.start))


def redact(text: str, mapping: dict[tuple[str, str], str]) -> str:
    """Replace each sensitive span with a typed placeholder; `mapping` keeps one placeholder per entity."""
    return _substitute(text, find_sensitive(text), mapping)


def _substitute(text: str, spans, mapping: dict[tuple[str, str], str]) -> str:
    out, last = [], 0
    for span in spans:
        key = (span.kind, span.text)
        if key not in mapping:
            n = sum(1 for k in mapping if k[0] == span.kind) + 1
            mapping[key] = f"[{span.kind}_{n}]"
        out.append(text[last : span.start] + mapping[key])
        last = span.end
    return "".join(out) + text[last:]


def sensitive_findings(rec) -> list:
    """A finding per sensitive span: secrets are errors (never train on them), personal data a warning."""
    out = []

    def collect(where: str, key: str | None, text: str) -> str:
        out.extend(_finding(rec, where, span) for span in _spans(key, text))
        return text

    _map_record(rec, collect)
    return out


def _finding(rec, where: str, span: Span) -> Finding:
    secret = span.kind in SECRET_KINDS
    shown = span.text if not secret else span.text[:4] + "…"  # never echo a whole secret
    return Finding(
        Code.SECRET if secret else Code.PII,
        Severity.ERROR if secret else Severity.WARNING,
        rec.where,
        where,
        f"{span.kind} found: {shown!r}",
        "`tunesmith data scrub` writes a redacted copy"
        if not secret
        else "remove it and rotate the credential; `tunesmith data scrub` redacts it",
    )


def scrub_record(rec):
    """A copy of the record with every sensitive span replaced, consistently within the record: in its turns'
    content, its tool calls' arguments (a JSON string of them stays JSON) and its rejected turns."""
    mapping: dict[tuple[str, str], str] = {}
    clean = _map_record(rec, lambda where, key, text: _substitute(text, _spans(key, text), mapping))
    return clean, mapping


def _spans(key: str | None, text: str) -> tuple[Span, ...]:
    """The sensitive spans of a string; one under a key is read after its key (`{"password": "hunter2"}` as
    "password: hunter2"), and what is found in the key itself is left out."""
    if key is None:
        return _scan(text)
    head = f"{key}: "
    return tuple(
        Span(s.kind, s.start - len(head), s.end - len(head), s.text) for s in _scan(head + text) if s.start >= len(head)
    )


def _map_record(rec, fn):
    """A copy of `rec` with fn(where, key, text) -> text applied to every string it holds: each turn's content and
    its tool calls' arguments, in its messages and in its rejected turns (a preference pair's)."""
    from dataclasses import replace

    def turn(side: str, i: int, msg: dict) -> dict:
        out = dict(msg)
        if "content" in msg:
            out["content"] = _map_strings(msg["content"], fn, f"{side}[{i}].content")
        if isinstance(msg.get("tool_calls"), list):
            where = f"{side}[{i}].tool_calls"
            out["tool_calls"] = [_map_call(call, fn, f"{where}[{j}]") for j, call in enumerate(msg["tool_calls"])]
        return out

    messages = [turn("messages", i, m) for i, m in enumerate(rec.messages)]
    rejected = None if rec.rejected is None else [turn("rejected", i, m) for i, m in enumerate(rec.rejected)]
    return replace(rec, messages=messages, rejected=rejected)


def _map_call(call, fn, where: str):
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or "arguments" not in function:
        return call
    args, where = function["arguments"], f"{where}.function.arguments"
    if isinstance(args, str):  # a JSON string, as OpenAI sends them: each string in it, so that it stays JSON
        try:
            decoded = json.loads(args)
        except (ValueError, RecursionError):
            return {**call, "function": {**function, "arguments": fn(where, None, args)}}
        mapped = _map_strings(decoded, fn, where)
        args = args if mapped == decoded else json.dumps(mapped, ensure_ascii=False)
    else:
        args = _map_strings(args, fn, where)
    return {**call, "function": {**function, "arguments": args}}


def _map_strings(value, fn, where: str, key: str | None = None):
    """`value` with fn(where, key, text) applied to each string in it, through lists and dicts; `key` is the dict key
    a string sits under (a list's items take their list's)."""
    if isinstance(value, str):
        return fn(where, key, value)
    if isinstance(value, list):
        return [_map_strings(v, fn, f"{where}[{i}]", key) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _map_strings(v, fn, f"{where}.{k}", str(k)) for k, v in value.items()}
    return value


def scrub_records(records) -> tuple[list, Counter]:
    """`data scrub`: (the records redacted, how many entities of each kind were replaced)."""
    scrubbed, kinds = [], Counter()
    for rec in records:
        clean, mapping = scrub_record(rec)
        scrubbed.append(clean)
        kinds.update(kind for kind, _ in mapping)
    return scrubbed, kinds
