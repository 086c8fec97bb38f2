"""`tunesmith train PROJECT --check`: the numerics to verify before trusting a training run, on the project's own
model, recipe and data, in fp32, in a few minutes at most.

    results = check_invariants(cfg, model_ref, records)   # [Invariant(name, passed, detail, figures), ...]

1. every trainable parameter changes after a few steps, and every frozen one does not;
2. batch 8 x accumulation 1 gives the same update as batch 1 x accumulation 8 (the loss is normalized by tokens,
   not by micro-batches; plain SGD, so the update is proportional to the gradient);
3. the label mask covers exactly the assistant content plus its end-of-turn token, with no doubled BOS and no
   example trained with an empty mask;
4. a few steps on one small batch drive its loss near zero (the model, adapter and mask can learn at all).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.config import Config
from tunesmith.data.records import Record
from tunesmith.models import ModelRef


@dataclass
class Invariant:
    name: str
    passed: bool
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)


def _checking_config(cfg: Config, **train: Any) -> Config:
    """The project's config with fp32, no warm-up, a constant rate, no checkpoints, no adapter dropout, and `train`
    applied."""
    c = cfg.model_copy(deep=True)
    for key, value in {
        "precision": "fp32",
        "warmup_ratio": 0.0,
        "lr_scheduler": "constant",
        "logging_steps": 1,
        "save_steps": 10_000,
        "gradient_checkpointing": False,
        **train,
    }.items():
        setattr(c.train, key, value)
    c.train.lora.dropout = 0.0
    return c


def _trainer(cfg: Config, model_ref: ModelRef, records: list[Record], run_dir: Path, **args: Any):
    from transformers import set_seed

    from tunesmith.train.sft import build_trainer

    set_seed(cfg.train.seed)  # the same adapter initialization for runs that must match
    trainer = build_trainer(cfg, model_ref, records, run_dir, save_strategy="no", **args)[0]
    return trainer


def _snapshot(model) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def trainable_moved_frozen_still(cfg: Config, model_ref: ModelRef, records: list[Record], tmp: Path) -> Invariant:
    """After three steps every trainable tensor differs from its start, and every frozen one is bit-identical."""
    import torch

    trainer = _trainer(
        _checking_config(cfg, max_steps=3, batch_size=min(cfg.train.batch_size, 4), grad_accum=1),
        model_ref,
        records,
        tmp,
    )
    before = _snapshot(trainer.model)
    trainer.train()
    after = _snapshot(trainer.model)
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    stuck = sorted(n for n in trainable if torch.equal(before[n], after[n]))
    moved_frozen = sorted(n for n in before if n not in trainable and not torch.equal(before[n], after[n]))
    figures = {
        "trainable_tensors": len(trainable),
        "frozen_tensors": len(before) - len(trainable),
        "trainable_unchanged": len(stuck),
        "frozen_changed": len(moved_frozen),
    }
    if stuck or moved_frozen:
        return Invariant(
            "trainable move, frozen stay",
            False,
            f"unchanged trainable: {stuck[:3]}; changed frozen: {moved_frozen[:3]}",
            figures,
        )
    return Invariant(
        "trainable move, frozen stay",
        True,
        f"all {len(trainable)} trainable tensors moved; all {len(before) - len(trainable)} frozen "
        "tensors are bit-identical",
        figures,
    )


def accumulation_equivalence(
    cfg: Config, model_ref: ModelRef, records: list[Record], tmp: Path, tolerance: float = 1e-3
) -> Invariant:
    """One SGD step on the same 8 examples as 8 x 1 and as 1 x 8: the updates agree to `tolerance` (relative)."""
    eight = records[:8]
    if len(eight) < 8:
        return Invariant("batch 8x1 = batch 1x8", False, f"needs 8 training examples, has {len(eight)}")
    updates = []
    for batch, accum in ((8, 1), (1, 8)):
        trainer = _trainer(
            _checking_config(cfg, max_steps=1, batch_size=batch, grad_accum=accum),
            model_ref,
            eight,
            tmp / f"b{batch}",
            optim="sgd",
        )
        before = _snapshot(trainer.model)
        trainer.train()
        updates.append({n: p.detach() - before[n] for n, p in trainer.model.named_parameters() if p.requires_grad})
    size = max(u.abs().max().item() for u in updates[0].values())
    gap = max((updates[0][n] - updates[1][n]).abs().max().item() for n in updates[0])
    rel = gap / size if size else float("inf")
    figures = {"max_update": size, "max_difference": gap, "relative_difference": rel}
    ok = rel <= tolerance
    return Invariant(
        "batch 8x1 = batch 1x8",
        ok,
        f"largest update {size:.3g}, largest difference {gap:.3g} ({rel:.2e} relative; tolerance {tolerance:g})",
        figures,
    )


def mask_is_exact(cfg: Config, model_ref: ModelRef, records: list[Record], limit: int = 200) -> Invariant:
    """The labeled tokens of each example decode to its assistant turns, each followed by its end-of-turn token;
    no example starts with two BOS tokens; none has an empty mask."""
    from tunesmith.chat import training_example
    from tunesmith.eval.suite import with_system_prompt
    from tunesmith.models import load_tokenizer

    tok = load_tokenizer(model_ref)
    eot = tok.eos_token
    bad, empty, double_bos, checked = [], 0, 0, 0
    for rec in records[:limit]:
        messages = with_system_prompt(rec.messages, cfg.task)
        ex = training_example(tok, messages, rec.tools, cfg.data.max_seq_len)
        checked += 1
        if ex.assistant_tokens == 0:
            empty += 1
            continue
        if tok.bos_token_id is not None and ex.input_ids[:2] == [tok.bos_token_id] * 2:
            double_bos += 1
        if ex.dropped_assistant_tokens or any(m.get("tool_calls") for m in messages):
            continue  # truncated (reported by `data check`), or tool calls the template renders its own way
        labeled = tok.decode([t for t, lab in zip(ex.input_ids, ex.labels) if lab != -100])
        wanted = "".join((m.get("content") or "") + eot for m in messages if m["role"] == "assistant")
        if labeled != wanted:
            bad.append(rec.where)
    figures = {"examples": checked, "mismatched": len(bad), "empty_mask": empty, "double_bos": double_bos}
    ok = not bad and not empty and not double_bos
    detail = (
        f"{checked} examples: labels are exactly the assistant turns plus {eot!r}"
        if ok
        else f"mismatched labels at {bad[:3]}; {empty} empty mask(s); {double_bos} doubled BOS"
    )
    return Invariant("label mask is exact", ok, detail, figures)


def overfits_one_batch(
    cfg: Config, model_ref: ModelRef, records: list[Record], tmp: Path, steps: int = 30, lr: float | None = None
) -> Invariant:
    """`steps` steps on 2 examples: the loss must fall to a tenth of where it started (or below 0.05)."""
    batch = records[:2]
    lr = lr or (1e-4 if cfg.train.method == "full" else 3e-3)
    trainer = _trainer(
        _checking_config(cfg, max_steps=steps, batch_size=len(batch), grad_accum=1, lr=lr), model_ref, batch, tmp
    )
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    first, last = losses[0], losses[-1]
    ok = last <= max(0.1 * first, 0.0) or last < 0.05
    return Invariant(
        "overfits one batch",
        ok,
        f"loss {first:.3f} -> {last:.3f} in {steps} steps at lr {lr:g}",
        {"first_loss": first, "last_loss": last, "steps": steps},
    )


def check_invariants(
    cfg: Config, model_ref: ModelRef, records: list[Record], overfit_steps: int = 30, overfit_lr: float | None = None
) -> list[Invariant]:
    """All four checks on the project's model, recipe and (training) records."""
    with tempfile.TemporaryDirectory(prefix="tunesmith-check-") as tmp:
        root = Path(tmp)
        return [
            mask_is_exact(cfg, model_ref, records),
            trainable_moved_frozen_still(cfg, model_ref, records, root / "moved"),
            accumulation_equivalence(cfg, model_ref, records, root / "accum"),
            overfits_one_batch(cfg, model_ref, records, root / "overfit", overfit_steps, overfit_lr),
        ]
