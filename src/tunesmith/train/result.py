"""`TrainResult`: what a train run gave, typed: its recipe, steps, losses and speed, where its weights are, and the
other facts its objective recorded (DPO's pairs, GRPO's rewards, SFT's data and device) kept as written.

    result = run_recipe(cfg, model_ref, records, run_dir)     # a TrainResult
    result.weights                                           # "adapter", "model" or "reward_model": its directory
    result.to_json()                                         # the flat mapping result.json holds
    TrainResult.read(run_dir)                                # a finished train run's, old runs included

`result.json` keeps the layout it always had (one flat mapping, the same names, a fact not known written as null),
so any run reads back; of `adapter`, `model` and `reward_model` only the one trained is written (readers tell a
full fine-tune by its `model`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WEIGHTS = ("adapter", "model", "reward_model")  # written only when set
# ... like these (a result written before them reads and writes the same)
WHEN_SET = (*WEIGHTS, "oversampled", "step_s", "general_wanted", "general_kl")


@dataclass(frozen=True)
class TrainResult:
    """The result of one train run (any objective)."""

    method: str | None = None
    objective: str | None = None
    recipe: str | None = None  # `LoRA r=16 (DoRA)`: what the progress bar and the summary say
    precision: str | None = None
    steps: int | None = None
    epochs: float | None = None
    train_loss: float | None = None
    eval_loss: float | None = None
    wall_s: float | None = None
    step_s: float | None = None  # of wall_s, the time inside optimizer steps (the rest: validation, checkpoints)
    tokens_per_s: float | None = None  # over step_s
    trainable_params: int | None = None
    total_params: int | None = None
    planned_steps: int | None = None
    planned_epochs: float | None = None
    stopped_by_budget: bool = False
    resumed_from: str | None = None
    selection: dict[str, Any] | None = None  # SFT's checkpoint choice on validation (`tunesmith.train.selection`)
    general_examples: int | None = None  # general data mixed in (the train stage adds it)
    general_wanted: int | None = None  # ... where train.general_share asked for well more (the shortfall note)
    oversampled: dict[str, int] | None = None  # label -> times its records were shown a pass (train.oversample)
    general_kl: float | None = None  # the general rows' KL weight used (train.general_kl; 0 where it could not act)
    adapter: str | None = None  # the weights' directory in the run: one of these three
    model: str | None = None
    reward_model: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # every other fact, by its name in result.json

    @property
    def weights(self) -> str | None:
        """The directory in the run that holds what was trained (`adapter`, `model` or `reward_model`)."""
        return self.adapter or self.model or self.reward_model

    def to_json(self) -> dict[str, Any]:
        """The flat mapping result.json holds: the typed facts, then the others as written."""
        typed = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "details"}
        return {**{k: v for k, v in typed.items() if v is not None or k not in WHEN_SET}, **self.details}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainResult:
        """A result.json mapping (of any tunesmith version) as a TrainResult; unknown names go to `details`."""
        names = {f.name for f in dataclasses.fields(cls)} - {"details"}
        known = {k: v for k, v in data.items() if k in names}
        return cls(**known, details={k: v for k, v in data.items() if k not in names})

    @classmethod
    def read(cls, run_dir: Path) -> TrainResult:
        """A finished train run's result.json."""
        from tunesmith.runs import read_result

        return cls.from_json(read_result(run_dir))
