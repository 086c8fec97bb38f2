"""OpenAI's multi grader: named graders' scores combined by a formula.

    {"type": "multi", "graders": {"exact": {"type": "string_check", ...}, "close": {"type": "text_similarity", ...}},
     "calculate_output": "0.7 * exact + 0.3 * close", "pass_threshold": 0.7}

Each named grader grades every reply (in one batch), its score goes into the formula (a pass/fail grader counts 1.0
or 0.0), and the formula's value is the multi grader's score; it passes at `pass_threshold`, by default 1.0. The
formula (`tunesmith.scorer_specs.formula`) has + - * / ^, min, max, abs, floor, ceil, exp, sqrt and log, and is
never eval()'d. A reply that one of the graders could not grade, or whose formula cannot be computed (log(0), 1/0),
is unscored with the reason.
"""

from __future__ import annotations

from typing import Any

from tunesmith.eval.openai_graders.base import Grade, Host, Item, scored, unscored
from tunesmith.scorer_specs.formula import FormulaError, evaluate


def multi(spec: dict[str, Any], items: list[Item], host: Host) -> list[Grade]:
    by_name = {name: host.grade(sub, items) for name, sub in spec["graders"].items()}
    threshold = float(spec.get("pass_threshold", 1.0))
    return [
        _combine(spec["calculate_output"], {n: g[i] for n, g in by_name.items()}, threshold) for i in range(len(items))
    ]


def _combine(formula: str, grades: dict[str, Grade], threshold: float) -> Grade:
    missing = [f"{name}: {g.detail}" for name, g in grades.items() if g.passed is None]
    if missing:
        return unscored("unscored, as " + "; ".join(missing))
    values = {name: g.reward for name, g in grades.items()}
    try:
        value = evaluate(formula, values)
    except FormulaError as exc:
        return unscored(f"calculate_output {exc}")
    return scored(value, threshold, ", ".join(f"{n}={v:.3g}" for n, v in values.items()))
