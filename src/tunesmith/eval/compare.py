"""Paired comparison of two evaluations of the same cases, and the gates.

    against = compare_to_baselines(tuned_rows, {"classifier": clf_rows, "hosted": hosted_rows}, cfg)
    summary = compare(base_rows, tuned_rows, cfg, versus={n: a["metrics"] for n, a in against.items()})
    table = side_by_side([("base", summary["metrics"], "base"), ("tuned", summary["metrics"], "tuned"), ...])

For every suite, every tag slice of a suite (`heldout#edge_case`, at least 5 cases) and every pass/fail metric:
base rate, tuned rate, delta with a paired bootstrap interval, McNemar's exact p-value, and a verdict (better /
worse / no significant difference). The gates (`eval.gate` and `eval.gates`) turn verdicts, and the gate's
absolute target (`min_value`), into pass or fail (and `tunesmith run` and `tunesmith eval compare` into an exit
code); a gate with `vs:` judges the tuned model against a named baseline instead of the base.
`tunesmith.eval.verdict.ship_verdict` weighs them against the alternatives; `side_by_side` puts every model's
values in columns (base | tuned | each baseline, or the evaluations of `eval compare A B C`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tunesmith.config import Config, GateConfig
from tunesmith.eval.evaluate import SLICE, metric_name, slices
from tunesmith.eval.stats import paired_change

LOWER_IS_BETTER = {"token_limit_rate", "hallucination_rate"}


def _verdict(metric: str, direction: int) -> str:
    """A paired change's direction (`tunesmith.eval.stats.paired_direction`) in words; a fall is better where
    lower is."""
    if metric in LOWER_IS_BETTER:
        direction = -direction
    return {1: "better", -1: "worse"}.get(direction, "no significant difference")


SLICE_METRICS = ("task_accuracy", "prompt_strict_accuracy", "behavior_accuracy", "format_validity")  # readable


def compare(
    base_rows: list[dict], tuned_rows: list[dict], cfg: Config, versus: dict[str, list[dict]] | None = None
) -> dict[str, Any]:
    """Paired deltas per suite, slice and metric, plus the gate decision. A gate with `vs:` is judged on
    `versus[vs]` (the metric rows of `compare(that baseline's rows, tuned_rows)`); without `versus` such gates are
    left out (`tunesmith eval compare` has no baselines)."""
    rows = paired_metrics(base_rows, tuned_rows, cfg)
    gates = judge_gates(rows, cfg, versus)
    summary = dict(gates[0]) if gates else {"passed": True, "metric": cfg.eval.gate.metric, "reason": NO_GATE}
    if len(gates) > 1:  # one verdict for the exit code; every rule's own result kept
        summary.update(
            passed=all(g["passed"] for g in gates),
            reason="; ".join(f"{g['metric']}: {g['reason']}" for g in gates if not g["passed"]) or "every gate passes",
        )
    return {"confidence": cfg.eval.confidence, "metrics": rows, "gate": summary, "gates": gates}


NO_GATE = "no gate applies here (a gate with `vs:` compares with a baseline in `tunesmith run`)"


def paired_metrics(base_rows: list[dict], tuned_rows: list[dict], cfg: Config) -> list[dict[str, Any]]:
    """One row per suite (and tag slice) and metric of the cases both evaluations scored: both rates, the delta
    with its paired bootstrap interval, McNemar's p and the verdict."""
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
            name = metric_name(key)
            if not kept or (SLICE in suite and name not in SLICE_METRICS):
                continue
            rows.append(_paired_row(suite, name, [float(x) for x, _ in kept], [float(y) for _, y in kept], cfg))
    rows.sort(key=lambda r: (list(pairs).index(r["suite"]), _metric_order(r["metric"])))
    return rows


def _paired_row(suite: str, name: str, base: list[float], tuned: list[float], cfg: Config) -> dict[str, Any]:
    """One metric's paired comparison: delta, bootstrap interval, McNemar's p and the verdict (a pass/fail metric
    differs only where McNemar's exact test agrees with the interval: `paired_direction`)."""
    delta, low, high, direction, p = paired_change(base, tuned, cfg.eval.bootstrap_samples, cfg.eval.confidence)
    return {
        "suite": suite,
        "metric": name,
        "n": len(base),
        "base": sum(base) / len(base),
        "tuned": sum(tuned) / len(tuned),
        "delta": delta,
        "ci_low": low,
        "ci_high": high,
        "p_mcnemar": p,
        "verdict": _verdict(name, direction),
    }


def judge_gates(rows: list[dict], cfg: Config, versus: dict[str, list[dict]] | None = None) -> list[dict[str, Any]]:
    """Every gate of `eval.gate` and `eval.gates`: on `rows` (base vs tuned), or, for a gate with `vs:`, on that
    baseline's rows in `versus` (left out when `versus` is None; failed as not measured when the baseline is
    missing from it)."""
    out = []
    for g in [cfg.eval.gate, *cfg.eval.gates]:
        if g.vs is None:
            out.append(gate(rows, g))
        elif versus is not None:
            out.append(gate(versus[g.vs], g) if g.vs in versus else _unmeasured(g))
    return out


def _unmeasured(g: GateConfig) -> dict[str, Any]:
    suite, _, metric = g.metric.rpartition(".")
    return {
        "passed": False,
        "metric": f"{suite or 'heldout'}.{metric}",
        "vs": g.vs,
        "reason": f"{g.vs} was not measured on the held-out cases (check eval.baselines)",
    }


def _metric_order(metric: str) -> tuple[int, str]:
    """Task accuracy first, then format validity, per-field accuracies, and the rest."""
    rank = {"task_accuracy": 0, "format_validity": 1}.get(metric, 2 if metric.endswith("_accuracy") else 3)
    return rank, metric


def gate(rows: list[dict], g: GateConfig) -> dict[str, Any]:
    """Pass when the tuned model beats the other side of `rows` (the base, or the baseline `g.vs`) on the gate
    metric by more than min_delta (significantly when required) and its value reaches `min_value` when one is set.
    Lower-is-better metrics count a drop as the improvement (and `min_value` as a ceiling). The reason names what
    the tuned model was compared with."""
    suite, _, metric = g.metric.rpartition(".")
    suite = suite or "heldout"
    other = g.vs or "base"
    named = {"vs": g.vs} if g.vs else {}
    row = next((r for r in rows if r["suite"] == suite and r["metric"] == metric), None)
    if row is None:
        return {"passed": False, "metric": f"{suite}.{metric}", **named, "reason": f"metric not measured vs {other}"}
    sign = -1 if metric in LOWER_IS_BETTER else 1
    delta = sign * row["delta"]
    low = min(sign * row["ci_low"], sign * row["ci_high"])
    reasons = []
    better = "improvement" if sign > 0 else "reduction"
    if not delta > g.min_delta:
        reasons.append(f"{better} {delta:+.3f} over {other} is not above {g.min_delta:+.3f}")
    if g.require_significant and not low > g.min_delta:
        reasons.append(f"interval low {low:+.3f} over {other} is not above {g.min_delta:+.3f}")
    elif g.require_significant and g.min_delta >= 0 and row.get("verdict", "better") != "better":
        # the interval cleared it, McNemar's exact test did not (`paired_direction`): too few cases changed to tell
        # (a row given without a verdict goes by its interval)
        reasons.append(f"{row['n']} paired cases are too few to tell: McNemar p {row['p_mcnemar']:.3g} over {other}")
    if g.min_format_validity is not None:
        fmt = next((r for r in rows if r["suite"] == suite and r["metric"] == "format_validity"), None)
        if fmt is None or fmt["tuned"] < g.min_format_validity:
            got = "unmeasured" if fmt is None else f"{fmt['tuned']:.3f}"
            reasons.append(f"tuned format validity {got} is below {g.min_format_validity:.3f}")
    target = target_problem(row["tuned"], metric, g.min_value)
    if target:
        reasons.append(target)
    passed = f"tuned beats {other}" if g.min_delta >= 0 else f"within the allowed drop from {other}"
    if g.min_value is not None:
        passed += f" and reaches the target {g.min_value:.3f}"
    out = {
        "passed": not reasons,
        "metric": f"{suite}.{metric}",
        **named,
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


def side_by_side(columns: list[tuple[str, list[dict], str]], suites: tuple[str, ...] | None = None) -> dict[str, Any]:
    """One row per suite and metric, one column per model, from paired comparisons: each column is (its name, the
    metric rows of a comparison it took part in, the side it was on: "base" or "tuned"). Each row also keeps every
    column's verdict against the first column where its comparison was with it. Tag slices are left out; `suites`
    keeps only those.

        side_by_side([("base", cmp["metrics"], "base"), ("tuned", cmp["metrics"], "tuned"),
                      ("hosted", against["hosted"]["metrics"], "base")], suites=("heldout",))
    """
    names = list(dict.fromkeys(name for name, _, _ in columns))
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for name, rows, side in columns:
        for r in rows:
            if SLICE in r["suite"] or (suites is not None and r["suite"] not in suites):
                continue
            row = table.setdefault((r["suite"], r["metric"]), {"suite": r["suite"], "metric": r["metric"]})
            row.setdefault("values", {}).setdefault(name, r[side])
            row.setdefault("n", {}).setdefault(name, r["n"])
            if side == "tuned" and name != names[0]:
                row.setdefault("verdicts", {}).setdefault(name, {k: r[k] for k in ("delta", "verdict")})
    order = list(dict.fromkeys(suite for suite, _ in table))  # suites in the order the comparisons list them
    ordered = sorted(table.values(), key=lambda r: (order.index(r["suite"]), _metric_order(r["metric"])))
    return {"columns": names, "rows": ordered}
