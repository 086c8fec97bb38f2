"""PII/secret detection accuracy: tunesmith's validated detector vs a naive regex baseline, on one labeled set.

    .venv/bin/python benchmarks/pii_accuracy.py [--n 3000] [--seed 0] [--json] [--errors 5]

A seeded generator writes customer-support style messages, each with zero, one or two planted entities (valid
card numbers, IBANs with correct check digits, SSNs in issued ranges, keys, addresses ...) at known offsets, and
hard negatives that must not be flagged (order numbers, dates, prices, versions, Luhn-invalid card numbers, IBANs
with a wrong checksum, invalid SSNs, emails at reserved documentation domains, ticket ids, times, commit hashes).
A prediction is a true positive when it has the gold kind and overlaps a gold span of that kind (each gold span
matched at most once). Baseline = one regex per type written the quick way, without validation (no Luhn, no
mod 97, no SSN ranges, no reserved domains, no entropy test), same overlap rule, same run, same texts: the
side-by-side columns show what validation buys in precision and what it costs in recall. Exits 1 when any
structured type (STRUCTURED below) has recall < 0.99, so the benchmark doubles as a check; --errors K shows why.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import re
import string
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from tunesmith.data.pii import Span, find_sensitive

KINDS = [
    "EMAIL",
    "PHONE",
    "CARD",
    "IBAN",
    "SSN",
    "IP",
    "ADDRESS",
    "PRIVATE_KEY",
    "AWS_KEY",
    "OPENAI_KEY",
    "GITHUB_TOKEN",
    "SECRET",
]
STRUCTURED = ["EMAIL", "CARD", "IBAN", "SSN", "IP", "AWS_KEY", "OPENAI_KEY", "GITHUB_TOKEN", "PRIVATE_KEY"]
MIN_RECALL = 0.99

ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits
BASE64 = ALNUM + "+/"

# ---------------------------------------------------------------------------------------------- entities

FIRST = [
    "ann",
    "maria",
    "jose",
    "wei",
    "olga",
    "james",
    "fatima",
    "lukas",
    "chloe",
    "ravi",
    "sofia",
    "tom",
    "amara",
    "kenji",
    "ines",
    "noah",
    "priya",
    "mateo",
]
LAST = [
    "lee",
    "garcia",
    "schmidt",
    "nguyen",
    "okafor",
    "smith",
    "rossi",
    "kowalski",
    "dubois",
    "tanaka",
    "patel",
    "oconnor",
    "silva",
    "murphy",
    "haddad",
    "novak",
]
DOMAINS = [
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.co.uk",
    "icloud.com",
    "proton.me",
    "gmx.de",
    "web.de",
    "orange.fr",
    "acme-corp.com",
    "northwind.io",
    "mail.contoso.net",
    "fastmail.fm",
    "uni-heidelberg.de",
    "shop.co.jp",
    "libero.it",
]
RESERVED = ["example.com", "example.org", "mail.example.net", "shop.test", "store.example", "qa.invalid"]

# '#' is any digit, 'N' a digit 2-9: US, UK, German, French, Spanish, Australian and Indian numbers as written.
PHONE_FORMATS = [
    "+1 (N##) N##-####",
    "(N##) N##-####",
    "N##-N##-####",
    "N##.N##.####",
    "+1 N## N## ####",
    "+1-N##-N##-####",
    "020 7### ####",
    "+44 20 7### ####",
    "07700 900###",
    "+44 7700 900###",
    "+49 30 ######",
    "+49 30 ########",
    "030 ########",
    "+49 151 ########",
    "+33 1 ## ## ## ##",
    "01 ## ## ## ##",
    "06 ## ## ## ##",
    "+34 6## ## ## ##",
    "+61 2 #### ####",
    "+91 9#### #####",
]

# (issuer prefixes, length, digit grouping)
CARD_SPECS = [
    (["4"], 16, (4, 4, 4, 4)),
    (["51", "52", "53", "54", "55", "2221", "2720"], 16, (4, 4, 4, 4)),
    (["34", "37"], 15, (4, 6, 5)),
    (["6011"], 16, (4, 4, 4, 4)),
]

# country -> BBAN layout as (alphabet, length) runs: n digits, a upper letters, c upper letters or digits.
IBAN_SPECS = {
    "DE": [("n", 18)],
    "GB": [("a", 4), ("n", 14)],
    "FR": [("n", 10), ("c", 11), ("n", 2)],
    "NL": [("a", 4), ("n", 10)],
    "ES": [("n", 20)],
    "IT": [("a", 1), ("n", 10), ("c", 12)],
    "CH": [("n", 5), ("c", 12)],
    "BE": [("n", 12)],
    "AT": [("n", 16)],
    "PL": [("n", 24)],
    "IE": [("a", 4), ("n", 14)],
}
IBAN_ALPHABETS = {"n": string.digits, "a": string.ascii_uppercase, "c": UPPER_DIGITS}

STREETS = [
    "Baker",
    "Pennsylvania",
    "Evergreen",
    "Elm",
    "Oak",
    "Maple",
    "Main",
    "High",
    "Church",
    "Sunset",
    "Market",
    "Fifth",
    "Park",
    "Lake Shore",
    "Mill Creek",
    "Cedar Hill",
    "Abbey",
]
SUFFIXES = [
    "Street",
    "St",
    "Avenue",
    "Ave",
    "Road",
    "Rd",
    "Lane",
    "Drive",
    "Boulevard",
    "Blvd",
    "Court",
    "Way",
    "Place",
    "Terrace",
]
PEM_LABELS = ["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY"]


def _chars(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _pattern(rng: random.Random, fmt: str) -> str:
    """Fill a format: '#' -> any digit, 'N' -> 2-9, anything else kept."""
    return "".join(str(rng.randint(0, 9)) if c == "#" else str(rng.randint(2, 9)) if c == "N" else c for c in fmt)


def _group(s: str, sizes: tuple[int, ...], sep: str) -> str:
    out, i = [], 0
    for size in sizes:
        out.append(s[i : i + size])
        i += size
    return sep.join(out)


def luhn_check_digit(partial: str) -> str:
    """The digit that makes `partial + digit` Luhn-valid (written independently of pii.luhn_ok)."""
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str(-total % 10)


def iban_check_digits(country: str, bban: str) -> str:
    """ISO 13616 check digits: 98 - (BBAN + country + '00', letters as 10..35) mod 97."""
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{98 - int(numeric) % 97:02d}"


def _email(rng: random.Random, domains: list[str] = DOMAINS) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first[0]}{last}",
            f"{first}{rng.randint(1, 99)}",
            f"{first}_{last}",
            f"{first}+{rng.choice(['orders', 'shop', 'news'])}",
            f"{last}.{first}{rng.randint(70, 99)}",
        ]
    )
    if rng.random() < 0.15:
        local = local.capitalize()
    return f"{local}@{rng.choice(domains)}"


def _phone(rng: random.Random) -> str:
    return _pattern(rng, rng.choice(PHONE_FORMATS))


def _card_digits(rng: random.Random) -> tuple[str, tuple[int, ...]]:
    prefixes, length, sizes = rng.choice(CARD_SPECS)
    partial = rng.choice(prefixes)
    partial += _chars(rng, string.digits, length - 1 - len(partial))
    return partial + luhn_check_digit(partial), sizes


def _card(rng: random.Random) -> str:
    digits, sizes = _card_digits(rng)
    return _group(digits, sizes, rng.choice([" ", " ", "-", ""]))


def _iban_parts(rng: random.Random) -> tuple[str, str]:
    country = rng.choice(sorted(IBAN_SPECS))
    bban = "".join(_chars(rng, IBAN_ALPHABETS[a], n) for a, n in IBAN_SPECS[country])
    return country, bban


def _format_iban(rng: random.Random, iban: str) -> str:
    """Paper format (groups of four) most of the time, the electronic format otherwise."""
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if rng.random() < 0.65 else iban


def _iban(rng: random.Random) -> str:
    country, bban = _iban_parts(rng)
    return _format_iban(rng, country + iban_check_digits(country, bban) + bban)


def _ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _ipv4(rng: random.Random) -> str:
    first = rng.choice([10, 172, 192, 203, 198, 81, 94, 145, rng.randint(1, 223)])
    first = 11 if first == 127 else first
    return ".".join(str(o) for o in (first, *(rng.randint(0, 255) for _ in range(3))))


def _ipv6(rng: random.Random) -> str:
    """Exploded, zero-suppressed or '::'-compressed (RFC 5952) text of an address with a run of zero groups."""
    groups = [rng.choice([0x2001, 0x2A02, 0x2600, 0xFE80]), rng.randint(0, 0xFFFF)]
    zeros = rng.randint(1, 4)
    groups += [0] * zeros + [rng.randint(1, 0xFFFF) for _ in range(6 - zeros)]
    addr = ipaddress.IPv6Address(int("".join(f"{g:04x}" for g in groups), 16))
    form = rng.choice(["exploded", "suppressed", "compressed"])
    if form == "suppressed":
        return ":".join(f"{g:x}" for g in groups)
    return addr.exploded if form == "exploded" else addr.compressed


def _ip(rng: random.Random) -> str:
    return _ipv4(rng) if rng.random() < 0.6 else _ipv6(rng)


def _address(rng: random.Random) -> str:
    return f"{rng.randint(1, 9999)} {rng.choice(STREETS)} {rng.choice(SUFFIXES)}"


def _private_key(rng: random.Random) -> str:
    label = rng.choice(PEM_LABELS)
    body = ["MII" + _chars(rng, BASE64, 61)] + [_chars(rng, BASE64, 64) for _ in range(rng.randint(1, 5))]
    body.append(_chars(rng, BASE64, rng.randint(8, 60)) + "==")
    return "\n".join([f"-----BEGIN {label}-----", *body, f"-----END {label}-----"])


def _aws_key(rng: random.Random) -> str:
    return rng.choice(["AKIA", "AKIA", "ASIA"]) + _chars(rng, UPPER_DIGITS, 16)


def _openai_key(rng: random.Random) -> str:
    return rng.choice(["sk-", "sk-proj-"]) + _chars(rng, ALNUM, rng.randint(40, 48))


def _github_token(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return rng.choice(["ghp_", "ghp_", "gho_", "ghs_"]) + _chars(rng, ALNUM, 36)
    return f"github_pat_11{_chars(rng, UPPER_DIGITS, 20)}_{_chars(rng, ALNUM, 59)}"


def _secret(rng: random.Random) -> str:
    """A random token as services issue them: 32/40 base62 characters or 43 of base64url."""
    return _chars(rng, ALNUM, rng.choice([32, 40])) if rng.random() < 0.7 else _chars(rng, ALNUM + "-_", 43)


ENTITIES: dict[str, Callable[[random.Random], str]] = {
    "EMAIL": _email,
    "PHONE": _phone,
    "CARD": _card,
    "IBAN": _iban,
    "SSN": _ssn,
    "IP": _ip,
    "ADDRESS": _address,
    "PRIVATE_KEY": _private_key,
    "AWS_KEY": _aws_key,
    "OPENAI_KEY": _openai_key,
    "GITHUB_TOKEN": _github_token,
    "SECRET": _secret,
}

# ---------------------------------------------------------------------------------------------- hard negatives


def _order_number(rng: random.Random) -> str:
    return rng.choice(
        [
            f"#{_chars(rng, string.digits, rng.randint(6, 8))}",
            f"ORD-{_chars(rng, string.digits, 6)}",
            f"{_chars(rng, string.ascii_uppercase, 2)}-{_chars(rng, string.digits, 6)}",
            _chars(rng, "123456789", 1) + _chars(rng, string.digits, 8),
        ]
    )


def _date(rng: random.Random) -> str:
    y, m, d = rng.randint(2019, 2027), rng.randint(1, 12), rng.randint(1, 28)
    month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][m - 1]
    return rng.choice(
        [
            f"{y}-{m:02d}-{d:02d}",
            f"{d:02d}/{m:02d}/{y}",
            f"{m}/{d}/{y}",
            f"{d:02d}.{m:02d}.{y}",
            f"{month} {d}, {y}",
            f"{d} {month} {y}",
        ]
    )


def _price(rng: random.Random) -> str:
    amount = rng.randint(1, 4999) + rng.choice([0, 0.5, 0.99, 0.9])
    return rng.choice(
        [
            f"${amount:,.2f}",
            f"€{amount:.2f}",
            f"£{amount:.2f}",
            f"USD {amount:,.2f}",
            f"{amount:.2f} EUR".replace(".", ","),
        ]
    )


def _version(rng: random.Random) -> str:
    v = f"{rng.randint(1, 19)}.{rng.randint(0, 30)}.{rng.randint(0, 12)}"
    return rng.choice([f"v{v}", v, f"{v}-beta.{rng.randint(1, 5)}"])


def _bad_card(rng: random.Random) -> str:
    """A 16-digit number in card format whose last digit breaks the Luhn check."""
    while True:
        digits, sizes = _card_digits(rng)
        if len(digits) == 16:
            break
    digits = digits[:-1] + str((int(digits[-1]) + rng.randint(1, 9)) % 10)
    return _group(digits, sizes, rng.choice([" ", "-", ""]))


def _bad_iban(rng: random.Random) -> str:
    """An IBAN-shaped string whose check digits are wrong (a typo in the check digits)."""
    country, bban = _iban_parts(rng)
    good = int(iban_check_digits(country, bban))
    wrong = rng.choice([c for c in range(2, 99) if c != good])
    return _format_iban(rng, f"{country}{wrong:02d}{bban}")


def _bad_ssn(rng: random.Random) -> str:
    """Dashed SSN shape outside the issued ranges: area 000/666/9xx, group 00 or serial 0000."""
    area, group, serial = f"{rng.randint(1, 665):03d}", f"{rng.randint(1, 99):02d}", f"{rng.randint(1, 9999):04d}"
    broken = rng.choice(["area0", "area666", "area9", "group", "serial"])
    area = {"area0": "000", "area666": "666", "area9": str(rng.randint(900, 999))}.get(broken, area)
    group, serial = ("00" if broken == "group" else group), ("0000" if broken == "serial" else serial)
    return f"{area}-{group}-{serial}"


def _long_word(rng: random.Random) -> str:
    return rng.choice(
        [
            "internationalization",
            "customer_notification_preferences",
            "PaymentMethodVerificationFailed",
            "Supercalifragilisticexpialidocious",
            "ERR_CONNECTION_REFUSED_BY_UPSTREAM",
            "enableExperimentalNotificationBadges",
            "net::ERR_HTTP2_PROTOCOL_ERROR",
            "antidisestablishmentarianism",
        ]
    )


def _ticket(rng: random.Random) -> str:
    n = rng.randint(1000, 99999)
    return rng.choice([f"TCK-{n}", f"INC{n:07d}", f"CASE-{n}", f"SUP-{n}"])


def _clock(rng: random.Random) -> str:
    h, m = rng.randint(0, 23), rng.choice([0, 5, 15, 30, 45, rng.randint(0, 59)])
    return rng.choice(
        [
            f"{h}:{m:02d}",
            f"{h:02d}:{m:02d}",
            f"{h % 12 or 12}:{m:02d} {'pm' if h >= 12 else 'am'}",
            f"{h:02d}:{m:02d}:{rng.randint(0, 59):02d}",
        ]
    )


def _commit(rng: random.Random) -> str:
    return _chars(rng, "0123456789abcdef", rng.choice([7, 40]))


def _tracking(rng: random.Random) -> str:
    return "1Z" + _chars(rng, UPPER_DIGITS, 6) + _chars(rng, string.digits, 10)


DECOYS: dict[str, Callable[[random.Random], str]] = {
    "order": _order_number,
    "date": _date,
    "price": _price,
    "version": _version,
    "bad_card": _bad_card,
    "bad_iban": _bad_iban,
    "bad_ssn": _bad_ssn,
    "reserved_email": lambda rng: _email(rng, RESERVED),
    "long_word": _long_word,
    "ticket": _ticket,
    "time": _clock,
    "commit": _commit,
    "tracking": _tracking,
}

# ---------------------------------------------------------------------------------------------- messages

TEMPLATES: dict[str, list[str]] = {
    "EMAIL": [
        "You can reach me at {} if the chat drops.",
        "Please send the invoice to {} instead of my old address.",
        "My account email is {}, but I can't log in.",
        "I never got the reset link at {}.",
        "Could you update my contact email to {}?",
        "Looping in my colleague ({}) who handles billing.",
    ],
    "PHONE": [
        "Call me back on {} any time after 5pm.",
        "My number changed, it's now {}.",
        "The courier should phone {} before delivery.",
        "You can text me at {} if that's easier.",
        "I tried calling you from {} but got cut off.",
    ],
    "CARD": [
        "I was charged twice on my card {}.",
        "Please refund the card I paid with: {}.",
        "My new card is {}, can you update the subscription?",
        "Card number {} keeps getting declined.",
        "There's a payment from {} that I don't recognise.",
    ],
    "IBAN": [
        "Please send the refund to my IBAN {}.",
        "Our bank details: IBAN {}, account holder Maria Rossi.",
        "Can you switch the direct debit to {}?",
        "I transferred the money from {} yesterday.",
        "New account for payouts: {}",
    ],
    "SSN": [
        "For the tax form, my SSN is {}.",
        "The W-9 asks for a social security number, mine is {}.",
        "I entered my SSN {} but the page timed out.",
        "Verification needs SSN {} apparently?",
        "ssn: {} - dob is on file",
    ],
    "IP": [
        "The camera at {} stopped responding this morning.",
        "I get 403 errors when connecting from {}.",
        "Can you whitelist {} for our office?",
        "Our server {} can't reach your API.",
        "There were login attempts from {} that weren't me.",
    ],
    "ADDRESS": [
        "Please ship it to {} instead.",
        "My billing address is {}, London.",
        "The parcel was left at {} but I live next door.",
        "We moved to {} last month.",
        "Deliver to {}, apartment 4B.",
    ],
    "AWS_KEY": [
        "Our config has aws_access_key_id = {} - is that safe to share?",
        "The build log printed AWS_ACCESS_KEY_ID={} by mistake.",
        "I pasted the key {} into the integration settings.",
        "Here's the access key you asked for: {}",
    ],
    "OPENAI_KEY": [
        "I set OPENAI_API_KEY={} and it still says unauthorized.",
        "My key {} stopped working after the upgrade.",
        "Is {} the right format for the API key field?",
        "The plugin wants a key, I used {}.",
    ],
    "GITHUB_TOKEN": [
        "The CI uses the token {} to push.",
        "I created a personal access token ({}) but clone fails.",
        "I ran git remote set-url origin https://{}@github.com/acme/app.git and it hangs.",
        "GITHUB_TOKEN={} is set in the workflow but the action fails.",
    ],
    "PRIVATE_KEY": [
        "Here is the deploy key from the server:\n{}\nCan you add it?",
        "I think this is the wrong key?\n{}",
        "{}\nThat's what id_rsa contains, is the format right?",
    ],
    "SECRET": [
        "The webhook is configured with token={} but signatures fail.",
        "Our staging config: client_secret={}",
        "I sent the header Authorization: Bearer {} and got 401.",
        "The session secret is {} if you need it for debugging.",
        "export WEBHOOK_SIGNING_SECRET='{}'",
    ],
}
DECOY_TEMPLATES: dict[str, list[str]] = {
    "order": ["Order {} still hasn't shipped.", "I'm asking about order {}.", "The receipt says reference {}."],
    "date": ["It was delivered on {}.", "My subscription renews on {}.", "I ordered it on {}."],
    "price": ["I was charged {} instead of the advertised price.", "The total came to {}."],
    "version": ["Since updating to {} the app crashes on start.", "I'm on app version {}."],
    "bad_card": ["I typed {} but checkout says the card number is invalid, typo on my side?"],
    "bad_iban": ["The bank form says {} is not a valid IBAN, I must have mistyped it."],
    "bad_ssn": ["Your form pre-filled {} in the SSN field, is that a placeholder?"],
    "reserved_email": ["The template still says to email {}.", "Replies come from {}, is that a test account?"],
    "long_word": ["The settings page has a {} toggle that does nothing.", "I got an error mentioning {}."],
    "ticket": ["This is a follow-up to ticket {}.", "Case {} was closed without an answer."],
    "time": ["I called at {} and waited an hour.", "The outage started around {}."],
    "commit": ["Your changelog says it was fixed in commit {}."],
    "tracking": ["Tracking number {} shows no updates for a week."],
}
FILLER = [
    "Thanks for the quick reply!",
    "The app keeps logging me out.",
    "Can someone look into this today?",
    "I've been a customer for years and this never happened before.",
    "Sorry for the long message.",
]
GREETINGS = ["", "", "Hi,", "Hello,", "Hi team,", "Good morning!"]
SIGNOFFS = ["", "", " Thanks!", " Cheers, Ana", "\n\nBest regards,\nTom"]


@dataclass(frozen=True)
class Sample:
    """One message: its text, the planted entities (gold) and the planted hard negatives (decoys)."""

    text: str
    gold: tuple[Span, ...]
    decoys: tuple[Span, ...]


def _compose(greeting: str, pieces: list[tuple[str, str, str, bool]], signoff: str) -> Sample:
    """Join sentences, recording where each planted value lands. A piece is (template, value, label, is_gold)."""
    text, gold, decoys = greeting, [], []
    for template, value, label, is_gold in pieces:
        head, _, tail = template.partition("{}")
        text += (" " if text else "") + head
        if label:
            (gold if is_gold else decoys).append(Span(label, len(text), len(text) + len(value), value))
        text += value + tail
    return Sample(text + signoff, tuple(gold), tuple(decoys))


def _make_sample(rng: random.Random) -> Sample:
    pieces = [
        (rng.choice(TEMPLATES[kind]), ENTITIES[kind](rng), kind, True)
        for kind in rng.choices(KINDS, k=rng.choices([0, 1, 2], [0.25, 0.5, 0.25])[0])
    ]
    n_decoys = max(rng.choices([0, 1, 2], [0.35, 0.5, 0.15])[0], 0 if pieces else 1)
    for name in rng.choices(sorted(DECOYS), k=n_decoys):
        pieces.append((rng.choice(DECOY_TEMPLATES[name]), DECOYS[name](rng), name, False))
    if len(pieces) < 2 and rng.random() < 0.5:
        pieces.append((rng.choice(FILLER), "", "", False))
    rng.shuffle(pieces)
    return _compose(rng.choice(GREETINGS), pieces, rng.choice(SIGNOFFS))


def make_labeled_set(n: int = 3000, seed: int = 0) -> list[Sample]:
    """`n` support messages with 0-2 planted entities each and hard negatives, reproducible from `seed`."""
    rng = random.Random(seed)
    return [_make_sample(rng) for _ in range(n)]


# ---------------------------------------------------------------------------------------------- baseline

# One regex per type, no validation step: what a quick scrubber looks like. Cards and IBANs take the same separators
# as tunesmith's patterns, so recall is comparable and precision tells; phone numbers take any 2-8 digit groups,
# IPv6 may be '::'-compressed, and IP is tried before PHONE.
BASELINE_PATTERNS = [
    (kind, re.compile(p))
    for kind, p in [
        ("PRIVATE_KEY", r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
        ("AWS_KEY", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
        ("OPENAI_KEY", r"\bsk-[\w-]{20,}"),
        ("GITHUB_TOKEN", r"\b(?:gh[pousr]_|github_pat_)\w{36,}"),
        ("EMAIL", r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)+"),
        ("IBAN", r"\b[A-Z]{2}\d{2}[A-Z0-9 ]{11,30}\b"),
        ("CARD", r"\b\d(?:[ -]?\d){12,18}\b"),
        ("SSN", r"\b\d{3}-\d{2}-\d{4}\b"),
        ("IP", r"\b(?:\d{1,3}\.){3}\d{1,3}\b|\b[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{0,4}){2,7}\b"),
        ("PHONE", r"(?:\+\d{1,3}[ -]?)?(?:\(\d{2,4}\) ?)?\b\d{2,5}(?:[ .-]\d{2,8}){1,4}\b"),
        (
            "ADDRESS",
            r"\b\d{1,5} (?:[A-Z][a-z]+ ){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Lane|Drive|Boulevard|Blvd|"
            r"Court|Way|Place|Terrace)\b",
        ),
        ("SECRET", r"\b[\w+/=-]{24,}"),
    ]
]


def baseline_detect(text: str) -> list[Span]:
    """Every baseline match, earlier patterns winning overlaps (the same rule tunesmith uses), none validated."""
    taken: list[Span] = []
    for kind, pattern in BASELINE_PATTERNS:
        for m in pattern.finditer(text):
            if not any(m.start() < s.end and s.start < m.end() for s in taken):
                taken.append(Span(kind, m.start(), m.end(), m.group(0)))
    return sorted(taken, key=lambda s: s.start)


# ---------------------------------------------------------------------------------------------- scoring


@dataclass
class Tally:
    """Counts for one type. With nothing predicted precision is 1.0; with nothing to find recall is 1.0."""

    gold: int = 0
    pred: int = 0
    tp: int = 0

    @property
    def precision(self) -> float:
        return self.tp / self.pred if self.pred else 1.0

    @property
    def recall(self) -> float:
        return self.tp / self.gold if self.gold else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


@dataclass(frozen=True)
class Error:
    """A missed gold span or a false positive, with what it landed on (`note`) for diagnosis."""

    kind: str
    what: str  # "missed" or "false positive"
    fragment: str
    note: str
    text: str


@dataclass
class Result:
    """One detector's tallies per type, its errors and its speed on a labeled set."""

    tallies: dict[str, Tally]
    errors: list[Error]
    texts_per_s: float

    @property
    def micro(self) -> Tally:
        t = self.tallies.values()
        return Tally(sum(x.gold for x in t), sum(x.pred for x in t), sum(x.tp for x in t))


def _overlaps(a: Span, b: Span) -> bool:
    return a.start < b.end and b.start < a.end


def _match(sample: Sample, preds: list[Span], tallies: dict[str, Tally], errors: list[Error]) -> None:
    """Pair predictions with gold spans of the same kind that they overlap, each gold span at most once."""
    unmatched = list(sample.gold)
    for g in sample.gold:
        tallies[g.kind].gold += 1
    for p in preds:
        tally = tallies.setdefault(p.kind, Tally())
        tally.pred += 1
        hit = next((g for g in unmatched if g.kind == p.kind and _overlaps(g, p)), None)
        if hit:
            unmatched.remove(hit)
            tally.tp += 1
        else:
            under = [s.kind for s in sample.gold + sample.decoys if _overlaps(s, p)]
            errors.append(
                Error(p.kind, "false positive", p.text, "on " + (", ".join(under) or "plain text"), sample.text)
            )
    for g in unmatched:
        got = [p.kind for p in preds if _overlaps(g, p)]
        errors.append(Error(g.kind, "missed", g.text, "got " + (", ".join(got) or "nothing"), sample.text))


def score(detector: Callable[[str], list[Span]], samples: list[Sample]) -> Result:
    """Run `detector` on every sample (timed) and tally gold, predicted and true positives per type."""
    start = time.perf_counter()
    predictions = [detector(s.text) for s in samples]
    seconds = time.perf_counter() - start
    tallies: dict[str, Tally] = {k: Tally() for k in KINDS}
    errors: list[Error] = []
    for sample, preds in zip(samples, predictions):
        _match(sample, preds, tallies, errors)
    return Result(tallies, errors, len(samples) / max(seconds, 1e-9))


def failed_kinds(result: Result) -> list[str]:
    """Structured types whose recall is under MIN_RECALL."""
    return [k for k in STRUCTURED if result.tallies[k].recall < MIN_RECALL]


# ---------------------------------------------------------------------------------------------- output


def _row(name: str, ours: Tally, base: Tally, style: str = "") -> list[str]:
    red = style or ("red" if name in STRUCTURED and ours.recall < MIN_RECALL else "")
    cells = [
        str(ours.gold),
        str(ours.pred),
        str(ours.tp),
        f"{ours.precision:.3f}",
        f"[{red}]{ours.recall:.3f}[/]" if red else f"{ours.recall:.3f}",
        f"{ours.f1:.3f}",
        str(base.pred),
        f"{base.precision:.3f}",
        f"{base.recall:.3f}",
        f"{base.f1:.3f}",
    ]
    return [name, *cells]


def print_table(ours: Result, base: Result, n: int, seed: int) -> None:
    """The per-type table, micro average, throughput and what validation changed."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"PII detection on {n} synthetic support messages (seed {seed})")
    for col in ["type", "gold", "pred", "TP", "P", "R", "F1", "base pred", "base P", "base R", "base F1"]:
        table.add_column(col, justify="left" if col == "type" else "right", no_wrap=True)
    for kind in KINDS:
        table.add_row(*_row(kind, ours.tallies[kind], base.tallies[kind]), end_section=kind == KINDS[-1])
    table.add_row(*_row("micro", ours.micro, base.micro, style="bold"), style="bold")
    console = Console()
    if console.width < 110:  # not a terminal: rich would squeeze the table into 80 columns
        console = Console(width=110)
    console.print(table)
    fp_ours, fp_base = ours.micro.pred - ours.micro.tp, base.micro.pred - base.micro.tp
    console.print(f"throughput: tunesmith {ours.texts_per_s:,.0f} texts/s, baseline {base.texts_per_s:,.0f} texts/s")
    console.print(
        f"false positives: tunesmith {fp_ours}, baseline {fp_base} ({fp_base / max(fp_ours, 1):.1f}x as many)"
    )
    console.print(
        f"micro precision {ours.micro.precision:.3f} vs {base.micro.precision:.3f} baseline, "
        f"micro recall {ours.micro.recall:.3f} vs {base.micro.recall:.3f} baseline"
    )
    failed = failed_kinds(ours)
    console.print(
        f"[red]FAIL: recall < {MIN_RECALL} for {', '.join(failed)}[/]"
        if failed
        else f"[green]OK: every structured type has recall >= {MIN_RECALL}[/]"
    )


def print_errors(result: Result, per_kind: int) -> None:
    """Up to `per_kind` misses and false positives per type, each with the message it came from."""
    shown: dict[tuple[str, str], int] = {}
    for e in result.errors:
        key = (e.kind, e.what)
        shown[key] = shown.get(key, 0) + 1
        if shown[key] <= per_kind:
            print(f"{e.kind:<13} {e.what:<15} {e.fragment!r} ({e.note})\n{'':<29} in: {e.text!r}")


def as_json(ours: Result, base: Result, n: int, seed: int) -> dict:
    def block(r: Result) -> dict:
        return {
            "texts_per_s": round(r.texts_per_s),
            "micro": r.micro.as_dict(),
            "kinds": {k: r.tallies[k].as_dict() for k in KINDS},
        }

    return {
        "n": n,
        "seed": seed,
        "min_recall": MIN_RECALL,
        "structured": STRUCTURED,
        "failed": failed_kinds(ours),
        "tunesmith": block(ours),
        "baseline": block(base),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="number of messages")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print a machine-readable dict instead of the table")
    parser.add_argument(
        "--errors",
        type=int,
        default=0,
        metavar="K",
        help="also list up to K tunesmith misses and false positives per type",
    )
    args = parser.parse_args()
    samples = make_labeled_set(args.n, args.seed)
    ours, base = score(find_sensitive, samples), score(baseline_detect, samples)
    if args.json:
        print(json.dumps(as_json(ours, base, args.n, args.seed), indent=2))
    else:
        print_table(ours, base, args.n, args.seed)
    if args.errors:
        print_errors(ours, args.errors)
    return 1 if failed_kinds(ours) else 0


if __name__ == "__main__":
    sys.exit(main())
