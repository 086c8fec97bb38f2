"""Memorization: tuned outputs that repeat training replies verbatim, and template-like sameness.

The guide's symptom: "it repeats training phrases, names, or fixed templates too often. Output feels formulaic."
Two measurements, each against the base model on the same cases:

- verbatim copies: an output that contains a run of COPY_NGRAM words from a training reply, where that run is not
  also in the case's own expected reply or prompt (copying the right answer is the task, not memorization);
- sameness: distinct-2 (unique word bigrams / all bigrams) of a suite's outputs falls well below the base's and
  below the reference replies' own variety (a router's outputs are alike because its answers are).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from tunesmith.diagnose.evidence import (
    ERROR,
    INFO,
    MAX_EXAMPLES,
    MIN_CASES,
    OK,
    WARNING,
    answered,
    as_text,
    finding,
    quote,
    rate,
    words,
)

COPY_NGRAM = 8  # words in a row shared with a training reply that make a verbatim copy (ours: a phrase, not a label)
COPY_RATE_WARN = 0.10  # share of tuned outputs that copy, from which (and above the base) memorization is flagged
COPY_RATE_ERROR = 0.30  # ... and an error from this share on
COPY_MARGIN = 0.05  # the tuned share must exceed the base's by at least this much (the base cannot have memorized)
DISTINCT_N = 2  # distinct-n over bigrams
DISTINCT_DROP = 0.30  # a suite's distinct-2 below (1 - this) x the base's, and x the references', is template-like

REMEDY = (
    "Deduplicate the data, vary the phrasing of the replies, train fewer epochs (one is almost always enough "
    "for LoRA), lower the learning rate, and hold out a stronger test set."
)


_WORD = re.compile(r"\w+")


def _word_spans(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(0).lower(), m.start(), m.end()) for m in _WORD.finditer(text)]


def training_ngrams(replies: list[tuple[str, str]], n: int = COPY_NGRAM) -> dict[int, str]:
    """The hash of every n-gram of words of the training replies -> where the first reply holding it came from
    (hashes, not the n-grams: a few bytes per n-gram, however long the replies)."""
    out: dict[int, str] = {}
    for where, reply in replies:
        w = words(reply)
        for i in range(len(w) - n + 1):
            out.setdefault(hash(tuple(w[i : i + n])), where)
    return out


def copied_span(row: dict, grams: dict[int, str], n: int = COPY_NGRAM) -> dict[str, Any] | None:
    """The longest passage of `row`'s output copied from a training reply (not from its own expected reply or
    prompt), with the training record it came from; None when there is none."""
    out = row.get("output") or ""
    spans = _word_spans(out)
    if len(spans) < n:
        return None
    allowed = {
        hash(tuple(w[i : i + n]))
        for text in (as_text(row.get("expected")), row.get("prompt") or "")
        for w in [words(text)]
        for i in range(len(w) - n + 1)
    }
    toks = [s[0] for s in spans]
    starts = [hash(tuple(toks[i : i + n])) for i in range(len(toks) - n + 1)]
    hits = [gram in grams and gram not in allowed for gram in starts]
    best, i = None, 0
    while i < len(hits):  # the longest run of consecutive copied n-grams
        if not hits[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(hits) and hits[j + 1]:
            j += 1
        if best is None or j - i + n > best[1]:
            best = (i, j - i + n, grams[starts[i]])
        i = j + 1
    if best is None:
        return None
    start, length, source = best
    text = out[spans[start][1] : spans[start + length - 1][2]]
    return {"words": length, "text": quote(text), "training": source}


def check_memorization(
    train_replies: list[tuple[str, str]],
    base_rows: list[dict],
    tuned_rows: list[dict],
    train_settings: dict[str, Any] | None = None,
    duplicates: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Verbatim copies of training replies in the tuned outputs, compared with the base's rate on the same cases.
    `train_replies`: (where, reply text); `duplicates`: the check run's duplicate counts, for the remedy."""
    grams = training_ngrams(train_replies)
    base, tuned = answered(base_rows), answered(tuned_rows)
    base_hits = [r for r in base if copied_span(r, grams)]
    tuned_copies = [(r, copied_span(r, grams)) for r in tuned]
    tuned_copies = [(r, c) for r, c in tuned_copies if c]
    tuned_rate, base_rate = rate(len(tuned_copies), len(tuned)), rate(len(base_hits), len(base))
    evidence: dict[str, Any] = {
        "ngram_words": COPY_NGRAM,
        "tuned_cases": len(tuned),
        "tuned_copies": len(tuned_copies),
        "tuned_rate": tuned_rate,
        "base_cases": len(base),
        "base_copies": len(base_hits),
        "base_rate": base_rate,
        "examples": [
            {"suite": r["suite"], "id": r["id"], "copied": c["text"], "words": c["words"], "training": c["training"]}
            for r, c in tuned_copies[:MAX_EXAMPLES]
        ],
    }
    settings = train_settings or {}
    evidence.update({k: settings[k] for k in ("epochs", "lr") if k in settings})
    if duplicates:
        evidence["training_duplicates"] = duplicates
    if not tuned or not train_replies:
        return finding(
            "memorization", INFO, "Memorization not measured (no tuned outputs or training replies)", evidence
        )
    above_base = tuned_rate - (base_rate or 0.0) >= COPY_MARGIN
    if tuned_rate >= COPY_RATE_WARN and above_base:
        severity = ERROR if tuned_rate >= COPY_RATE_ERROR else WARNING
        return finding(
            "memorization",
            severity,
            f"{len(tuned_copies)} of {len(tuned)} tuned outputs repeat a training reply verbatim "
            f"({tuned_rate:.0%}; base {base_rate or 0:.0%})",
            evidence,
            _tailored(REMEDY, settings, duplicates),
        )
    return finding(
        "memorization",
        OK,
        f"Few verbatim copies of training replies ({tuned_rate:.0%}; base {base_rate or 0:.0%})",
        evidence,
    )


def _tailored(remedy: str, settings: dict[str, Any], duplicates: dict[str, int] | None) -> str:
    notes = []
    epochs = settings.get("epochs")
    if isinstance(epochs, (int, float)) and epochs > 1:
        notes.append(f"train.epochs is {epochs:g}: try 1")
    if duplicates and sum(duplicates.values()):
        notes.append(
            "the data check found "
            + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in duplicates.items() if n)
            + " (`tunesmith data dedup`)"
        )
    return remedy + (" Here: " + "; ".join(notes) + "." if notes else "")


def distinct_n(texts: list[str], n: int = DISTINCT_N) -> float | None:
    """Unique word n-grams / all word n-grams over `texts` (n-grams taken within each text)."""
    grams = [tuple(w[i : i + n]) for t in texts for w in [words(t)] for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def check_sameness(base_rows: list[dict], tuned_rows: list[dict]) -> dict[str, Any]:
    """Template-like sameness: per suite, distinct-2 of the tuned outputs against the base's and the references'."""
    suites: dict[str, Any] = {}
    flagged = []
    for suite in sorted({r["suite"] for r in tuned_rows}):
        tuned = [r["output"] for r in answered(tuned_rows) if r["suite"] == suite]
        base = [r["output"] for r in answered(base_rows) if r["suite"] == suite]
        refs = [as_text(r["expected"]) for r in tuned_rows if r["suite"] == suite and r.get("expected") is not None]
        if len(tuned) < MIN_CASES or len(base) < MIN_CASES:
            continue
        d_t, d_b = distinct_n(tuned), distinct_n(base)
        d_r = distinct_n(refs) if len(refs) >= MIN_CASES else None
        common, count = Counter(tuned).most_common(1)[0]
        suites[suite] = {
            "cases": len(tuned),
            "tuned_distinct_2": d_t,
            "base_distinct_2": d_b,
            "reference_distinct_2": d_r,
            "most_common_output": quote(common),
            "most_common_share": count / len(tuned),
        }
        if d_t is None or d_b is None:
            continue
        below = lambda ref, d_t=d_t: ref is None or d_t < (1 - DISTINCT_DROP) * ref
        if d_t < (1 - DISTINCT_DROP) * d_b and below(d_r):
            flagged.append(suite)
    evidence = {"suites": suites, "flagged": flagged, "max_drop": DISTINCT_DROP}
    if not suites:
        return finding("sameness", INFO, "Sameness not measured (too few paired outputs)", evidence)
    if not flagged:
        return finding("sameness", OK, "Tuned outputs vary about as much as the base's (distinct-2)", evidence)
    worst = flagged[0]
    s = suites[worst]
    return finding(
        "sameness",
        WARNING,
        f"Template-like outputs on {', '.join(flagged)}: distinct-2 {s['tuned_distinct_2']:.2f} "
        f"vs base {s['base_distinct_2']:.2f}",
        evidence,
        REMEDY,
    )
