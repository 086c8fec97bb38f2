"""`eval compare`'s evaluations and preferences: load evaluations by name, pair their cases for the LLM judge, and
match a blind A/B review to the comparison it belongs to.

    loaded = [load_evaluation(ref, project) for ref in ("eval-base", "eval-tuned")]
    comparisons = compare_many(loaded, cfg)                       # tunesmith.eval.compare
    judge_comparisons(comparisons, loaded, cfg, limit=50)         # comp["preference"]
    attach_human_preference(comparisons, Path("review/ab"))       # comp["preference_human"]
"""

from __future__ import annotations

import json
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


def judge_pairs(base_rows: list[dict], rows: list[dict], limit: int | None = None) -> list[tuple[dict, dict]]:
    """(baseline row, candidate row) of the held-out cases both answered, paired on (suite, id), the first
    `limit`."""
    base = {(r["suite"], r["id"]): r for r in base_rows}
    pairs = [(base[(r["suite"], r["id"])], r) for r in rows if r["suite"] == HELDOUT
             and (r["suite"], r["id"]) in base and r.get("output") is not None
             and base[(r["suite"], r["id"])].get("output") is not None]
    return pairs[:limit]


def judge_comparisons(comparisons: list[dict], loaded: list[tuple[str, list[dict]]], cfg,
                      limit: int | None = None) -> None:
    """Ask the project's LLM judge (eval.judge) for blind pairwise preference of every candidate over the baseline
    (`loaded[0]`); each comparison gains `preference`."""
    if cfg.eval.judge is None:
        raise TunesmithError("No judge configured", [Problem("eval.judge", "not set in tunesmith.yaml",
                                                             "eval.judge: {base_url: ..., model: ...}")])
    from tunesmith.eval.judge import PairwiseJudge

    pj = PairwiseJudge(cfg.eval.judge)
    for comp, (_, rows) in zip(comparisons, loaded[1:]):
        pairs = judge_pairs(loaded[0][1], rows, limit)
        comp["preference"] = pj.compare([t.get("prompt") or "" for _, t in pairs], [b["output"] for b, _ in pairs],
                                        [t["output"] for _, t in pairs], cfg.eval.confidence)


def load_human_preference(path: Path) -> dict[str, Any]:
    """A blind A/B review's result, from its directory (summarized afresh) or its preference.json."""
    from tunesmith.review import preference_summary

    path = Path(path)
    if path.is_dir():
        return preference_summary(path)
    try:
        pref = json.loads(path.read_text())
        pref["results"]["b"]
        return pref
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TunesmithError("Cannot read the A/B review", [Problem(str(path), f"{type(exc).__name__}: {exc}",
                                                                    "pass the review directory or its "
                                                                    "preference.json")]) from None


def attach_human_preference(comparisons: list[dict], path: Path) -> None:
    """Load the A/B review at `path` and attach it (`preference_human`) to the comparison of its B evaluation (the
    only comparison, when there is one)."""
    from tunesmith.runs import results_name

    pref = load_human_preference(path)
    b_name = results_name(Path(pref["results"]["b"]))  # as load_evaluation names it
    comp = next((c for c in comparisons if c["candidate"] == b_name),
                comparisons[0] if len(comparisons) == 1 else None)
    if comp is None:
        raise TunesmithError("The A/B review matches no comparison", [Problem(
            str(path), f"it compared {pref['results']['a']} with {pref['results']['b']}",
            "give the same evaluations to eval compare")])
    comp["preference_human"] = pref
