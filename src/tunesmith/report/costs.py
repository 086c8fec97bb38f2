"""What the run cost: the training time and price, the inference cost per successful task (of every evaluation,
and of every model of the run side by side: base, tuned, each baseline), latency as the evaluations measured it,
and the stages with their wall times.
"""

from __future__ import annotations

from typing import Any

from tunesmith.report.frame import not_measured, section
from tunesmith.report.markup import Html, duration, generic, join, num, table, tag, usd


def paid(summary: dict, cost: dict | None) -> list[tuple[str, str]]:
    """What the run cost: training wall time (the recipe search's trials apart), dollars and throughput, the
    pipeline's time, cost per success."""
    tr = summary.get("train") or {}
    spent = _training_spent(summary)
    out = []
    if tr.get("wall_s") is not None:
        out.append(("training wall time", duration(tr.get("wall_s")) + _reused_note(spent)))
    if spent.get("search_trials"):
        out.append(("recipe search", _search_text(spent)))
    out.append(
        (
            "training cost",
            usd(summary.get("train_cost_usd")) + (" (search and final run)" if spent.get("search_trials") else "")
            if summary.get("train_cost_usd") is not None
            else "not priced (set budget.hourly_usd)",
        )
    )
    if tr.get("tokens_per_s") is not None:
        out.append(("training throughput", f"{num(tr['tokens_per_s'], ',.0f')} tokens/s"))
    if tr.get("steps") is not None:
        out.append(
            ("steps", f"{tr['steps']}" + (" (stopped by the time budget)" if tr.get("stopped_by_budget") else ""))
        )
    ran = [s.get("wall_s") or 0 for s in summary.get("stages") or [] if not s.get("cached")]
    if ran:
        out.append(("pipeline wall time (this run)", duration(sum(ran))))
    if isinstance(cost, dict) and cost.get("line"):
        out.append(("cost", str(cost["line"])))
    evaluations = cost.get("evaluations") if isinstance(cost, dict) else None
    for ev in evaluations if _is_rows(evaluations) else []:
        if ev.get("model") in ("base", "tuned") and ev.get("cost_per_success_usd") is not None:
            out.append((f"{ev['model']}: cost per successful task", usd(ev["cost_per_success_usd"])))
    for ev in beside_rows(summary):
        if ev.get("model") not in ("base", "tuned") and ev.get("cost_per_success_usd") is not None:
            out.append((f"{ev['model']}: cost per successful task", usd(ev["cost_per_success_usd"])))
    return out


def _training_spent(summary: dict) -> dict:
    """`summary["train_cost"]` (the final run and the recipe search's trials, `tunesmith.pipeline.summary`); empty
    for a summary written before it."""
    spent = summary.get("train_cost")
    return spent if isinstance(spent, dict) else {}


def _reused_note(spent: dict) -> str:
    return " (trained by an earlier run, reused)" if spent.get("final_reused") else ""


def _search_text(spent: dict) -> str:
    """The recipe search's other trials trained in this run: how many, their time and, when priced, their cost."""
    n = spent.get("search_trials")
    priced = f", {usd(spent['search_usd'])}" if spent.get("search_usd") is not None else ""
    return f"{n} other trial{'s' if n != 1 else ''}, {duration(spent.get('search_s'))}{priced}"


def cost(c: Any, summary: dict) -> Html:
    """Training cost, the inference cost module's result (line, rows, or any shape), and measured latency."""
    parts = []
    if summary.get("train_cost_usd") is not None:
        parts.append(tag("p", training_line(summary)))
    if isinstance(c, dict):
        if c.get("line"):
            parts.append(tag("p", c["line"], cls="lead"))
        if c.get("rows"):
            parts.append(generic(c["rows"]))
        if _is_rows(c.get("evaluations")):
            parts.append(tag("h3", "Cost per successful task") + success_table(c["evaluations"]))
    if beside_rows(summary):
        parts.append(
            tag("h3", "Cost per successful task, every model on the held-out cases")
            + success_table([{k: v for k, v in r.items() if k not in TOKEN_KEYS} for r in beside_rows(summary)])
        )
        shown = ("line", "rows", "evaluations", "train_cost_usd", "train_wall_s")  # the training cost is above
        rest = {k: v for k, v in c.items() if k not in shown and v is not None} if isinstance(c, dict) else {}
        if rest:
            parts.append(generic(rest))
    elif c:
        parts.append(generic(c))
    inference = _inference_rows(summary)
    if inference:
        parts.append(
            tag("h3", "Inference, as measured by the evaluations")
            + table(
                ["model", "suite", "cases", "mean latency", "p95 latency", "tokens/s"],
                inference,
                numeric=["cases", "mean latency", "p95 latency", "tokens/s"],
            )
        )
    if not parts:
        return section("cost", "Cost", not_measured("no price", "set budget.hourly_usd (or per-token prices)"))
    if not c and summary.get("train_cost_usd") is None:
        parts.insert(0, not_measured("the price", "set budget.hourly_usd for cost in USD"))
    return section("cost", "Cost", join(parts))


def training_line(summary: dict) -> str:
    """The training cost, one sentence: the final run's wall time, and the recipe search's trials apart."""
    spent = _training_spent(summary)
    final = duration((summary.get("train") or {}).get("wall_s"))
    if not spent.get("search_trials"):
        return (
            f"Training: {usd(summary['train_cost_usd'])} ({final} of wall time{_reused_note(spent)} at the "
            "configured hourly price)."
        )
    return (
        f"Training: {usd(summary['train_cost_usd'])} at the configured hourly price: the recipe search's "
        f"{_search_text(spent)}, and the chosen recipe's run, {final}"
        + (f", {usd(spent['final_usd'])}" if spent.get("final_usd") is not None else "")
        + f"{_reused_note(spent)}."
    )


TOKEN_KEYS = ("tokens", "prompt_tokens", "output_tokens")  # the token counts are in the basis already


def beside_rows(summary: dict) -> list[dict]:
    """`summary["cost_per_success"]` (base, tuned and each baseline on the held-out cases) when a baseline is in it."""
    rows = summary.get("cost_per_success")
    if not _is_rows(rows) or all(r.get("model") in ("base", "tuned") for r in rows):
        return []
    return rows


def _is_rows(x: Any) -> bool:
    return isinstance(x, list) and bool(x) and all(isinstance(r, dict) for r in x)


SUCCESS_COLUMNS = {
    "model": "model",
    "suite": "suite",
    "cases": "cases",
    "unscored": "unscored",  # no task score (no expected answer, or unreadable): not in the success rate
    "successes": "successes",
    "success_rate": "success rate",
    "cost_usd": "cost",
    "cost_per_success_usd": "per success",
    "basis": "basis",
}


def success_table(rows: list[dict]) -> Html:
    """`tunesmith.cost.eval_costs` evaluations: cost per successful task of each evaluation (other keys kept)."""
    extra = [k for r in rows for k in r if k not in SUCCESS_COLUMNS and k not in ("run", "seconds")]
    shown = [k for k in SUCCESS_COLUMNS if k != "unscored" or any(r.get("unscored") for r in rows)]
    cols = shown + list(dict.fromkeys(extra))

    def cell(r: dict, k: str) -> Any:
        v = r.get(k)
        if k in ("cost_usd", "cost_per_success_usd"):
            return usd(v)
        return num(v, ".1%") if k == "success_rate" else generic(v, 2) if k in extra else v

    return table(
        [SUCCESS_COLUMNS.get(k, k) for k in cols],
        ([cell(r, k) for k in cols] for r in rows),
        numeric=["cases", "unscored", "successes", "success rate", "cost", "per success"],
    )


def _inference_rows(summary: dict) -> list[list[Any]]:
    rows = []
    for who in ("base", "tuned"):
        for suite, m in (summary.get(f"{who}_metrics") or {}).items():
            if isinstance(m, dict) and m.get("latency_s") is not None:
                rows.append(
                    [
                        who,
                        suite,
                        m.get("cases"),
                        num(m.get("latency_s"), ".3f") + " s",
                        num(m.get("latency_p95_s"), ".3f") + " s",
                        num(m.get("tokens_per_s"), ",.1f"),
                    ]
                )
    return rows


def stages(summary: dict) -> Html:
    rows = [
        [
            s.get("stage"),
            str(s.get("run", "")).rsplit("/", 1)[-1],
            "cached" if s.get("cached") else "ran",
            "-" if s.get("cached") else duration(s.get("wall_s")),
        ]
        for s in summary.get("stages") or []
    ]
    if not rows:
        return section("stages", "Stages", not_measured("no stage record"))
    return section(
        "stages", "Stages", table(["stage", "run directory", "status", "wall time"], rows, numeric=["wall time"])
    )
