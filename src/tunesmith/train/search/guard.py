"""The forgetting guard: a gate on the general probe as a search constraint, checked on probe prompts the project's
evaluation does not use."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunesmith.config import Config
from tunesmith.eval.suite import general_probe
from tunesmith.train.result import TrainResult

CONSTRAINT_PROMPTS = 30  # general-probe prompts outside the gate's, for the forgetting constraint


class ForgettingGuard:
    """A gate on the general probe, as a search constraint: each trial's model on probe prompts the gate does not
    use, against the base model on the same prompts; a trial whose drop breaks the gate's `min_delta` is not
    chosen."""

    def __init__(
        self, cases: list, gate, evaluate_fn: Callable[[Path | None, TrainResult | None], float], base_value: float
    ) -> None:
        self.cases, self.gate, self.evaluate_fn, self.base_value = cases, gate, evaluate_fn, base_value

    @classmethod
    def for_project(
        cls, cfg: Config, evaluate_fn: Callable[[Path | None, TrainResult | None], float]
    ) -> ForgettingGuard | None:
        """The guard for the first general-probe gate, when the probe has prompts the gate does not use;
        `evaluate_fn(run_dir, train_result)` scores a trial's model (None, None: the base) on `spare_probe(cfg)`."""
        gate = next((g for g in [cfg.eval.gate, *cfg.eval.gates] if g.metric.startswith("general.")), None)
        cases = spare_probe(cfg)
        if gate is None or not cfg.eval.general_probe or len(cases) < 10:
            return None
        return cls(cases, gate, evaluate_fn, evaluate_fn(None, None))

    def check(self, run_dir: Path, result: TrainResult) -> dict[str, Any]:
        value = self.evaluate_fn(run_dir, result)
        delta = value - self.base_value
        return {
            "value": value,
            "base": self.base_value,
            "delta": delta,
            "ok": delta > self.gate.min_delta,
            "n": len(self.cases),
        }

    def describe(self) -> str:
        return (
            f"{self.gate.metric} must not drop by more than {-self.gate.min_delta:.3f}: checked on "
            f"{len(self.cases)} probe prompts the gate does not use (base {self.base_value:.3f})"
        )


def spare_probe(cfg: Config) -> list:
    """General-probe prompts the project's evaluation does not use (those after `eval.general_probe_limit`)."""
    used = cfg.eval.general_probe_limit
    if not used:
        return []
    return general_probe()[used : used + CONSTRAINT_PROMPTS]
