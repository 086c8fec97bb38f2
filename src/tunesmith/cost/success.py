"""Cost per successful task: the inference cost of an evaluation divided by the cases it got right, for every
evaluation of a project, with the training cost of its last run; and side by side for the models of one run.

    success_cost(rows, hourly_usd=2.5)                       # local: generation time x the machine's hourly price
    token_cost(rows, 0.3, 1.2, count=token_counter(tok, cases))   # an endpoint: its tokens x its prices
    cost_per_success([("base", base_rows), ("tuned", tuned_rows), ("hosted", hosted_rows)], 2.5,
                     priced={"hosted": token_cost(...)})     # summary.json's `cost_per_success`
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

TOKENS_REPORTED = "tokens the endpoint reported"
TOKENS_COUNTED = "tokens counted with the base model's tokenizer (no usage reported)"


def success_cost(rows: list[dict[str, Any]], hourly_usd: float | None = None, suite: str = "heldout") -> dict[str, Any]:
    """Inference cost per successful task of one evaluation (its `results.jsonl` rows) on the task suite: per-token
    prices when the endpoint had them, else the measured latency times `hourly_usd`. A success is a case whose
    task_correct (or IFEval prompt_strict) score is true (`tunesmith.eval.evaluate.success`, as `aggregate` counts
    it); the success rate is over the cases with that score, as task_accuracy is (`unscored`: the others, with no
    expected answer or unreadable)."""
    from tunesmith.eval.evaluate import success  # the success aggregate counts

    task = [r for r in rows if r.get("suite") == suite] or rows
    answered = [r for r in task if r.get("output") is not None]
    outcomes = [o for o in map(success, task) if o is not None]
    successes = sum(map(bool, outcomes))
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
        "unscored": len(task) - len(outcomes),
        "successes": successes,
        "success_rate": successes / len(outcomes) if outcomes else None,
        "seconds": seconds,
        "cost_usd": cost,
        "cost_per_success_usd": cost / successes if cost is not None and successes else None,
        "basis": basis,
    }


def token_cost(
    rows: list[dict[str, Any]],
    input_usd_per_mtok: float | None,
    output_usd_per_mtok: float | None,
    count: Callable[[dict[str, Any]], tuple[int, int]] | None = None,
    suite: str = "heldout",
) -> dict[str, Any]:
    """Cost per successful task of a model priced per token (an endpoint, recorded replies) on the task suite: the
    prompt and reply tokens the endpoint reported (rows' `prompt_tokens` and `new_tokens`), or, when it reported
    none, what `count(row)` gives (`token_counter`: the base model's tokenizer), times the prices, divided by the
    successes. `basis` says which tokens and prices."""
    out = success_cost(rows, None, suite)
    task = [r for r in rows if r.get("suite") == suite] or rows
    answered = [r for r in task if r.get("output") is not None]
    tokens, how = None, None
    if answered and all(r.get("prompt_tokens") is not None for r in answered):
        tokens = (sum(r["prompt_tokens"] for r in answered), sum(r.get("new_tokens") or 0 for r in answered))
        how = TOKENS_REPORTED
    elif count is not None:
        counted = [count(r) for r in answered]
        tokens, how = (sum(p for p, _ in counted), sum(o for _, o in counted)), TOKENS_COUNTED
    cost, basis = None, "not priced (set input_usd_per_mtok and output_usd_per_mtok)"
    if tokens is not None and input_usd_per_mtok is not None and output_usd_per_mtok is not None:
        cost = (tokens[0] * input_usd_per_mtok + tokens[1] * output_usd_per_mtok) / 1e6
        basis = (
            f"{tokens[0]:,} in + {tokens[1]:,} out ({how}) x ${input_usd_per_mtok:g} / ${output_usd_per_mtok:g} "
            "per million"
        )
    return {
        **out,
        "prompt_tokens": tokens[0] if tokens else None,
        "output_tokens": tokens[1] if tokens else None,
        "tokens": how,
        "cost_usd": cost,
        "cost_per_success_usd": cost / out["successes"] if cost is not None and out["successes"] else None,
        "basis": basis,
    }


def token_counter(tokenizer, cases: list) -> Callable[[dict[str, Any]], tuple[int, int]]:
    """`count(row)` -> (prompt tokens, reply tokens) of a results row, with `tokenizer`: the row's case rendered
    with the chat template (generation prompt included), and its output."""
    from tunesmith.chat import render_prompt

    by_id = {c.id: c for c in cases}

    def count(row: dict[str, Any]) -> tuple[int, int]:
        case = by_id.get(row["id"])
        prompt = render_prompt(tokenizer, case.messages, case.tools) if case is not None else row.get("prompt") or ""
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        return len(ids), len(tokenizer(row.get("output") or "", add_special_tokens=False)["input_ids"])

    return count


def cost_per_success(
    models: list[tuple[str, list[dict[str, Any]]]],
    hourly_usd: float | None,
    priced: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One row per model of a run (base, tuned, each baseline) on the held-out cases: `priced[name]` (a
    `token_cost`) for a model priced per token, else `success_cost` (generation time x the machine's hourly
    price)."""
    priced = priced or {}
    return [{"model": name, **(priced.get(name) or success_cost(rows, hourly_usd))} for name, rows in models]


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
