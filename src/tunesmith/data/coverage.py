"""Coverage: does the data show the model the world it will face?

Pushback (refusals, escalations, clarifying questions; not asked of math or classification tasks), dataset size
against the guidance for the task type, class balance, edge-case tags and slices too thin to learn or measure, and
whether inputs look like real users (typos, casing) rather than tidy templates.

    stats = CoverageStats(); [stats.add(coverage_of(rec), label) for ...]; stats.findings(task_type="json")
    coverage_findings(records, task_type="json", label_of=lambda r: ...)   # the same, for a list
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from tunesmith.data.findings import Code, Finding, Severity
from tunesmith.data.records import Record

EDGE_CASE_SHARE = 0.1  # below this share of tagged records, the data looks like happy paths only
# Starting dataset sizes from the practice guide (tone/style 50-200, classification and structured replies 200-1,000;
# "for complex domain behavior, expect 500-2,000 examples", which multi-step worked solutions are).
GUIDANCE = {"chat": (50, 200), "classification": (200, 1000), "json": (200, 1000), "math": (500, 2000)}
# Tasks whose replies are not expected to push back: a maths problem is solved, not refused or escalated, and a
# classification reply is a label (an "escalate" class, if any, is the label set's business, not the reply's words).
NO_PUSHBACK_EXPECTED = {"math", "classification"}
BEHAVIOR_PATTERNS = {
    "refuse": re.compile(
        r"\b(refuse|can(?:no|')t help|cannot (?:help|assist)|not able to (?:help|assist)|"
        r"unable to (?:help|assist)|won't be able)\b",
        re.I,
    ),
    "escalate": re.compile(r"\b(escalat\w*|human agent|a manager|supervisor|transfer(?:ring)? you)\b", re.I),
    "clarify": re.compile(
        r"(\?\s*$|\b(could you (?:clarify|share|tell)|more (?:information|details)|needs_info)\b)", re.I
    ),
    "abstain": re.compile(
        r"\b(i (?:do not|don't) know|i'm not sure|i am not sure|(?:can ?not|can't) verify|"
        r"(?:do not|don't) have (?:that|any|enough) information|no information (?:about|on)|"
        r"not something i (?:know|can answer))\b",
        re.I,
    ),
}


BEHAVIOR_NEEDLES = {
    "refuse": ("refuse", "can", "not able", "unable", "won't"),
    "escalate": ("escalat", "human agent", "manager", "supervisor", "transfer"),
    "clarify": ("?", "could you", "more information", "more details", "needs_info"),
    "abstain": ("know", "not sure", "verify", "information", "not something"),
}


def reply_behavior(reply: str) -> str:
    """answer, refuse, escalate, clarify or abstain, from the words of a reply (JSON values included)."""
    lowered = reply.lower()
    for behavior, pattern in BEHAVIOR_PATTERNS.items():
        # A substring pre-test first: most replies are answers, and a regex scan costs ~30x more.
        if any(map(lowered.__contains__, BEHAVIOR_NEEDLES[behavior])) and pattern.search(reply):
            return behavior
    return "answer"


def _looks_real(text: str) -> bool:
    """A user message with the marks of real typing: all lowercase, no final punctuation, shouting, or '!!'/'??'."""
    stripped = text.strip()
    return bool(stripped) and (
        stripped == stripped.lower()
        or stripped[-1] not in ".!?"
        or stripped.isupper()
        or "!!" in stripped
        or "??" in stripped
    )


class CoverageFeatures(NamedTuple):
    behavior: str
    tags: tuple[str, ...]
    users: int
    real_users: int


def coverage_of(rec: Record) -> CoverageFeatures:
    """What coverage counts of one record: its reply's behaviour, its tags, its user turns and how real they look."""
    users = [str(m.get("content") or "") for m in rec.prompt if m.get("role") == "user"]
    return CoverageFeatures(
        reply_behavior(rec.reply or ""), tuple(set(rec.tags)), len(users), sum(map(_looks_real, users))
    )


MIN_SLICE = 10  # a tag with fewer examples leaves about two in a 20% held-out set: too few to learn or to measure


@dataclass
class CoverageStats:
    """Counts that coverage is judged on, gathered one record at a time (memory does not grow with records)."""

    records: int = 0
    behaviors: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    tags: Counter = field(default_factory=Counter)
    tagged: int = 0
    users: int = 0
    real_users: int = 0

    def add(self, features: CoverageFeatures, label: str | None) -> None:
        """Count one record, as `coverage_of` describes it."""
        self.records += 1
        self.behaviors[features.behavior] += 1
        if label is not None:
            self.labels[label] += 1
        self.tags.update(features.tags)
        self.tagged += bool(features.tags)
        self.users += features.users
        self.real_users += features.real_users

    def findings(self, task_type: str = "chat") -> list:
        """Dataset-level findings, each `where` = "dataset"."""

        def finding(code, severity, message, hint):
            return Finding(code, severity, "dataset", "", message, hint)

        n = self.records
        if not n:
            return []
        out = []
        low, high = GUIDANCE[task_type]
        if n < low:
            out.append(
                finding(
                    Code.LOW_DATA,
                    Severity.WARNING,
                    f"{n} examples; the guidance for a {task_type} task starts at {low}-{high}",
                    "add real examples, or grow them with `tunesmith data synth` and review a sample",
                )
            )
        pushback = n - self.behaviors["answer"]
        if pushback / n < 0.05 and task_type not in NO_PUSHBACK_EXPECTED:
            out.append(
                finding(
                    Code.NO_PUSHBACK,
                    Severity.WARNING,
                    f"only {pushback} of {n} replies refuse, escalate, ask a clarifying question or say "
                    "they do not know",
                    "include refusals and escalations where the model should push back",
                )
            )
        if len(self.labels) >= 2:
            biggest = max(self.labels.values())
            for label, count in sorted(self.labels.items()):
                if count < 10 or count < 0.2 * biggest:
                    out.append(
                        finding(
                            Code.CLASS_IMBALANCE,
                            Severity.WARNING,
                            f"class {label!r} has {count} examples (largest has {biggest})",
                            "add examples of the rare class; the model will rarely predict it otherwise",
                        )
                    )
        out += self._tag_findings(finding)
        if self.users >= 20 and self.real_users / self.users < 0.05:
            out.append(
                finding(
                    Code.TOO_CLEAN,
                    Severity.INFO,
                    f"only {self.real_users} of {self.users} user messages show typos, lowercase or "
                    "missing punctuation",
                    "include inputs as real users write them (typos, impatience, fragments)",
                )
            )
        return out

    def _tag_findings(self, finding) -> list:
        n = self.records
        if n < 20:
            return []  # too small to judge slices; LOW_DATA already says so
        if self.tagged / n < EDGE_CASE_SHARE:
            what = "no record carries" if not self.tagged else f"only {self.tagged} of {n} records carry"
            return [
                finding(
                    Code.FEW_EDGE_CASES,
                    Severity.WARNING,
                    f"{what} a tag (edge_case, typo, angry, multi_issue, ...): is it all happy paths?",
                    "add and tag edge cases; the eval reports each tag as a slice",
                )
            ]
        return [
            finding(
                Code.THIN_SLICE,
                Severity.WARNING,
                f"tag {tag!r} has {count} example(s): too few to learn it, and about "
                f"{count * 0.2:.0f} in a 20% held-out set to measure it",
                f"grow the slice to at least {MIN_SLICE} examples, or merge the tag into another",
            )
            for tag, count in sorted(self.tags.items())
            if count < MIN_SLICE
        ]

    def table(self) -> dict:
        """Shares of reply behaviors, label and tag counts, for reports and `data stats`."""
        return {
            "behaviors": dict(self.behaviors),
            "labels": dict(self.labels),
            "tags": dict(self.tags),
            "tagged": self.tagged,
            "users": self.users,
            "real_looking_users": self.real_users,
        }


def coverage_findings(
    records: list[Record], task_type: str = "chat", label_of: Callable[[Record], str | None] = lambda r: None
) -> list:
    """Coverage findings of a list of records (see CoverageStats for streams)."""
    stats = CoverageStats()
    for rec in records:
        stats.add(coverage_of(rec), label_of(rec))
    return stats.findings(task_type)
