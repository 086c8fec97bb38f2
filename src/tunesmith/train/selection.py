"""Checkpoints chosen by generated answers: the validation set, decoded and scored as the final evaluation will be.

    selector = ValidationSelector(plan, run_dir)           # a TrainerCallback
    trainer.add_callback(selector); trainer.train(); selector.restore_best(trainer.model)

At every evaluation (`train.eval_steps`, and once at the end) the model being trained generates replies to the
validation cases with the eval decoding (the same limit and constraint as the test set will get), the task's own
scorers score them, and the value of the selection metric (`train.select_metric`: the gate's metric by default)
goes into metrics.jsonl beside the training and validation loss. The best adapter so far is kept in `best/`; after
`train.patience` evaluations without improvement training stops; the artifact saved at the end is the best one.
The state (best value and step, evaluations without improvement) is saved beside it, so a resumed run goes on
choosing where it left off. A `report(step, value)` hook feeds a recipe search's pruner.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from tunesmith.eval.evaluate import evaluate
from tunesmith.eval.plan import task_decoding
from tunesmith.eval.suite import cases_from_records
from tunesmith.files import atomic_write_json
from tunesmith.models import bf16_head, bf16_inference_weights

BEST, STATE = "best", "selection.json"
LOWER_IS_BETTER = {"loss", "token_limit_rate", "hallucination_rate"}


@dataclass
class ValidationPlan:
    """What a training run is chosen by: the validation cases, how they are decoded and which metric decides."""

    records: list  # Record: the validation split (its loss)
    cases: list  # EvalCase: the same records as cases (their generated replies)
    cfg: Any  # Config
    schema: dict | None
    decoding: Any  # tunesmith.eval.plan.Decoding
    metric: str  # a metric of the suite, e.g. task_accuracy, or "loss" (the validation loss)
    report: Callable[[int, float], bool] | None = None  # a search's pruner: (step, value) -> stop training?


def select_metric(cfg) -> str:
    """`train.select_metric`, resolving `auto` to the gate's metric when it judges the held-out suite."""
    chosen = cfg.train.select_metric
    if chosen != "auto":
        return chosen
    suite, _, metric = cfg.eval.gate.metric.rpartition(".")
    return metric if suite in ("", "heldout") and "#" not in metric else "task_accuracy"


@dataclass
class SelectionState:
    best_value: float | None = None
    best_step: int | None = None
    since_best: int = 0
    curve: list = field(default_factory=list)  # [step, value] per evaluation
    stopped_early: bool = False
    pruned: bool = False

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class ValidationSelector(TrainerCallback):
    """Scores generated validation replies at every evaluation; keeps the best adapter; stops after a patience."""

    def __init__(self, plan: ValidationPlan, run_dir: Path, patience: int | None) -> None:
        self.plan, self.run_dir, self.patience = plan, Path(run_dir), patience
        self.state = _load_state(self.run_dir / STATE)
        self.last_step = None

    def on_train_begin(self, args, state, control, **kwargs):
        """On resume, forget evaluations past the checkpoint: an exact resume replays them identically."""
        s = self.state
        s.curve = [[step, value] for step, value in s.curve if step <= state.global_step]
        s.best_value, s.best_step, s.since_best = None, None, 0
        for step, value in s.curve:
            if self.improved(value):
                s.best_value, s.best_step, s.since_best = value, step, 0
            else:
                s.since_best += 1

    def on_evaluate(self, args, state, control, model=None, processing_class=None, metrics=None, **kwargs):
        step = state.global_step
        if self.last_step == step or model is None:  # the end-of-training evaluation of an evaluated step
            return
        self.last_step = step
        value, scores = self.measure(model, processing_class, step, metrics or {}, args.bf16)
        # Every process decides alike (same weights, same greedy replies), so all stop at the same step.
        improved = self.improved(value)
        if improved:
            self.state.best_value, self.state.best_step, self.state.since_best = value, step, 0
        else:
            self.state.since_best += 1
        self.state.curve.append([step, value])
        if self.patience is not None and self.state.since_best >= self.patience and step < state.max_steps:
            self.state.stopped_early = control.should_training_stop = True
        if state.is_world_process_zero:  # one writer
            if improved:
                _save_trainable(model, self.run_dir / BEST)
            self.log(state, value, scores, metrics or {})
            atomic_write_json(self.run_dir / STATE, self.state.to_json())
        if self.plan.report is not None and self.plan.report(step, value):  # a search's pruner says stop
            self.state.pruned = control.should_training_stop = True
            if state.is_world_process_zero:
                atomic_write_json(self.run_dir / STATE, self.state.to_json())

    def measure(self, model, tok, step: int, metrics: dict, bf16: bool) -> tuple[float, dict]:
        """The selection metric at this step (and every metric of the validation suite)."""
        if self.plan.metric == "loss":
            loss = metrics.get("eval_loss")
            return (float(loss) if loss is not None else math.inf), {}
        from tunesmith.generate.backends import TransformersBackend

        out = self.run_dir / "validation" / f"step-{step}"
        out.mkdir(parents=True, exist_ok=True)
        merged = merged_copy(model, bf16)
        was_training = model.training
        model.eval()
        try:
            with nullcontext() if merged is not None or not bf16 else bf16_head(model):
                backend = TransformersBackend.from_model(
                    merged if merged is not None else model,
                    tok,
                    fingerprint=f"training step {step}",
                    precision="bf16" if bf16 else "fp32",
                )
                scores = evaluate(
                    backend,
                    {"validation": self.plan.cases},
                    self.plan.cfg,
                    out,
                    self.plan.schema,
                    f"validation @{step}",
                    None,
                    decodings={"validation": self.plan.decoding},
                )
        finally:
            model.train(was_training)
            del merged
        value = scores["validation"].get(self.plan.metric)
        return (float(value) if value is not None else -math.inf), scores["validation"]

    def improved(self, value: float) -> bool:
        if self.state.best_value is None:
            return math.isfinite(value)
        if self.plan.metric in LOWER_IS_BETTER:
            return value < self.state.best_value
        return value > self.state.best_value

    def log(self, state, value: float, scores: dict, metrics: dict) -> None:
        """One metrics.jsonl row per evaluation: the selection metric and the validation suite's main metrics."""
        row = {
            "step": state.global_step,
            "epoch": state.epoch,
            "selection_metric": self.plan.metric,
            f"val_{self.plan.metric}": value,
            "time": time.time(),
        }
        for key in ("task_accuracy", "format_validity", "behavior_accuracy", "token_limit_rate"):
            if scores.get(key) is not None:
                row[f"val_{key}"] = scores[key]
        if metrics.get("eval_loss") is not None:
            row["val_loss"] = metrics["eval_loss"]
        with (self.run_dir / "metrics.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")

    def restore_best(self, model) -> bool:
        """Load the best trainable weights back into `model`; False when no evaluation ever improved."""
        best = self.run_dir / BEST / "trainable.safetensors"
        if not best.exists():
            return False
        from safetensors.torch import load_file

        weights = load_file(str(best))
        params = dict(model.named_parameters())
        for name, tensor in weights.items():
            params[name].data.copy_(tensor)
        return True

    def summary(self) -> dict[str, Any]:
        s = self.state
        return {
            "metric": self.plan.metric,
            "best_step": s.best_step,
            "best_value": s.best_value,
            "last_value": s.curve[-1][1] if s.curve else None,
            "evaluations": len(s.curve),
            "cases": len(self.plan.cases),  # how noisy one evaluation is (diagnose reads it)
            "stopped_early": s.stopped_early,
            "pruned": s.pruned,
            "curve": s.curve,
        }


def merged_copy(model, bf16: bool):
    """A copy of a LoRA model with its adapter merged in, for fast validation replies (the unmerged LoRA path costs
    extra small matmuls at every decoding step: 1.9x slower than this copy, the copy's time included, for 64
    Banking77 queries on the built-in model on a 2-core CPU); None for a full fine-tune, a quantized base, or a
    model over MERGE_CHECK_MAX_PARAMS (the evaluation's own bound on a copy). The training model is never merged
    into."""
    import copy

    if not hasattr(model, "merge_and_unload") or getattr(model, "is_loaded_in_4bit", False):
        return None
    from tunesmith.generate.backends import MERGE_CHECK_MAX_PARAMS

    if sum(p.numel() for p in model.parameters()) > MERGE_CHECK_MAX_PARAMS:
        return None
    twin = copy.deepcopy(model).merge_and_unload()
    _class_forwards(twin)
    twin.eval()
    _inference_attention(twin)
    if bf16:
        bf16_inference_weights(twin)
    return twin


def _class_forwards(model) -> None:
    """Drop the instance-level `forward` wrappers a deep copy carries over from the training model: TRL's
    SFTTrainer patches the base model's forward (its fused LM head) and accelerate wraps the PEFT model's in bf16
    autocast, each a closure over the original bound method, which a deep copy does not rebind, so the copy would
    decode through the training model (its unmerged adapter and eager attention: Banking77's 199 validation
    replies took 36 s against 14 s on a 2-core CPU). The backend that decodes the copy puts its own autocast
    around `generate`."""
    for module in model.modules():
        module.__dict__.pop("forward", None)
        module.__dict__.pop("_original_forward", None)


def _inference_attention(model) -> None:
    """The copy's attention as the evaluation loads it (transformers' default, SDPA) where training took eager
    attention (faster for a CPU backward on short rows), so validation replies are decoded as the test set's will
    be. Decoding speed hardly differs at the evaluation's batch of 32 (233 vs 227 tokens/s for Banking77 queries on
    the built-in model, a one-off /tmp measurement; 280 vs 226 at 64). A model without SDPA keeps eager."""
    if getattr(model.config, "_attn_implementation", None) != "eager":
        return
    with suppress(ValueError, ImportError, AttributeError):
        model.set_attn_implementation("sdpa")


def _save_trainable(model, out_dir: Path) -> None:
    """The trainable parameters (the adapter, or every weight of a full fine-tune) as safetensors, atomically."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {n: p.detach().to("cpu").contiguous().clone() for n, p in model.named_parameters() if p.requires_grad}
    tmp = out_dir / "trainable.safetensors.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(out_dir / "trainable.safetensors")


def _load_state(path: Path) -> SelectionState:
    try:
        return SelectionState(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return SelectionState()


def validation_plan(
    cfg,
    records: list,
    train_replies: list[str],
    tok,
    schema: dict | None,
    report: Callable[[int, float], bool] | None = None,
) -> ValidationPlan | None:
    """The plan that chooses an SFT run's checkpoint: the validation records as cases, decoded as the test set
    will be (`tunesmith.eval.plan.task_decoding` over the training replies); None without validation records."""
    if not records:
        return None
    cases = cases_from_records(records, cfg.task, suite="validation")
    return ValidationPlan(
        records, cases, cfg, schema, task_decoding(cfg, train_replies, tok, schema), select_metric(cfg), report
    )
