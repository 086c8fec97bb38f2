"""The ship verdict: the gates, the absolute target and the cheapest alternatives, weighed together.

    cmp = compare(base_rows, tuned_rows, cfg)
    against = compare_to_baselines(tuned_rows, {"classifier": clf_rows, "few_shot": shot_rows}, cfg,
                                   info={"classifier": {"train_s": 4.8}})
    verdict = ship_verdict(cmp, against, cfg)
    verdict["headline"]   # "Do not ship: the TF-IDF classifier scores 0.780 vs the tuned model's 0.228 on ..."
    verdict["instead"]    # "the TF-IDF classifier (0.780 vs 0.228 on heldout.task_accuracy, 5 seconds to train)"
    # printed by tunesmith.cli.render.print_verdict

A tuned model ships only when every gate passes (beating the base, and the target `eval.gate.min_value` when set)
and no alternative scores higher on the gate metric. A higher point estimate is enough to lose, significant or
not: a classifier or few-shot prompt is far cheaper to train and to run, and a hosted model is what the team runs
today, so the tuned model has to earn its cost. An alternative a gate names (`vs: hosted`, e.g. non-inferior within
2 points) is judged by that gate instead.
"""

from __future__ import annotations

from typing import Any

from tunesmith.config import Config
from tunesmith.eval.baselines import NAMES
from tunesmith.eval.compare import LOWER_IS_BETTER

TUNE_HINT = "train longer or search the recipe (`tunesmith tune PROJECT --budget 30m`), or add data"


def ship_verdict(cmp: dict, baselines: dict[str, dict], cfg: Config) -> dict[str, Any]:
    """`{"ship", "headline", "reasons", "instead", "alternatives"}` from `compare(base, tuned)` (`cmp`) and
    `compare_to_baselines` (`baselines`). Each alternative: name, label, metric, value (the alternative's),
    tuned, delta (tuned minus the alternative) with ci_low / ci_high, verdict (the tuned model's against it),
    significant, beats_tuned, train_s, judged_by_gate (a `vs:` gate names it: that gate decides, not its point
    estimate)."""
    gates = cmp.get("gates") or [cmp["gate"]]
    metric = gates[0]["metric"]
    row = _row(cmp.get("metrics") or [], metric)
    tuned = row["tuned"] if row else None
    judged = {g["vs"] for g in gates if g.get("vs")}
    alternatives = [alternative(name, entry, metric, tuned, name in judged) for name, entry in baselines.items()]
    failed = [g for g in gates if not g.get("passed")]
    beaten = sorted(
        (a for a in alternatives if a["beats_tuned"] and not a["judged_by_gate"]),
        key=lambda a: _rank(a["value"], metric),
    )
    reasons = [f"gate on {g['metric']}: {g.get('reason', '')}" for g in gates] + [
        _against(a, metric) for a in alternatives
    ]
    if not alternatives:
        reasons.append("no cheaper alternative was measured (eval.baselines)")
    ship = not failed and not beaten
    target = cfg.eval.gate.min_value
    return {
        "ship": ship,
        "headline": _headline(ship, failed, beaten, tuned, metric, target, alternatives),
        "reasons": reasons,
        "instead": None if ship else instead(alternatives, row, metric, target),
        "alternatives": alternatives,
    }


def with_parity(verdict: dict | None, parity: list[dict] | None) -> dict | None:
    """The verdict once the exports are checked: a model ships as an export that answers as it did. An export that
    misses its parity target is named in the reasons and the headline and is not what ships; when every export
    misses it, the verdict is not to ship (the checkpoint passed, so `instead` says what to do about the exports)."""
    failed = [r for r in parity or [] if not r.get("passed")]
    if not verdict or not verdict.get("ship") or not failed:
        return verdict
    good = [_export(r) for r in parity or [] if r.get("passed")]
    bad = ", ".join(_export(r) for r in failed)
    missed = [f"{_export(r)} {_missed(r)}: {r.get('cause') or r.get('target')}" for r in failed]
    reasons = [*verdict.get("reasons", []), *missed]
    if good:
        headline = f"{verdict['headline']}; ship it as {', '.join(good)}, not {bad} ({_missed(failed[0])})"
        return {**verdict, "headline": headline, "reasons": reasons}
    return {
        **verdict,
        "ship": False,
        "headline": f"Do not ship the exports: {bad} {_missed(failed[0])} ({failed[0].get('target')}); "
        "the tuned checkpoint itself passes every gate",
        "reasons": reasons,
        "instead": "the checkpoint served by `tunesmith serve`, until an export answers as it does "
        "(see the parity findings for the likely cause)",
    }


def _missed(report: dict) -> str:
    """How an export failed its parity check: it missed the target, or the check could not tell (not measured)."""
    return "misses its parity target" if report.get("measured", True) else "could not be checked for parity"


def _export(report: dict) -> str:
    """An exported artifact as the parity report names it: its kind, and the runtime when it is not transformers."""
    runtime = report.get("runtime") or "transformers"
    return report.get("kind", "?") + ("" if runtime == "transformers" else f" ({runtime})")


def _row(rows: list[dict], metric: str) -> dict | None:
    suite, _, name = metric.rpartition(".")
    return next((r for r in rows if r.get("suite") == suite and r.get("metric") == name), None)


def _better(a: float, b: float, metric: str) -> bool:
    """`a` is better than `b` on `metric` (lower for error rates)."""
    return a < b if metric.rpartition(".")[2] in LOWER_IS_BETTER else a > b


def _rank(value: float, metric: str) -> float:
    """A sort key that puts the best value first."""
    return value if metric.rpartition(".")[2] in LOWER_IS_BETTER else -value


def alternative(name: str, entry: dict, metric: str, tuned: float | None, judged: bool = False) -> dict[str, Any]:
    """One alternative's line: its value and the tuned model's on the gate metric, from their paired comparison."""
    row = _row(entry.get("metrics") or [], metric)
    out = {
        "name": name,
        "label": entry.get("label") or NAMES.get(name, name),
        "metric": metric,
        "train_s": entry.get("train_s"),
        "judged_by_gate": judged,
    }
    if row is None:
        return {
            **out,
            "value": None,
            "tuned": tuned,
            "delta": None,
            "ci_low": None,
            "ci_high": None,
            "verdict": "not measured",
            "significant": False,
            "beats_tuned": False,
        }
    value = row["base"]  # the alternative stood in for the base
    return {
        **out,
        "value": value,
        "tuned": row["tuned"],
        "delta": row["delta"],
        "ci_low": row["ci_low"],
        "ci_high": row["ci_high"],
        "verdict": row["verdict"],
        "n": row.get("n"),
        "significant": row["verdict"] != "no significant difference",
        "beats_tuned": _better(value, row["tuned"], metric),
    }


def _against(a: dict, metric: str) -> str:
    """The reason line of one alternative."""
    if a["value"] is None:
        return f"{a['label']}: {metric} not measured on the same cases"
    if a["beats_tuned"]:
        how = "significantly" if a["significant"] else "not significantly"
        if a["judged_by_gate"]:
            how += f"; the gate vs {a['name']} decides"
        elif not a["significant"] and a["name"] in NAMES:
            how += ", but it is far cheaper to run"
        return f"{a['label']} beats the tuned model on {metric}: {a['value']:.3f} vs {a['tuned']:.3f} ({how})"
    if a["value"] == a["tuned"]:
        return f"{a['label']} ties with the tuned model on {metric}: {a['value']:.3f}"
    how = "significantly" if a["significant"] else "not significantly"
    return f"the tuned model beats {a['label']} on {metric}: {a['tuned']:.3f} vs {a['value']:.3f} ({how})"


def _headline(
    ship: bool,
    failed: list[dict],
    beaten: list[dict],
    tuned: float | None,
    metric: str,
    target: float | None,
    alternatives: list[dict],
) -> str:
    """One line naming the deciding reason: an alternative that does the job better, else the failed gate."""
    if ship:
        measured = [a for a in alternatives if a["value"] is not None]
        beats = [_quoted(a, tuned) for a in measured if _better(a["tuned"], a["value"], metric)]
        ties = [_quoted(a, tuned) for a in measured if a["value"] == a["tuned"]]
        close = [_quoted(a, tuned) for a in measured if _better(a["value"], a["tuned"], metric)]
        also = (f" and beats {' and '.join(beats)}" if beats else "") + (
            f"{',' if beats else ' and'} ties with {' and '.join(ties)}" if ties else ""
        )
        if close:  # only alternatives a `vs:` gate judged can be better and still let it ship
            also += f"{',' if beats or ties else ' and'} stays within the allowed drop from {' and '.join(close)}"
        return f"Ship it: the tuned model scores {tuned:.3f} on {metric}, passes every gate{also}"
    good_enough = [a for a in beaten if target is None or not _misses(a["value"], target, metric)]
    if beaten and (good_enough or not failed):
        best = (good_enough or beaten)[0]
        return (
            f"Do not ship: {best['label']} scores {best['value']:.3f} vs the tuned model's "
            f"{best['tuned']:.3f} on {metric}"
        )
    gate = failed[0]
    parts = str(gate.get("reason") or "a gate fails").split("; ")
    deciding = next((p for p in parts if "target" in p or "ceiling" in p), parts[0])  # the absolute target first
    return f"Do not ship: {deciding} (gate on {gate['metric']})"


def _quoted(a: dict, tuned: float | None) -> str:
    """An alternative's label and value; where it answered fewer cases than the tuned model's score covers (a
    hosted model's recorded replies), the tuned model's value on those same cases and their number too."""
    if a["tuned"] == tuned:
        return f"{a['label']} ({a['value']:.3f})"
    cases = f" on the {a['n']} cases both answered" if a.get("n") else " on the cases both answered"
    return f"{a['label']} ({a['value']:.3f} vs the tuned model's {a['tuned']:.3f}{cases})"


def _misses(value: float, target: float, metric: str) -> bool:
    """`value` falls short of the target (above it, for a lower-is-better metric)."""
    return value > target if metric.rpartition(".")[2] in LOWER_IS_BETTER else value < target


def instead(alternatives: list[dict], row: dict | None, metric: str, target: float | None) -> str:
    """What would be shipped instead of a tuned model that does not ship: the best alternative that is better than
    the base and on target (one the tuned model outscores is still shippable when the tuned model fails another
    gate, e.g. forgetting); else "nothing yet" and why."""
    tuned = row["tuned"] if row else None
    base = row["base"] if row else None
    fit = [
        a
        for a in alternatives
        if a["value"] is not None
        and (base is None or _better(a["value"], base, metric))
        and (target is None or not _misses(a["value"], target, metric))
    ]
    if fit:
        best = min(fit, key=lambda a: _rank(a["value"], metric))
        cost = (
            f", {_seconds(best['train_s'])} to train"
            if best.get("train_s") is not None
            else ", no training"
            if best["name"] == "few_shot"
            else ""
        )
        if tuned is not None and _better(tuned, best["value"], metric):
            return (
                f"{best['label']} ({best['value']:.3f} on {metric}{cost}; the tuned model scores {tuned:.3f} "
                "but fails a gate)"
            )
        versus = f" vs {tuned:.3f}" if tuned is not None else ""
        return f"{best['label']} ({best['value']:.3f}{versus} on {metric}{cost})"
    if target is not None:
        scored = [
            (v, who)
            for v, who in [(tuned, "the tuned model")] + [(a["value"], a["label"]) for a in alternatives]
            if v is not None
        ]
        best_value, who = min(scored, key=lambda p: _rank(p[0], metric)) if scored else (None, "")
        got = f" ({who}, {best_value:.3f})" if best_value is not None else ""
        side = "above the ceiling" if metric.rpartition(".")[2] in LOWER_IS_BETTER else "below the target"
        return f"nothing yet: the best{got} is {side} {target:.3f}; {TUNE_HINT}"
    return f"nothing yet: no model or alternative beats the base on {metric}; {TUNE_HINT}"


def _seconds(s: float) -> str:
    if s < 1:
        return "under a second"
    if s < 90:
        return f"{s:.0f} seconds"
    return f"{s / 60:.0f} minutes"
