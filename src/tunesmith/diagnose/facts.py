"""Stale facts: training replies that state facts which change (prices, dates, versions, URLs, policy numbers).

The records come from the data doctor (the check run's `report.json`, findings with code `stale_fact`), limited to
the records that went into training; without a check run the training split is scanned the same way. Evidence
also names the tuned outputs that repeat such a fact, i.e. the ones the model learned. The guide: "Remove changing
facts from training data. Use RAG or tool calls for current information."
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tunesmith.data.stale_facts import find_facts
from tunesmith.diagnose.evidence import MAX_EXAMPLES, OK, WARNING, answered, finding, quote

REPEATED_KINDS = ("price", "date", "version", "url", "policy")  # "as of"/"currently" are words, not facts to repeat
MIN_FACT_CHARS = 4  # shorter matches ("$5") are too common to tell a learned fact from a coincidence

REMEDY = (
    "Remove changing facts from the training replies and supply current information through retrieval (RAG) "
    "or a tool call: fine-tuning trains behaviour, not knowledge, and a model keeps repeating yesterday's "
    "facts with confidence."
)


def stale_records(report: dict | None, train_records: list) -> tuple[str, list[tuple[str, list[tuple[str, str]]]]]:
    """(source, [(where, [(kind, fact)])]) for the training records that state changeable facts: the check run's
    findings when there is a report, else a scan of the training split."""
    by_where = {r.where: r for r in train_records}

    def facts_of(rec) -> list[tuple[str, str]]:
        return [
            f for m in rec.messages if m.get("role") == "assistant" for f in find_facts(str(m.get("content") or ""))
        ]

    if report is not None:
        wheres = list(dict.fromkeys(f["where"] for f in report.get("findings", []) if f.get("code") == "stale_fact"))
        if by_where:  # only what was trained on (not held-out or rejected records)
            wheres = [w for w in wheres if w in by_where]
        return "check run", [(w, facts_of(by_where[w]) if w in by_where else []) for w in wheres]
    found = [(r.where, facts_of(r)) for r in train_records]
    return "training split", [(w, f) for w, f in found if f]


def check_stale_facts(
    report: dict | None, train_records: list, base_rows: list[dict], tuned_rows: list[dict]
) -> dict[str, Any]:
    """Training records stating changeable facts, by kind, and the tuned (and base) outputs that repeat them."""
    source, stale = stale_records(report, train_records)
    kinds = Counter(kind for _, facts in stale for kind, _ in facts)
    learnable = sorted(
        {text for _, facts in stale for kind, text in facts if kind in REPEATED_KINDS and len(text) >= MIN_FACT_CHARS}
    )

    def repeating(rows: list[dict]) -> list[tuple[dict, str]]:
        out = []
        for r in answered(rows):
            hit = next((t for t in learnable if t in r["output"]), None)
            if hit:
                out.append((r, hit))
        return out

    tuned_rep, base_rep = repeating(tuned_rows), repeating(base_rows)
    evidence: dict[str, Any] = {
        "source": source,
        "records": len(stale),
        "training_records": len(train_records) or None,
        "kinds": dict(kinds),
        "examples": [{"where": w, "facts": [quote(t, 60) for _, t in facts[:4]]} for w, facts in stale[:MAX_EXAMPLES]],
        "tuned_repeats": len(tuned_rep),
        "base_repeats": len(base_rep),
        "repeated_by_tuned": [
            {"suite": r["suite"], "id": r["id"], "fact": quote(t, 60), "output": quote(r["output"])}
            for r, t in tuned_rep[:MAX_EXAMPLES]
        ],
    }
    if not stale:
        return finding("stale_facts", OK, "No changeable facts in the training replies", evidence)
    title = (
        f"{len(stale)} training replies state facts that change ("
        + ", ".join(f"{n} {k}" for k, n in kinds.most_common())
        + ")"
    )
    if tuned_rep:
        title += f"; {len(tuned_rep)} tuned outputs repeat one"
    return finding("stale_facts", WARNING, title, evidence, REMEDY)
