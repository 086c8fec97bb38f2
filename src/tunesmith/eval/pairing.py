"""`eval compare`'s evaluations: load evaluations by name and pair their cases for the LLM judge (a blind A/B
review is matched to its comparison by `tunesmith.review.preference.attach_human_preference`).

    loaded = [load_evaluation(ref, project) for ref in ("eval-base", "eval-tuned")]
    comparisons = compare_many(loaded, cfg)                       # tunesmith.eval.compare
    judge_comparisons(comparisons, loaded, cfg, limit=50)         # comp["preference"]
"""

from __future__ import annotations

from pathlib import Path

from tunesmith.errors import Problem, TunesmithError

HELDOUT = "heldout"  # the judge compares the held-out cases only


def load_evaluation(ref: str, project: Path) -> tuple[str, list[dict]]:
    """(name, rows) of an evaluation: a results.jsonl file, a run directory, or a unique part of a run's name."""
    from tunesmith.data.io import read_jsonl
    from tunesmith.runs import resolve_results, results_name

    path = resolve_results(project, ref)
    return results_name(path), [o for _, o in read_jsonl(path)]


def judge_pairs(base_rows: list[dict], rows: list[dict], limit: int | None = None) -> list[tuple[dict, dict]]:
    """(baseline row, candidate row) of the held-out cases both answered, paired on (suite, id), the first
    `limit`."""
    base = {(r["suite"], r["id"]): r for r in base_rows}
    pairs = [
        (base[(r["suite"], r["id"])], r)
        for r in rows
        if r["suite"] == HELDOUT
        and (r["suite"], r["id"]) in base
        and r.get("output") is not None
        and base[(r["suite"], r["id"])].get("output") is not None
    ]
    return pairs[:limit]


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
        comp["preference"] = pj.compare(
            [t.get("prompt") or "" for _, t in pairs],
            [b["output"] for b, _ in pairs],
            [t["output"] for _, t in pairs],
            cfg.eval.confidence,
        )
