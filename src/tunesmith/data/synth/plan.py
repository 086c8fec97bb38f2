"""The plan of a run: the variation operators, personas and tones, the seeds that can be used, and one `Job`
per planned record (seed, operator, persona, tone, demonstrations) drawn from a seeded RNG."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import NamedTuple

from tunesmith.data.records import Record


class Operator(NamedTuple):
    """A variation: the teacher's instruction for the new user message, the tag its records carry (an eval
    slice), and the behaviour their reply must show (None: whatever the task calls for)."""

    instruction: str
    tag: str | None = None
    behavior: str | None = None


OPERATORS: dict[str, Operator] = {
    "paraphrase": Operator(
        "Rewrite the message below so that it asks for the same thing in different words. Keep "
        "every detail that matters for the answer."
    ),
    "typos": Operator(
        "Rewrite the message below as a hurried user would type it: a few typos, missing capitals "
        "and punctuation, casual abbreviations. Keep its meaning.",
        "typo",
    ),
    "tone": Operator("Rewrite the message below as a {tone} user would write it: the same request, in a {tone} tone."),
    "edge_case": Operator(
        "Write a new message on the same topic that is an edge case for this assistant: an "
        "unusual, ambiguous or boundary situation (missing or conflicting details, an odd "
        "request) that a careless assistant would get wrong.",
        "edge_case",
    ),
    "multi_issue": Operator(
        "Write a new message in which the user raises the issue below together with one or two "
        "other, unrelated issues, all in the same message.",
        "multi_issue",
    ),
    "refuse": Operator(
        "Write a new message, in the same setting, that asks for something the assistant must "
        "refuse: harmful, against policy, or plainly outside its job (someone else's private data, "
        "fraud, a dangerous act). Do not refuse yourself: write the user's message.",
        "refuse",
        "refuse",
    ),
    "escalate": Operator(
        "Write a new message, in the same setting, that the assistant must hand to a human "
        "instead of resolving it: a legal threat, a safety issue, a large or disputed payment, a "
        "demand for a manager.",
        "escalate",
        "escalate",
    ),
}
TONES = ("impatient", "angry")
# Who writes the new message: the same operator on the same seed still yields different messages.
PERSONAS = (
    "a first-time customer",
    "a long-time customer",
    "someone typing on a phone",
    "a non-native English speaker",
    "a small-business owner",
    "a busy parent",
    "a retiree new to apps",
    "a software developer",
    "someone who already tried the obvious fixes",
    "a student",
    "an office manager writing for their team",
    "someone writing late at night",
)


@dataclass
class Job:
    """One planned synthetic record and what became of it."""

    index: int
    operator: str
    seed: Record
    demos: list[Record]
    persona: str
    tone: str
    message: str | None = None  # the new user message
    reply: str | None = None
    record: Record | None = None
    retried: bool = False
    shas: dict[str, str] = field(default_factory=dict)
    drop: tuple[str, str] | None = None  # (reason, detail)

    @property
    def tags(self) -> list[str]:
        tag = self.tone if self.operator == "tone" else OPERATORS[self.operator].tag
        return [tag] if tag else []

    @property
    def behavior(self) -> str | None:
        return OPERATORS[self.operator].behavior


def plan_jobs(
    seeds: list[Record], n: int, operators: list[str] | dict[str, float], seed: int = 0, few_shot: int = 3
) -> list[Job]:
    """`n` jobs: seeds in a shuffled order, reshuffled on each pass (the first pass uses every seed once);
    operators in turn from a list, or drawn by weight from a dict; a persona, a tone and `few_shot`
    demonstrations (other seeds) each. Job i draws the same numbers whatever `n` is."""
    rng = random.Random(seed)
    names = list(operators)
    weights = [float(operators[k]) for k in names] if isinstance(operators, dict) else None
    order: list[int] = []
    jobs = []
    for i in range(n):
        if i % len(seeds) == 0:
            order = rng.sample(range(len(seeds)), len(seeds))
        s = order[i % len(seeds)]
        op = rng.choices(names, weights)[0] if weights else names[i % len(names)]
        others = [j for j in range(len(seeds)) if j != s]
        demos = [seeds[j] for j in rng.sample(others, min(few_shot, len(others)))]
        jobs.append(Job(i, op, seeds[s], demos, rng.choice(PERSONAS), rng.choice(TONES)))
    return jobs


def last_user(rec: Record) -> str:
    return next(str(m.get("content") or "") for m in reversed(rec.prompt) if m.get("role") == "user")


def seed_system_message(rec: Record) -> dict | None:
    first = rec.messages[0] if rec.messages else {}
    return first if first.get("role") == "system" else None


def usable_seed(rec: Record) -> bool:
    """A seed needs a user message and a text reply; tool-calling records are not synthesized (yet)."""
    last = rec.final_assistant_index()
    return (
        last is not None
        and not rec.tools
        and not rec.messages[last].get("tool_calls")
        and bool((rec.reply or "").strip())
        and any(m.get("role") == "user" and str(m.get("content") or "").strip() for m in rec.prompt)
    )
