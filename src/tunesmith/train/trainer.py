"""What every training recipe shares (SFT, DPO, GRPO, reward models): the adapter and the model to train, the
trainer arguments from `train.*`, the trainer with its loss guard, pickle-free checkpoints, progress bar,
metrics.jsonl and time budget, training with resume from the newest complete checkpoint, and saving the result.

    trainer, budget = make_trainer(DPOTrainer, cfg, run_dir, describe(cfg), model=..., args=DPOConfig(
        **common_args(cfg, run_dir, precision), ...), ...)
    facts = run_training(trainer, run_dir, budget)
    kind = save_trained(trainer, tok, run_dir, cfg.train.method)

A run directory with checkpoints from a killed run resumes from the newest one.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

from tunesmith.config import Config
from tunesmith.data.records import Record
from tunesmith.errors import Problem, TunesmithError
from tunesmith.files import disk_full
from tunesmith.models import ModelRef, bf16_linear_weights, decoder_layer, load_model, training_attention
from tunesmith.train import checkpoint as ckpt


def lora_config(cfg: Config, model, task_type: str = "CAUSAL_LM"):
    """The adapter of a lora/qlora run (None for full fine-tuning) for `model` (whose layer count `lora.layers`
    counts from the top). `SEQ_CLS` (reward models) also trains the new score head."""
    from peft import LoraConfig

    t = cfg.train
    if t.method == "full":
        return None
    lora = t.lora
    layers = lora.layer_indices(model.config.num_hidden_layers)
    targets = lora.target_modules
    if layers is not None and targets == "all-linear":  # peft takes a layer subset only with named modules
        targets = layer_linears(model)
    elif layers is not None and isinstance(targets, str):
        raise TunesmithError(
            "train.lora.layers needs named target modules",
            [
                Problem(
                    "train.lora.target_modules",
                    f"a pattern ({targets!r}) cannot be restricted to some layers (peft's rule)",
                    "name the modules (e.g. [q_proj, v_proj]) or use all-linear; or leave train.lora.layers unset",
                )
            ],
        )
    return LoraConfig(
        layers_to_transform=layers,
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        task_type=task_type,
        use_dora=lora.dora,
        use_rslora=lora.rslora,
    )


def layer_linears(model) -> list[str]:
    """The names of the linear modules inside the model's decoder layers (q_proj, ..., down_proj): what
    `all-linear` adapts there, named so that peft can restrict them to some layers."""
    import torch

    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and decoder_layer(name) is not None
        }
    )


def load_training_model(cfg: Config, model_ref: ModelRef, precision: str):
    """The model to train: as stored (full; lora with `base_precision: fp32`, fp32 precision or GRPO), with the
    frozen base's linear weights in bf16 (lora SFT and DPO in bf16 precision), or quantized to 4-bit NF4 with
    double quantization (qlora)."""
    import torch

    attention = training_attention(cfg.train.attention, cfg.data.max_seq_len)
    if cfg.train.method == "lora":
        model = load_model(model_ref, attention=attention)
        # SFT and DPO run every forward under autocast; GRPO also generates, outside it, so its base stays fp32.
        if cfg.train.base_precision == "bf16" and precision == "bf16" and cfg.train.objective != "grpo":
            bf16_linear_weights(model)
        return model
    if cfg.train.method != "qlora":
        return load_model(model_ref, attention=attention)
    import importlib.util

    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if importlib.util.find_spec("bitsandbytes") is None:
        raise TunesmithError(
            "QLoRA needs bitsandbytes",
            [Problem("train.method: qlora", "bitsandbytes is not installed", "pip install bitsandbytes")],
        )
    compute = torch.bfloat16 if precision == "bf16" else torch.float32
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
        bnb_4bit_quant_storage=compute,
    )
    from tunesmith.shapes import weights_dir  # a `shape:` model's random weights, written once for this loader

    model = AutoModelForCausalLM.from_pretrained(
        weights_dir(model_ref.path),
        quantization_config=quant,
        dtype=compute,
        use_safetensors=True,
        trust_remote_code=model_ref.trust_remote_code,
    )
    # Norms and the head in fp32 for stable training, inputs that carry gradients into the adapters.
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.train.gradient_checkpointing)


def latest_checkpoint(run_dir: Path) -> str | None:
    ckpts = sorted((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    # A checkpoint counts only once the trainer wrote its state file (written after the weights), whole: a run
    # killed (or out of disk) while writing it leaves a torn file, and that checkpoint is skipped.
    complete = [p for p in ckpts if _whole_state(p / "trainer_state.json")]
    return str(complete[-1]) if complete else None


def _whole_state(path: Path) -> bool:
    try:
        return "global_step" in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


AUTO_EXAMPLES = 5400  # `epochs: auto` passes over a data set until about this many examples were seen ...
LABEL_EXAMPLES = 70  # ... or, for a label task, this many per label (5,400 over Banking77's 77 labels), if more ...
AUTO_MAX_EPOCHS = 10  # ... in at most this many passes (early stopping on validation decides the rest)
EVALS_PER_EPOCH, MIN_EVAL_STEPS = 2, 10  # unset train.eval_steps: two validations a pass, at most one per 10 steps


def resolve_epochs(epochs: float | str, n_records: int | None, n_labels: int | None = None) -> float:
    """`train.epochs`, with `auto` = enough passes over `n_records` to see about AUTO_EXAMPLES examples, or
    LABEL_EXAMPLES per label of a label task with `n_labels` labels where that is more (1 to 10 passes): a small
    data set needs several passes to converge, a large one one, and a task of many labels learns each from the
    examples of that label (150 labels of 20 queries each would otherwise get two passes, 36 examples a label;
    the 60-intent out-of-scope proxy of `benchmarks/intent_quality.py` rose from 0.754 to 0.846 on validation
    between about 27 and 45 examples a label, then stayed level). Recipes without a
    validation-chosen checkpoint (DPO, GRPO, reward models) pass no count and make one pass."""
    if epochs != "auto":
        return float(epochs)
    if n_records is None:
        return 1.0
    wanted = max(AUTO_EXAMPLES, LABEL_EXAMPLES * (n_labels or 0))
    return float(min(AUTO_MAX_EPOCHS, max(1, math.ceil(wanted / max(n_records, 1)))))


def task_labels(cfg: Config, records: list[Record]) -> int | None:
    """The labels of a label task's training records (general data left out), for `epochs: auto`; else None."""
    from tunesmith.eval.baselines import label_count

    return label_count(cfg.task, [r.reply or "" for r in records if not r.provenance.get("general")])


def examples_per_step(t) -> int:
    """Training examples one optimizer step sees (`t`: the train config): batch x accumulation x processes."""
    return t.batch_size * t.grad_accum * t.nproc


def resolve_eval_steps(cfg: Config, n_records: int) -> int:
    """`train.eval_steps`, or about EVALS_PER_EPOCH evaluations a pass (at least MIN_EVAL_STEPS steps apart)."""
    t = cfg.train
    if t.eval_steps:
        return t.eval_steps
    steps_per_epoch = math.ceil(n_records / examples_per_step(t))
    return max(MIN_EVAL_STEPS, math.ceil(steps_per_epoch / EVALS_PER_EPOCH))


def common_args(
    cfg: Config, run_dir: Path, precision: str, n_records: int | None = None, n_labels: int | None = None
) -> dict[str, Any]:
    """The trainer arguments every recipe (SFT, DPO, GRPO) shares, from `train.*` (`n_records`: the training
    examples, and `n_labels` a label task's labels, for `epochs: auto`)."""
    import importlib.util

    t = cfg.train
    packages = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
    missing = [name for name in t.report_to if importlib.util.find_spec(packages[name]) is None]
    if missing:
        raise TunesmithError(
            "Tracker not installed",
            [
                Problem(
                    f"train.report_to: {name}", "the package is missing", f"pip install {packages[name]}, or drop it"
                )
                for name in missing
            ],
        )
    if "tensorboard" in t.report_to:  # beside metrics.jsonl, not under checkpoints/ (removed when training ends)
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(run_dir / "tensorboard")
    return dict(
        output_dir=str(run_dir / "checkpoints"),
        num_train_epochs=resolve_epochs(t.epochs, n_records, n_labels),
        max_steps=t.max_steps or -1,
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.lr,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,  # a float in [0, 1) is a share of the total steps
        weight_decay=t.weight_decay,
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=2,
        bf16=precision == "bf16",
        # TRL turns checkpointing on by default; on a small model it only costs time (~1.3x per step).
        gradient_checkpointing=t.gradient_checkpointing,
        seed=t.seed,
        data_seed=t.seed,
        report_to=t.report_to or "none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=not has_cuda(),
        logging_nan_inf_filter=False,  # a NaN is reported, never averaged away
    )


def save_trained(trainer, tok, run_dir: Path, method: str, kind: str | None = None, model=None) -> str:
    """Write the adapter (or, for full fine-tuning, the whole model; or `model` under the name `kind`) atomically
    into the run directory and drop the resume checkpoints; returns the artifact's name."""
    kind = kind or ("model" if method == "full" else "adapter")
    if not trainer.is_world_process_zero():  # in a multi-process run, one process writes
        return kind
    out_dir, tmp = run_dir / kind, run_dir / f".{kind}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (model if model is not None else trainer.model).save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno != errno.ENOSPC or isinstance(exc, TunesmithError):
            raise
        raise disk_full(
            out_dir, f"while writing the {kind}", "the checkpoints are kept (a re-run resumes from the newest)"
        ) from exc
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    # The artifact is final; resume state is not needed. Moved aside first (atomic), so a kill while deleting never
    # leaves a half-deleted checkpoint behind for a re-run to resume from.
    trash = run_dir / ".checkpoints.removing"
    shutil.rmtree(trash, ignore_errors=True)
    if (run_dir / "checkpoints").exists():
        os.replace(run_dir / "checkpoints", trash)
    shutil.rmtree(trash, ignore_errors=True)
    return kind


def make_trainer(trainer_cls, cfg: Config, run_dir: Path, label: str, **kwargs: Any):
    """(trainer, time budget): `trainer_cls(**kwargs)` with the loss guard and pickle-free checkpoints, the progress
    bar (`Training <label>`), metrics.jsonl and the time budget; every recipe builds its trainer here."""
    from transformers.trainer_callback import PrinterCallback

    from tunesmith.train.progress import MetricsLog, RichProgress, StepClock, TimeBudget  # imports transformers

    budget, clock = TimeBudget(cfg.budget.max_train_minutes), StepClock()
    callbacks = [clock, RichProgress(f"Training {label}", clock), MetricsLog(run_dir / "metrics.jsonl", clock), budget]
    trainer = _guarded(trainer_cls, run_dir, cfg.train.loraplus_lr_ratio)(**kwargs, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # our progress bar and metrics.jsonl replace its raw dict prints
    return trainer, budget


def run_training(trainer, run_dir: Path, budget) -> dict[str, Any]:
    """Train, resuming from the newest complete checkpoint; the facts every recipe reports."""
    resume = latest_checkpoint(run_dir)
    if resume is not None and getattr(trainer, "_plain", lambda: False)():
        ckpt.refuse_pickled_only(Path(resume))  # before transformers opens anything in it (weights come first)
    began = time.perf_counter()
    try:
        out = trainer.train(resume_from_checkpoint=resume)
    except OSError as exc:
        if exc.errno != errno.ENOSPC or isinstance(exc, TunesmithError):
            raise
        last = latest_checkpoint(run_dir)  # a checkpoint torn by the full disk is skipped (see latest_checkpoint)
        raise disk_full(
            exc.filename or run_dir / "checkpoints",
            "while training",
            (
                f"the last complete checkpoint is {last} (a re-run resumes from it)"
                if last
                else "no checkpoint was complete yet"
            ),
        ) from exc
    wall = time.perf_counter() - began
    from tunesmith.train.progress import StepClock

    clock = StepClock.of(trainer)
    return {
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "train_loss": out.training_loss,
        "wall_s": wall,
        "step_s": clock.seconds if clock else None,  # of wall_s, the time in optimizer steps
        "tokens_per_s": clock.tokens_per_s if clock else None,  # over step_s: validation and checkpoints excluded
        "resumed_from": resume,
        "stopped_by_budget": budget.stopped,
        "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "total_params": sum(p.numel() for p in trainer.model.parameters()),
    }


def final_eval_loss(trainer) -> float | None:
    """The validation loss of the weights training ended with: the one logged at the last step when that step was
    evaluated (a run whose length is a multiple of its evaluation interval ends on one: evaluating it again would
    repeat the same forward passes), else one evaluation now. None without a validation set."""
    if trainer.eval_dataset is None:
        return None
    step = trainer.state.global_step
    logged = [row["eval_loss"] for row in trainer.state.log_history if "eval_loss" in row and row.get("step") == step]
    return logged[-1] if logged else trainer.evaluate()["eval_loss"]


def describe(cfg: Config) -> str:
    """`LoRA r=16`, `QLoRA r=16 (DoRA, rsLoRA)`, `full fine-tuning`: what a progress bar and a summary say."""
    t = cfg.train
    if t.method == "full":
        return "full fine-tuning"
    variants = [name for name, on in (("DoRA", t.lora.dora), ("rsLoRA", t.lora.rslora)) if on]
    if t.loraplus_lr_ratio:
        variants.append(f"LoRA+ x{t.loraplus_lr_ratio:g}")
    layers = t.lora.layers
    if layers is not None:
        variants.append(f"last {layers} layers" if isinstance(layers, int) else f"layers {','.join(map(str, layers))}")
    return f"{'QLoRA' if t.method == 'qlora' else 'LoRA'} r={t.lora.r}" + (
        f" ({', '.join(variants)})" if variants else ""
    )


class TrainingDiverged(TunesmithError):
    """The loss became NaN or infinite: the run stops before the bad step reaches the weights; checkpoints stay."""

    keep_run = True  # the pipeline keeps the run directory (its last good checkpoint) instead of removing it


def _guarded(base, run_dir: Path, loraplus_lr_ratio: float | None = None):
    """The trainer class with a loss guard: every micro-batch's loss is checked before the optimizer steps, so a
    NaN/inf stops the run naming the step, and no checkpoint after the last good one is ever written. With
    `loraplus_lr_ratio`, its optimizer is LoRA+'s."""

    class GuardedTrainer(_PickleFreeCheckpoints, _NonPaddingTokenCount, base):
        def create_optimizer(self, model=None):
            if self.optimizer is None and loraplus_lr_ratio:
                self.optimizer = loraplus_optimizer(self, loraplus_lr_ratio)
            return super().create_optimizer(model)

        def training_step(self, model, inputs, num_items_in_batch=None):
            loss = super().training_step(model, inputs, num_items_in_batch)
            value = float(loss.detach().float().mean())
            if not math.isfinite(value):
                raise _diverged(self.state.global_step + 1, value, run_dir)
            return loss

    return GuardedTrainer


def loraplus_optimizer(trainer, ratio: float):
    """LoRA+: the trainer's own optimizer (its class and arguments, AdamW here) with the adapters' B matrices (and
    1-D adapter parameters such as DoRA's magnitudes) at `ratio` times the learning rate, by peft's
    `create_loraplus_optimizer`; weight decay as `train.weight_decay`, except on biases and norms."""
    from peft.optimizers import create_loraplus_optimizer

    optimizer_cls, kwargs = trainer.get_optimizer_cls_and_kwargs(trainer.args, trainer.model)
    kwargs = {k: v for k, v in kwargs.items() if k != "lr"}
    return create_loraplus_optimizer(
        trainer.model,
        optimizer_cls,
        lr=trainer.args.learning_rate,
        loraplus_lr_ratio=ratio,
        loraplus_weight_decay=trainer.args.weight_decay,
        **kwargs,
    )


class _PickleFreeCheckpoints:
    """Checkpoint state as safetensors + JSON, never pickle (see tunesmith.train.checkpoint); mixed in before a
    transformers Trainer class."""

    def _plain(self) -> bool:
        return not (getattr(self, "is_deepspeed_enabled", False) or getattr(self, "is_fsdp_enabled", False))

    def _rank(self):
        return None if self.args.world_size <= 1 else self.args.process_index

    def _save_optimizer_and_scheduler(self, output_dir):
        if not self._plain():
            return super()._save_optimizer_and_scheduler(output_dir)
        if self.args.should_save:
            ckpt.save_optimizer(self.optimizer, self.lr_scheduler, Path(output_dir))

    def _load_optimizer_and_scheduler(self, checkpoint):
        if checkpoint is None or not self._plain():
            return super()._load_optimizer_and_scheduler(checkpoint)
        ckpt.refuse_pickled_only(Path(checkpoint))
        ckpt.load_optimizer(self.optimizer, self.lr_scheduler, Path(checkpoint))

    def _save_rng_state(self, output_dir):
        ckpt.save_rng(Path(output_dir), self._rank())

    def _load_rng_state(self, checkpoint):
        if checkpoint is not None:
            ckpt.load_rng(Path(checkpoint), self._rank())

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            ckpt.drop_pickles(Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}")


class _NonPaddingTokenCount:
    """The input-token count of padding-free and packed batches; mixed in before a transformers Trainer class."""

    def _track_num_input_tokens(self, inputs):
        pad = getattr(self.processing_class, "pad_token_id", None)
        if (
            "attention_mask" in inputs
            or "position_ids" not in inputs
            or pad is None
            or self.args.include_num_input_tokens_seen != "non_padding"
        ):
            return super()._track_num_input_tokens(inputs)
        # Padding-free and packed rows have no attention mask, and the pad id is often a real token too (the
        # end-of-turn one): padding is a pad id at position 0, where no example's real tokens ever are.
        real = ~((inputs["input_ids"] == pad) & (inputs["position_ids"] == 0))
        self.state.num_input_tokens_seen += self.accelerator.gather(real.sum().to(self.args.device)).sum().item()


def _diverged(step: int, value: float, run_dir: Path) -> TrainingDiverged:
    """The error for a non-finite loss at `step`, naming the last good checkpoint."""
    last = latest_checkpoint(run_dir)
    return TrainingDiverged(
        f"Training diverged at step {step}",
        [
            Problem(
                f"step {step}",
                f"the loss is {value}",
                "lower train.lr, use fp32 (train.precision: fp32), or look for an extreme example "
                "in the data; "
                + (
                    f"the last good checkpoint is {last} (a re-run resumes from it)"
                    if last
                    else "no checkpoint was written before it"
                ),
            )
        ],
    )


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
