"""Cost per successful task: the inference cost of an evaluation divided by the cases it got right, for every
evaluation of a project, with the training cost of its last run."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def success_cost(rows: list[dict[str, Any]], hourly_usd: float | None = None, suite: str = "heldout") -> dict[str, Any]:
    """Inference cost per successful task of one evaluation (its `results.jsonl` rows) on the task suite: per-token
    prices when the endpoint had them, else the measured latency times `hourly_usd`. A success is a case whose
    task_correct (or IFEval prompt_strict) score is true, as in `tunesmith.eval.evaluate.aggregate`."""
    task = [r for r in rows if r.get("suite") == suite] or rows
    answered = [r for r in task if r.get("output") is not None]
    successes = sum(
        1 for r in task if (r.get("scores") or {}).get("task_correct", (r.get("scores") or {}).get("prompt_strict"))
    )
    seconds = sum(float(r.get("latency_s") or 0.0) for r in answered)
    priced = [r["cost_usd"] for r in answered if r.get("cost_usd") is not None]
    cost, basis = None, None
    if priced:
        cost, basis = float(sum(priced)), "per-token prices"
    elif hourly_usd is not None:
        cost, basis = seconds / 3600 * hourly_usd, f"latency x ${hourly_usd}/h"
    return {
        "suite": task[0].get("suite") if task else suite,
        "cases": len(task),
        "successes": successes,
        "success_rate": successes / len(task) if task else None,
        "seconds": seconds,
        "cost_usd": cost,
        "cost_per_success_usd": cost / successes if cost is not None and successes else None,
        "basis": basis,
    }


def eval_costs(project: Path, hourly_usd: float | None = None, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """Cost per successful task of a project's evaluations: base and tuned of its last `tunesmith run` (`summary`,
    by default `.tunesmith/summary.json`, with the training cost), and every `tunesmith eval run`."""
    from tunesmith import runs

    summary = summary if summary is not None else runs.load_summary(project)
    stages = [s for s in (summary or {}).get("stages", []) if s["stage"] in ("eval-base", "eval-tuned")]
    out = [_stage_cost(stage, summary, hourly_usd) for stage in stages]
    out += _eval_run_costs(project, hourly_usd, seen={Path(stage["run"]).name for stage in stages})
    return {
        "evaluations": out,
        "train_cost_usd": (summary or {}).get("train_cost_usd"),
        "train_wall_s": ((summary or {}).get("train") or {}).get("wall_s"),
        "hourly_usd": hourly_usd,
    }


def _rows_of(run_dir: Path) -> list[dict] | None:
    """An evaluation run's `results.jsonl` rows, or None when the run directory holds none."""
    from tunesmith.data.io import read_jsonl

    f = Path(run_dir) / "results.jsonl"
    return [o for _, o in read_jsonl(f)] if f.exists() else None


def _stage_cost(stage: dict[str, Any], summary: dict[str, Any], hourly_usd: float | None) -> dict[str, Any]:
    """Base or tuned of the last `tunesmith run`: from its results, or what the summary kept when they are gone."""
    who = stage["stage"].split("-", 1)[1]
    rows = _rows_of(Path(stage["run"]))
    if rows is None:  # the run directory is gone: what the summary kept
        return _kept_cost(summary, who)
    return {"model": who, "run": Path(stage["run"]).name, **success_cost(rows, hourly_usd)}


def _kept_cost(summary: dict[str, Any], who: str) -> dict[str, Any]:
    """The held-out metrics the summary kept of `who` (base or tuned), as a cost row."""
    m = (summary.get(f"{who}_metrics") or {}).get("heldout") or {}
    acc, cases = m.get("task_accuracy"), m.get("cases")
    return {
        "model": who,
        "run": None,
        "suite": "heldout",
        "cases": cases,
        "successes": round(acc * cases) if acc is not None and cases else None,
        "success_rate": acc,
        "cost_usd": m.get("cost_usd"),
        "cost_per_success_usd": m.get("cost_per_success_usd"),
        "basis": "summary.json",
    }


def _eval_run_costs(project: Path, hourly_usd: float | None, seen: set[str]) -> list[dict[str, Any]]:
    """Every completed `tunesmith eval run` of the project not already counted (`seen`)."""
    from tunesmith import runs

    out = []
    for row in runs.list_runs(project):
        if row["stage"] == "eval" and row["status"] == "completed" and row["name"] not in seen:
            rows = _rows_of(Path(row["path"]))
            if rows is not None:
                label = (row["result"] or {}).get("model") or row["name"]
                out.append({"model": str(label), "run": row["name"], **success_cost(rows, hourly_usd)})
    return out
