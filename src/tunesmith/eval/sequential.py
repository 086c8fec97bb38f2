"""A baseline asked the held-out cases in rounds, stopped once it is clearly below a reference on them.

    metrics, stopped = evaluate_in_rounds(backend, cases, clf_rows, "classifier", cfg, run_dir, ...)

Few-shot prompting is the slowest evaluation of a label task (each prompt carries k training examples: 7.8 of a
fresh Banking77 run's 43.6 minutes) and, where a classifier is measured too, often the weaker alternative by far.
Its cases are asked in a seeded random order, a round at a time (a quarter of them, at least `FIRST_ROUND`, then
half, then all); after each round but the last it is paired with the reference (the classifier) on the cases asked
so far, on the gate's metric, and the asking stops when it is worse with the interval and McNemar's test at ten
times the confidence (0.995 for the default 0.95: two looks keep the chance of a wrong stop under 1%). What it
answered is then its result: its comparisons (with the tuned model, in the verdict and side by side) are on those
cases, as for a hosted model's recorded replies, and `stopped` says why it was not asked the rest.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

from tunesmith.config import Config
from tunesmith.data.io import read_jsonl
from tunesmith.eval.compare import paired_metrics
from tunesmith.eval.evaluate import evaluate
from tunesmith.eval.suite import EvalCase
from tunesmith.generate.cache import GenerationCache

FIRST_ROUND = 100  # the fewest cases a stop is judged on
STRICTER = 10  # the interim looks' error rate is the confidence's divided by this


def rounds(n: int) -> list[int]:
    """How many cases have been asked after each round: a quarter (at least FIRST_ROUND), a half, all. Fewer
    than two FIRST_ROUNDs of cases are asked at once."""
    if n < 2 * FIRST_ROUND:
        return [n]
    return sorted({max(FIRST_ROUND, n // 4), max(FIRST_ROUND, n // 2), n})


def gate_metric(cfg: Config) -> tuple[str, str]:
    """(suite, metric) the stop is judged on: the gate's, on the held-out suite."""
    suite, _, metric = cfg.eval.gate.metric.rpartition(".")
    return suite or "heldout", metric


def strict_confidence(cfg: Config) -> float:
    """The confidence of the interim looks: `eval.confidence` with its error rate divided by STRICTER."""
    return 1 - (1 - cfg.eval.confidence) / STRICTER


def clearly_below(rows: list[dict], reference_rows: list[dict], cfg: Config) -> dict[str, Any] | None:
    """The paired comparison of `rows` (the "tuned" side) with `reference_rows` on the gate's metric, at the
    stricter confidence, when it says worse; else None."""
    suite, metric = gate_metric(cfg)
    strict = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"confidence": strict_confidence(cfg)})})
    for row in paired_metrics(reference_rows, rows, strict):
        if row["suite"] == suite and row["metric"] == metric and row["verdict"] == "worse":
            return row
    return None


def evaluate_in_rounds(
    backend,
    cases: list[EvalCase],
    reference_rows: list[dict],
    reference: str,
    cfg: Config,
    out_dir: Path,
    schema: dict | None,
    label: str,
    cache,
    limits: dict[str, int] | None,
    decodings: dict,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
    """(metrics, stopped) of `backend` on the held-out `cases`, asked in rounds (see the module); `stopped` is
    None when every case was asked, else the round's facts: cases asked, of how many, and the comparison with
    `reference` (its name) that stopped it. `results.jsonl` in `out_dir` holds the cases asked, in case order.
    Each round generates only its new cases: the earlier ones come from `cache`."""
    if cache is None:  # the rounds share their generations all the same
        with tempfile.TemporaryDirectory() as tmp:
            cache = GenerationCache(Path(tmp) / "rounds.sqlite")
            try:
                return evaluate_in_rounds(
                    backend, cases, reference_rows, reference, cfg, out_dir, schema, label, cache, limits, decodings
                )
            finally:
                cache.close()
    order = list(range(len(cases)))
    random.Random(cfg.data.seed).shuffle(order)
    plan = rounds(len(cases))
    for asked in plan:
        chosen = [cases[i] for i in sorted(order[:asked])]
        metrics = evaluate(backend, {"heldout": chosen}, cfg, out_dir, schema, label, cache, limits, decodings)
        if asked == len(cases):
            return metrics, None
        rows = [o for _, o in read_jsonl(out_dir / "results.jsonl")]
        below = clearly_below(rows, reference_rows, cfg)
        if below is not None:
            return metrics, {
                "asked": asked,
                "of": len(cases),
                "versus": reference,
                "metric": f"{below['suite']}.{below['metric']}",
                "value": below["tuned"],
                "versus_value": below["base"],
                "ci_low": below["ci_low"],
                "ci_high": below["ci_high"],
                "confidence": strict_confidence(cfg),
            }
    raise AssertionError("the last round asks every case")  # pragma: no cover


def stopped_line(stopped: dict[str, Any]) -> str:
    """A baseline's early stop in words (`tunesmith.eval.sequential`)."""
    return (
        f"stopped after {stopped['asked']} of {stopped['of']} held-out cases, clearly below the {stopped['versus']} "
        f"on them ({stopped['metric']} {stopped['value']:.3f} vs {stopped['versus_value']:.3f}, "
        f"{stopped['confidence']:.1%} interval of the difference {stopped['ci_low']:+.3f} to {stopped['ci_high']:+.3f})"
    )
