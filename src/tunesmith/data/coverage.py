"""Coverage: does the data show the model the world it will face?

Pushback (refusals, escalations, clarifying questions), dataset size against the guidance for the task type,
class balance, and whether inputs look like real users (typos, casing) rather than tidy templates.

    coverage_findings(records, task_type="json", label_of=lambda r: ...)
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Callable

from tunesmith.data.records import Record

# Starting dataset sizes from the practice guide (tone/style 50-200, classification and structured replies 200-1,000).
GUIDANCE = {"chat": (50, 200), "classification": (200, 1000), "json": (200, 1000)}
BEHAVIOR_PATTERNS = {
    "refuse": re.compile(r"\b(refuse|can(?:no|')t help|cannot (?:help|assist)|not able to (?:help|assist)|"
                         r"unable to (?:help|assist)|won't be able)\b", re.I),
    "escalate": re.compile(r"\b(escalat\w*|human agent|a manager|supervisor|transfer(?:ring)? you)\b", re.I),
    "clarify": re.compile(r"(\?\s*$|\b(could you (?:clarify|share|tell)|more (?:information|details)|needs_info)\b)",
                          re.I),
}


def reply_behavior(reply: str) -> str:
    """answer, refuse, escalate or clarify, from the words of a reply (JSON values included)."""
    for behavior, pattern in BEHAVIOR_PATTERNS.items():
        if pattern.search(reply):
            return behavior
    return "answer"


def _looks_real(text: str) -> bool:
    """A user message with the marks of real typing: all lowercase, no final punctuation, shouting, or '!!'/'??'."""
    stripped = text.strip()
    return bool(stripped) and (stripped == stripped.lower() or stripped[-1] not in ".!?"
                               or stripped.isupper() or "!!" in stripped or "??" in stripped)


def coverage_findings(records: list[Record], task_type: str = "chat",
                      label_of: Callable[[Record], str | None] = lambda r: None) -> list:
    """Dataset-level findings, each `where` = "dataset"."""
    from tunesmith.data.checks import Code, Finding, Severity

    def finding(code, severity, message, hint):
        return Finding(code, severity, "dataset", "", message, hint)

    out = []
    n = len(records)
    if not n:
        return out
    low, high = GUIDANCE[task_type]
    if n < low:
        out.append(finding(Code.LOW_DATA, Severity.WARNING,
                           f"{n} examples; the guidance for a {task_type} task starts at {low}-{high}",
                           "add real examples, or grow them with `tunesmith data synth` and review a sample"))
    behaviors = Counter(reply_behavior(r.reply or "") for r in records)
    pushback = n - behaviors["answer"]
    if pushback / n < 0.05:
        out.append(finding(Code.NO_PUSHBACK, Severity.WARNING,
                           f"only {pushback} of {n} replies refuse, escalate or ask a clarifying question",
                           "include refusals and escalations where the model should push back"))
    labels = Counter(label for label in map(label_of, records) if label is not None)
    if len(labels) >= 2:
        biggest = max(labels.values())
        for label, count in sorted(labels.items()):
            if count < 10 or count < 0.2 * biggest:
                out.append(finding(Code.CLASS_IMBALANCE, Severity.WARNING,
                                   f"class {label!r} has {count} examples (largest has {biggest})",
                                   "add examples of the rare class; the model will rarely predict it otherwise"))
    users = [m["content"] for r in records for m in r.prompt if m.get("role") == "user"]
    real = sum(map(_looks_real, users))
    if len(users) >= 20 and real / len(users) < 0.05:
        out.append(finding(Code.TOO_CLEAN, Severity.INFO,
                           f"only {real} of {len(users)} user messages show typos, lowercase or missing punctuation",
                           "include inputs as real users write them (typos, impatience, fragments)"))
    return out


def coverage_table(records: list[Record], label_of: Callable[[Record], str | None] = lambda r: None) -> dict:
    """Shares of reply behaviors and label counts, for reports."""
    return {"behaviors": dict(Counter(reply_behavior(r.reply or "") for r in records)),
            "labels": dict(Counter(label for label in map(label_of, records) if label is not None))}
