"""`eval compare`'s evaluations: load evaluations by name and pair their cases for the LLM judge (a blind A/B
review is matched to its comparison by `tunesmith.review.preference.attach_human_preference`). A case one model
did not answer is not sent to the judge: it is lost by the model that gave no reply (a win for the other), so a
candidate that fails often cannot look better by being judged only where it answered.

    loaded = [load_evaluation(ref, project) for ref in ("eval-base", "eval-tuned")]
    comparisons = compare_many(loaded, cfg)                       # tunesmith.eval.compare
    judge_comparisons(comparisons, loaded, cfg, limit=50)         # comp["preference"]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.errors import Problem, TunesmithError

HELDOUT = "heldout"  # the judge compares the held-out cases only


def load_evaluation(ref: str, project: Path) -> tuple[str, list[dict]]:
    """(name, rows) of an evaluation: a results.jsonl file, a run directory, or a unique part of a run's name."""
    from tunesmith.data.io import read_jsonl
    from tunesmith.runs import resolve_results, results_name

    path = resolve_results(project, ref)
    return results_name(path), [o for _, o in read_jsonl(path)]


@dataclass
class JudgePairs:
    """The first `limit` held-out cases of both evaluations, paired on (suite, id): those both answered, for the
    judge, and how many only one (or neither) answered."""

    answered: list[tuple[dict, dict]] = field(default_factory=list)  # (baseline row, candidate row)
    candidate_unanswered: int = 0  # the baseline answered, the candidate did not: the candidate's loss
    baseline_unanswered: int = 0  # the candidate answered, the baseline did not: the candidate's win
    neither_answered: int = 0  # left out: nothing to prefer


def judge_pairs(base_rows: list[dict], rows: list[dict], limit: int | None = None) -> JudgePairs:
    """The held-out cases of `rows` also in `base_rows`, the first `limit`, split by who answered them."""
    base = {(r["suite"], r["id"]): r for r in base_rows}
    cases = [(base[(r["suite"], r["id"])], r) for r in rows if r["suite"] == HELDOUT and (r["suite"], r["id"]) in base]
    out = JudgePairs()
    for b, t in cases[:limit]:
        if b.get("output") is not None and t.get("output") is not None:
            out.answered.append((b, t))
        elif b.get("output") is not None:
            out.candidate_unanswered += 1
        elif t.get("output") is not None:
            out.baseline_unanswered += 1
        else:
            out.neither_answered += 1
    return out


def judge_comparisons(
    comparisons: list[dict], loaded: list[tuple[str, list[dict]]], cfg, limit: int | None = None
) -> None:
    """Ask the project's LLM judge (eval.judge) for blind pairwise preference of every candidate over the baseline
    (`loaded[0]`); each comparison gains `preference`."""
    if cfg.eval.judge is None:
        raise TunesmithError(
            "No judge configured",
            [Problem("eval.judge", "not set in tunesmith.yaml", "eval.judge: {base_url: ..., model: ...}")],
        )
    from tunesmith.eval.judge import PairwiseJudge

    pj = PairwiseJudge(cfg.eval.judge)
    for comp, (_, rows) in zip(comparisons, loaded[1:]):
        pairs = judge_pairs(loaded[0][1], rows, limit)
        judged = pj.compare(
            [t.get("prompt") or "" for _, t in pairs.answered],
            [b["output"] for b, _ in pairs.answered],
            [t["output"] for _, t in pairs.answered],
            cfg.eval.confidence,
            cfg.eval.bootstrap_samples,
        )
        comp["preference"] = with_unanswered(judged, pairs, cfg.eval.confidence, cfg.eval.bootstrap_samples)


def with_unanswered(judged: dict[str, Any], pairs: JudgePairs, confidence: float, samples: int) -> dict[str, Any]:
    """The judge's preference (`PairwiseJudge.compare` on the answered pairs) with the cases one model did not
    answer counted: a loss for the candidate that gave no reply, a win when the baseline gave none; the counts,
    win rate and verdict over them all, and `unanswered` saying how many."""
    from tunesmith.eval.stats import preference

    # the judge's own cases first, so the `case` index of each of its errors stays right
    outcomes = judged["outcomes"] + ["loss"] * pairs.candidate_unanswered + ["win"] * pairs.baseline_unanswered
    return {
        **judged,
        "cases": judged["cases"] + pairs.candidate_unanswered + pairs.baseline_unanswered,
        "unanswered": {
            "candidate": pairs.candidate_unanswered,
            "baseline": pairs.baseline_unanswered,
            "neither": pairs.neither_answered,
        },
        **preference(outcomes, samples, confidence),
    }
