"""Paired comparison of two evaluations of the same cases, and the gate.

    summary = compare(base_rows, tuned_rows, cfg)   # rows as written to results.jsonl

For every suite and pass/fail metric: base rate, tuned rate, delta with a paired bootstrap interval, McNemar's
exact p-value, and a verdict (better / worse / no significant difference). The gate turns one verdict into pass
or fail (and `tunesmith run` into an exit code).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tunesmith.config import Config
from tunesmith.eval.evaluate import metric_name
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


def compare(base_rows: list[dict], tuned_rows: list[dict], cfg: Config) -> dict[str, Any]:
    """Paired deltas per suite and metric, plus the gate decision."""
    tuned_by = {(r["suite"], r["id"]): r for r in tuned_rows}
    pairs: dict[str, list[tuple[dict, dict]]] = defaultdict(list)
    for b in base_rows:
        t = tuned_by.get((b["suite"], b["id"]))
        if t is not None:
            pairs[b["suite"]].append((b, t))
    rows = []
    for suite, items in pairs.items():
        keys = sorted({k for b, t in items for k in b["scores"]} & {k for b, t in items for k in t["scores"]})
        for key in keys:
            kept = [(b["scores"][key], t["scores"][key]) for b, t in items
                    if b["scores"].get(key) is not None and t["scores"].get(key) is not None]
            if not kept:
                continue
            base = [float(x) for x, _ in kept]
            tuned = [float(y) for _, y in kept]
            delta, low, high = bootstrap_delta(base, tuned, cfg.eval.bootstrap_samples, cfg.eval.confidence)
            name = metric_name(key)
            rows.append({"suite": suite, "metric": name, "n": len(kept),
                         "base": sum(base) / len(base), "tuned": sum(tuned) / len(tuned),
                         "delta": delta, "ci_low": low, "ci_high": high,
                         "p_mcnemar": mcnemar_exact([bool(x) for x in base], [bool(y) for y in tuned]),
                         "verdict": _verdict(name, low, high)})
    rows.sort(key=lambda r: (list(pairs).index(r["suite"]), _metric_order(r["metric"])))
    return {"confidence": cfg.eval.confidence, "metrics": rows, "gate": gate(rows, cfg)}


def _metric_order(metric: str) -> tuple[int, str]:
    """Task accuracy first, then format validity, per-field accuracies, and the rest."""
    rank = {"task_accuracy": 0, "format_validity": 1}.get(metric, 2 if metric.endswith("_accuracy") else 3)
    return rank, metric


def gate(rows: list[dict], cfg: Config) -> dict[str, Any]:
    """Pass when the tuned model beats the base on the gate metric by more than min_delta (significantly)."""
    g = cfg.eval.gate
    suite, _, metric = g.metric.rpartition(".")
    suite = suite or "heldout"
    row = next((r for r in rows if r["suite"] == suite and r["metric"] == metric), None)
    if row is None:
        return {"passed": False, "metric": f"{suite}.{metric}", "reason": "metric not measured"}
    reasons = []
    if not row["delta"] > g.min_delta:
        reasons.append(f"delta {row['delta']:+.3f} is not above {g.min_delta:+.3f}")
    if g.require_significant and not row["ci_low"] > g.min_delta:
        reasons.append(f"interval low {row['ci_low']:+.3f} is not above {g.min_delta:+.3f}")
    if g.min_format_validity is not None:
        fmt = next((r for r in rows if r["suite"] == suite and r["metric"] == "format_validity"), None)
        if fmt is None or fmt["tuned"] < g.min_format_validity:
            got = "unmeasured" if fmt is None else f"{fmt['tuned']:.3f}"
            reasons.append(f"tuned format validity {got} is below {g.min_format_validity:.3f}")
    return {"passed": not reasons, "metric": f"{suite}.{metric}", "delta": row["delta"],
            "ci_low": row["ci_low"], "ci_high": row["ci_high"],
            "reason": "; ".join(reasons) or "tuned beats base"}
