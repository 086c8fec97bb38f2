"""`EvalResult`: what an evaluation stage gave, typed: the model's name, its metrics per suite, the adapter it ran
with, and what else the stage recorded (who generated: model identity, backend or endpoint) kept as written.

    result = EvalResult("base-model", evaluate(backend, suites, cfg, run_dir, ...))
    result.metrics["heldout"]["task_accuracy"]
    result.to_json()                       # {"model": ..., "metrics": {...}}: the result.json layout it always had
    EvalResult.from_json(json.loads((run_dir / "result.json").read_text()))   # any eval run, old ones included
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EvalResult:
    """The result of one evaluation (eval-base, eval-tuned, `tunesmith eval run`)."""

    model: str | None = None  # the name it is shown by
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # suite -> metric -> value
    adapter: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # every other fact, by its name in result.json

    def to_json(self) -> dict[str, Any]:
        """The flat mapping result.json holds."""
        return {"model": self.model, "adapter": self.adapter, **self.details, "metrics": self.metrics}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalResult:
        """A result.json mapping (of any tunesmith version) as an EvalResult; unknown names go to `details`."""
        details = {k: v for k, v in data.items() if k not in ("model", "metrics", "adapter")}
        return cls(data.get("model"), data.get("metrics") or {}, data.get("adapter"), details)
