"""Stale facts: prices, dates, version numbers, URLs, policy numbers and "as of" statements in replies.

Such facts change; a model that learns them in its weights keeps repeating yesterday's price. They belong in
retrieval or a tool call. Flagged as info findings on the assistant turns. A date more than HISTORY_YEARS before
today is history ("Waterloo was fought on June 18, 1815"), which does not change, and is not flagged.

    stale_fact_findings(record)
    find_facts(text, today=date(2026, 1, 1))   # "today" is the system date unless given
"""

from __future__ import annotations

import re
from datetime import date

from tunesmith.data.findings import Code, Finding, Severity

_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
FACT_PATTERNS: list[tuple[str, re.Pattern]] = [
    # Thousands and decimal separators only between digits: "$800," ends at the 0, not at the sentence's comma.
    ("price", re.compile(r"(?:[$€£¥]\s?\d(?:[\d,.]*\d)?|\b\d(?:[\d,.]*\d)?\s?(?:USD|EUR|GBP|dollars|euros)\b)", re.I)),
    (
        "date",
        re.compile(
            rf"\b(?:\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}/\d{{1,2}}/\d{{2,4}}|{_MONTH}\s\d{{1,2}},?\s\d{{4}}|"
            rf"\d{{1,2}}\s{_MONTH}\s\d{{4}})\b",
            re.I,
        ),
    ),
    ("version", re.compile(r"\b(?:v\d+(?:\.\d+)+|version\s\d+(?:\.\d+)*)\b", re.I)),
    ("url", re.compile(r"\bhttps?://\S+|\bwww\.\S+", re.I)),
    ("policy", re.compile(r"\b(?:policy|section|clause|article)\s(?:no\.?\s)?\d+(?:\.\d+)*\b", re.I)),
    ("as_of", re.compile(r"\b(?:as of|currently|at the moment|this year|right now)\b", re.I)),
]


# Cheap pre-tests on the lowercased text: a kind's pattern cannot match without one of these (and most replies
# state no fact at all, so most texts cost a few substring tests instead of six regex scans).
NEEDLES = {
    "price": ("$", "€", "£", "¥", "usd", "eur", "gbp", "dollar"),
    "url": ("http", "www."),
    "policy": ("policy", "section", "clause", "article"),
    "as_of": ("as of", "currently", "at the moment", "this year", "right now"),
}
NEEDS_DIGIT = {"date", "version", "policy"}
_DIGIT = re.compile(r"\d")


HISTORY_YEARS = 2  # a date in a year ending more than this many years before today is history, not a changing fact
_YEAR = re.compile(r"(?<!\d)\d{4}(?!\d)")
_SHORT_YEAR = re.compile(r"/(\d{2})$")


def find_facts(text: str, today: date | None = None) -> list[tuple[str, str]]:
    """(kind, matched text) for every changeable fact in `text`; dates of history (`is_history`) are not facts
    that change. `today` defaults to the system date."""
    today = today or date.today()
    lowered, has_digit = text.lower(), _DIGIT.search(text) is not None
    out = []
    for kind, pattern in FACT_PATTERNS:
        if (
            kind in NEEDS_DIGIT
            and not has_digit
            or kind in NEEDLES
            and not any(map(lowered.__contains__, NEEDLES[kind]))
        ):
            continue
        found = [m.group(0) for m in pattern.finditer(text)]
        out += [(kind, fact) for fact in found if not (kind == "date" and is_history(fact, today))]
    return out


def is_history(date_text: str, today: date) -> bool:
    """Whether a matched date's year ended more than HISTORY_YEARS before `today` (only the year is read: day and
    month order differ between countries). A two-digit year is read as strptime's %y does (69-99: 1900s)."""
    if match := _YEAR.search(date_text):
        year = int(match.group(0))
    elif match := _SHORT_YEAR.search(date_text):
        short = int(match.group(1))
        year = short + (1900 if short >= 69 else 2000)
    else:
        return False
    return year < today.year - HISTORY_YEARS


def stale_fact_findings(rec, today: date | None = None) -> list:
    """An info finding per assistant turn that states changeable facts (`today`: see `find_facts`)."""
    out = []
    for i, msg in enumerate(rec.messages):
        if msg.get("role") != "assistant":
            continue
        facts = find_facts(str(msg.get("content") or ""), today)
        if facts:
            listed = ", ".join(f"{kind} {text!r}" for kind, text in facts[:4])
            out.append(
                Finding(
                    Code.STALE_FACT,
                    Severity.INFO,
                    rec.where,
                    f"messages[{i}].content",
                    f"the reply states facts that change: {listed}",
                    "facts that change belong in retrieval (RAG) or a tool call, not in the weights",
                )
            )
    return out
