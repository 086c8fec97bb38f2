"""Paired comparison of two evaluations of the same cases, and the gates.

    summary = compare(base_rows, tuned_rows, cfg)   # rows as written to results.jsonl
    against = compare_to_baselines(tuned_rows, {"classifier": clf_rows}, cfg)   # the cheap alternatives

For every suite, every tag slice of a suite (`heldout#edge_case`, at least 5 cases) and every pass/fail metric:
base rate, tuned rate, delta with a paired bootstrap interval, McNemar's exact p-value, and a verdict (better /
worse / no significant difference). The gates (`eval.gate` and `eval.gates`) turn verdicts, and the gate's
absolute target (`min_value`), into pass or fail (and `tunesmith run` and `tunesmith eval compare` into an exit
code); `tunesmith.eval.verdict.ship_verdict` weighs them against the cheap alternatives.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tunesmith.config import Config, GateConfig
from tunesmith.eval.evaluate import SLICE, metric_name, slices
from tunesmith.eval.stats import bootstrap_delta, mcnemar_exact

LOWER_IS_BETTER = {"token_limit_rate", "hallucination_rate"}


def _verdict(metric: str, low: float, high: float) -> str:
    if metric in LOWER_IS_BETTER:
        low, high = -high, -low
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "no significant difference"


SLICE_METRICS = ("task_accuracy", "prompt_strict_accuracy", "behavior_accuracy", "format_validity")  # readable


def compare(base_rows: list[dict], tuned_rows: list[dict], cfg: Config) -> dict[str, Any]:
    """Paired deltas per suite, slice and metric, plus the gate decision."""
    tuned_by = {(r["suite"], r["id"]): r for r in tuned_rows}
    pairs: dict[str, list[tuple[dict, dict]]] = defaultdict(list)
    for name, part in slices([b for b in base_rows if (b["suite"], b["id"]) in tuned_by]).items():
        pairs[name] = [(b, tuned_by[(b["suite"], b["id"])]) for b in part]
    rows = []
    for suite, items in pairs.items():
        keys = sorted({k for b, t in items for k in b["scores"]} & {k for b, t in items for k in t["scores"]})
        for key in keys:
            kept = [
                (b["scores"][key], t["scores"][key])
                for b, t in items
                if b["scores"].get(key) is not None and t["scores"].get(key) is not None
            ]
            if not kept:
                continue
            base = [float(x) for x, _ in kept]
            tuned = [float(y) for _, y in kept]
            delta, low, high = bootstrap_delta(base, tuned, cfg.eval.bootstrap_samples, cfg.eval.confidence)
            name = metric_name(key)
            if SLICE in suite and name not in SLICE_METRICS:
                continue
            rows.append(
                {
                    "suite": suite,
                    "metric": name,
                    "n": len(kept),
                    "base": sum(base) / len(base),
                    "tuned": sum(tuned) / len(tuned),
                    "delta": delta,
                    "ci_low": low,
                    "ci_high": high,
                    "p_mcnemar": mcnemar_exact([bool(x) for x in base], [bool(y) for y in tuned]),
                    "verdict": _verdict(name, low, high),
                }
            )
    rows.sort(key=lambda r: (list(pairs).index(r["suite"]), _metric_order(r["metric"])))
    gates = [gate(rows, g) for g in [cfg.eval.gate, *cfg.eval.gates]]
    summary = dict(gates[0])
    if len(gates) > 1:  # one verdict for the exit code; every rule's own result kept
        summary.update(
            passed=all(g["passed"] for g in gates),
            reason="; ".join(f"{g['metric']}: {g['reason']}" for g in gates if not g["passed"]) or "every gate passes",
        )
    return {"confidence": cfg.eval.confidence, "metrics": rows, "gate": summary, "gates": gates}


def _metric_order(metric: str) -> tuple[int, str]:
    """Task accuracy first, then format validity, per-field accuracies, and the rest."""
    rank = {"task_accuracy": 0, "format_validity": 1}.get(metric, 2 if metric.endswith("_accuracy") else 3)
    return rank, metric


def gate(rows: list[dict], g: GateConfig) -> dict[str, Any]:
    """Pass when the tuned model beats the base on the gate metric by more than min_delta (significantly when
    required) and its value reaches `min_value` when one is set. Lower-is-better metrics count a drop as the
    improvement (and `min_value` as a ceiling)."""
    suite, _, metric = g.metric.rpartition(".")
    suite = suite or "heldout"
    row = next((r for r in rows if r["suite"] == suite and r["metric"] == metric), None)
    if row is None:
        return {"passed": False, "metric": f"{suite}.{metric}", "reason": "metric not measured"}
    sign = -1 if metric in LOWER_IS_BETTER else 1
    delta = sign * row["delta"]
    low = min(sign * row["ci_low"], sign * row["ci_high"])
    reasons = []
    better = "improvement" if sign > 0 else "reduction"
    if not delta > g.min_delta:
        reasons.append(f"{better} {delta:+.3f} is not above {g.min_delta:+.3f}")
    if g.require_significant and not low > g.min_delta:
        reasons.append(f"interval low {low:+.3f} is not above {g.min_delta:+.3f}")
    if g.min_format_validity is not None:
        fmt = next((r for r in rows if r["suite"] == suite and r["metric"] == "format_validity"), None)
        if fmt is None or fmt["tuned"] < g.min_format_validity:
            got = "unmeasured" if fmt is None else f"{fmt['tuned']:.3f}"
            reasons.append(f"tuned format validity {got} is below {g.min_format_validity:.3f}")
    target = target_problem(row["tuned"], metric, g.min_value)
    if target:
        reasons.append(target)
    passed = "tuned beats base" if g.min_delta >= 0 else "within the allowed drop"
    if g.min_value is not None:
        passed += f" and reaches the target {g.min_value:.3f}"
    out = {
        "passed": not reasons,
        "metric": f"{suite}.{metric}",
        "delta": row["delta"],
        "ci_low": row["ci_low"],
        "ci_high": row["ci_high"],
        "reason": "; ".join(reasons) or passed,
    }
    if g.min_value is not None:
        out.update(tuned=row["tuned"], min_value=g.min_value)
    return out


def target_problem(value: float, metric: str, target: float | None) -> str | None:
    """Why `value` misses the absolute target (a floor, or a ceiling for lower-is-better metrics); None when it
    reaches it or there is none."""
    if target is None:
        return None
    if metric in LOWER_IS_BETTER:
        return f"tuned {value:.3f} is above the ceiling {target:.3f}" if value > target else None
    return f"tuned {value:.3f} is below the target {target:.3f}" if value < target else None


def compare_to_baselines(
    tuned_rows: list[dict], baseline_rows: dict[str, list[dict]], cfg: Config, info: dict[str, dict] | None = None
) -> dict[str, dict[str, Any]]:
    """The tuned model against each cheap alternative on the same cases: `compare` with the alternative as the
    "base" side (so `delta` is tuned minus alternative and `verdict` is the tuned model's), keyed by the
    alternative's name. `info[name]` (e.g. `{"train_s": 4.2}`) is kept in its entry for the verdict to quote."""
    out = {}
    for name, rows in baseline_rows.items():
        out[name] = {"name": name, **(info or {}).get(name, {}), **compare(rows, tuned_rows, cfg)}
    return out


def compare_many(runs: list[tuple[str, list[dict]]], cfg: Config) -> list[dict[str, Any]]:
    """`eval compare A B [C...]`: every later run against the first (the baseline), paired on (suite, id)."""
    base_name, base_rows = runs[0]
    out = []
    for name, rows in runs[1:]:
        result = compare(base_rows, rows, cfg)
        out.append({"baseline": base_name, "candidate": name, **result})
    return out
