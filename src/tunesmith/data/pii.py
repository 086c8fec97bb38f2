"""Sensitive data: find it, and write a redacted copy with typed placeholders.

    spans = find_sensitive("mail me at ann@acme.io")          # [Span(kind="EMAIL", start=11, end=22, ...)]
    text, mapping = redact(text, mapping)                     # "mail me at [EMAIL_1]"

Types: EMAIL, PHONE, CARD (Luhn-valid, and written as a card is: in its issuer's groups, or next to a word such as
"card" or "visa"), IBAN (mod-97 valid), SSN (US, valid ranges), IP, ADDRESS (street lines), and secrets:
PRIVATE_KEY, AWS_KEY, OPENAI_KEY, GITHUB_TOKEN, SECRET (generic tokens judged by their own structure and entropy:
three character classes, high entropy, not a URL's host or path, not a path of words). Reserved documentation
domains (example.com, .test, .invalid) are not personal data and are left alone.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from tunesmith.data.findings import Code, Finding, Severity

SECRET_KINDS = {"PRIVATE_KEY", "AWS_KEY", "OPENAI_KEY", "GITHUB_TOKEN", "SECRET"}
RESERVED_DOMAINS = re.compile(r"(^|\.)(example\.(com|org|net)|[a-z0-9-]+\.(test|invalid|example|localhost))$", re.I)

PATTERNS: list[tuple[str, re.Pattern]] = [
    ("PRIVATE_KEY", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----")),
    ("AWS_KEY", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("OPENAI_KEY", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}\b")),
    ("GITHUB_TOKEN", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b")),
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
    ("SECRET", re.compile(r"\b[A-Za-z0-9_+/=-]{24,}\b")),
]


# Cheap pre-tests: a pattern cannot match a text without one of its needles (or without a digit).
NEEDLES = {
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
_PLAN = [(kind, p, NEEDLES.get(kind), 4 if p is IPV4 else MIN_DIGITS.get(kind, 0)) for kind, p in PATTERNS]
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
CARD_CONTEXT = 48  # characters either side of the number searched for a card word
DATE_LIKE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")


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
        return len(groups) > 1 or _card_context(match)
    if kind == "IBAN":
        return iban_ok(text)
    if kind == "SSN":
        area, group, serial = text.split("-")
        return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"
    if kind == "IP":
        if text.count(":") and text.count(":") < 2 + ("::" not in text) * 5:
            return False  # IPv6 has 8 groups, or fewer with "::"; "10:30:15" is a time
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            return False
        return not (ip.is_loopback or ip.is_unspecified)
    if kind == "PHONE":
        digits = re.sub(r"\D", "", text)
        if len(re.findall(r"\d+", text)) == 2 and text[0] not in "+(0":
            return False  # two bare groups ("case 2024-0871") are a reference; a national number starts with 0
        return 8 <= len(digits) <= 15 and not DATE_LIKE.fullmatch(text) and not _in_equation(match)
    if kind == "SECRET":
        classes = sum(bool(re.search(p, text)) for p in (r"[a-z]", r"[A-Z]", r"\d"))
        return (
            classes == 3
            and _entropy(text) >= 4.0
            and not _path_like(text)
            and not _in_url_path(match)
            and not _joined_words(text)
        )
    return True


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


def _card_context(match: re.Match) -> bool:
    text = match.string
    near = (
        text[max(0, match.start() - CARD_CONTEXT) : match.start()]
        + " "
        + text[match.end() : match.end() + CARD_CONTEXT]
    )
    return bool(CARD_WORDS.search(near))


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


# A string shaped like one of these but failing its checksum is not sensitive, and no looser pattern
# (a card number inside a bad IBAN, a phone number in a bad SSN) may claim it either.
SHAPE_RESERVES = {"IBAN", "SSN"}


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
    for kind, pattern, needles, min_digits in _PLAN:
        if digits < min_digits or needles and not any(map(text.__contains__, needles)):
            continue
        if pattern is IPV6 and text.count(":") < 2 or pattern is IPV4 and not _DIGIT_DOT.search(text):
            continue
        if kind == "SECRET" and longest_word < 24:
            continue  # a 24-character run holds no whitespace, so some whitespace-free word is that long
        for m in pattern.finditer(text):
            start, end = m.span()
            if any(start < s.end and s.start < end for s in taken):
                continue
            if kind == "IBAN":
                valid_end = _iban_prefix(m)
                if valid_end is not None:
                    taken.append(Span(kind, start, valid_end, text[start:valid_end]))
                else:
                    taken.append(Span("", start, end, m.group(0)))
            elif _valid(kind, m):
                taken.append(Span(kind, start, end, m.group(0)))
            elif kind in SHAPE_RESERVES:
                taken.append(Span("", start, end, m.group(0)))
    return tuple(sorted((s for s in taken if s.kind), key=lambda s: s.start))


def redact(text: str, mapping: dict[tuple[str, str], str]) -> str:
    """Replace each sensitive span with a typed placeholder; `mapping` keeps one placeholder per entity."""
    out, last = [], 0
    for span in find_sensitive(text):
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
    for i, msg in enumerate(rec.messages):
        for span in find_sensitive(str(msg.get("content") or "")):
            secret = span.kind in SECRET_KINDS
            shown = span.text if not secret else span.text[:4] + "…"  # never echo a whole secret
            out.append(
                Finding(
                    Code.SECRET if secret else Code.PII,
                    Severity.ERROR if secret else Severity.WARNING,
                    rec.where,
                    f"messages[{i}].content",
                    f"{span.kind} found: {shown!r}",
                    "`tunesmith data scrub` writes a redacted copy"
                    if not secret
                    else "remove it and rotate the credential; `tunesmith data scrub` redacts it",
                )
            )
    return out


def scrub_record(rec):
    """A copy of the record with every message's sensitive spans replaced, consistently within the record."""
    from dataclasses import replace

    mapping: dict[tuple[str, str], str] = {}
    messages = [
        {**m, "content": redact(m["content"], mapping)} if isinstance(m.get("content"), str) else m
        for m in rec.messages
    ]
    return replace(rec, messages=messages), mapping


def scrub_records(records) -> tuple[list, Counter]:
    """`data scrub`: (the records redacted, how many entities of each kind were replaced)."""
    scrubbed, kinds = [], Counter()
    for rec in records:
        clean, mapping = scrub_record(rec)
        scrubbed.append(clean)
        kinds.update(kind for kind, _ in mapping)
    return scrubbed, kinds
