"""DPO on preference pairs, through TRL: config -> model -> adapter -> pairs -> train -> save -> record.

    result = train_dpo(cfg, model_ref, records, run_dir)   # records carry `rejected` (preference pairs)

The reference model is the base with the adapter switched off (TRL does this when given a PEFT config), so only
one copy of the weights is in memory. The loss guard, progress bar, metrics.jsonl, time budget and checkpoint
resume are the SFT recipe's.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from tunesmith.config import Config
from tunesmith.data.records import Record
from tunesmith.errors import Problem, TunesmithError
from tunesmith.eval.suite import with_system_prompt
from tunesmith.models import ModelRef, load_tokenizer, resolve_precision
from tunesmith.train.sft import _guarded, describe, latest_checkpoint, load_training_model, lora_config


def pair_rows(records: list[Record], cfg: Config) -> list[dict[str, Any]]:
    """TRL's conversational preference rows: prompt (with the task's system prompt), chosen and rejected turns."""
    missing = [r for r in records if not r.rejected]
    if missing:
        raise TunesmithError(f"DPO needs preference pairs: {len(missing)} record(s) have no rejected reply", [
            Problem(r.where, "a conversation, not a pair", "give prompt/chosen/rejected records, or use "
                    "train.objective: sft") for r in missing[:10]])
    rows = []
    for rec in records:
        last = rec.final_assistant_index()
        rows.append({"prompt": with_system_prompt(rec.messages[:last], cfg.task),
                     "chosen": rec.messages[last:], "rejected": rec.rejected})
    return rows


def train_dpo(cfg: Config, model_ref: ModelRef, records: list[Record], run_dir: Path) -> dict[str, Any]:
    """Train a LoRA/QLoRA adapter with DPO on preference pairs; write `adapter/` and `metrics.jsonl`."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback
    from trl import DPOConfig, DPOTrainer

    from tunesmith.train.progress import MetricsLog, RichProgress, TimeBudget

    t = cfg.train
    precision = resolve_precision(t.precision)
    tok = load_tokenizer(model_ref)
    rows = pair_rows(records, cfg)
    model = load_training_model(cfg, model_ref, precision)
    args = DPOConfig(
        output_dir=str(run_dir / "checkpoints"), num_train_epochs=t.epochs, max_steps=t.max_steps or -1,
        per_device_train_batch_size=t.batch_size, gradient_accumulation_steps=t.grad_accum, learning_rate=t.lr,
        lr_scheduler_type=t.lr_scheduler, warmup_steps=t.warmup_ratio, weight_decay=t.weight_decay,
        logging_steps=t.logging_steps, save_strategy="steps", save_steps=t.save_steps, save_total_limit=2,
        bf16=precision == "bf16", gradient_checkpointing=t.gradient_checkpointing, seed=t.seed, data_seed=t.seed,
        report_to="none", disable_tqdm=True, beta=t.dpo_beta, max_length=cfg.data.max_seq_len,
        dataloader_num_workers=0, use_cpu=not torch.cuda.is_available(), logging_nan_inf_filter=False)
    budget = TimeBudget(cfg.budget.max_train_minutes)
    trainer = _guarded(DPOTrainer, run_dir)(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
        peft_config=lora_config(cfg),
        callbacks=[RichProgress(f"Training {describe(cfg)} (DPO)"), MetricsLog(run_dir / "metrics.jsonl"), budget])
    trainer.remove_callback(PrinterCallback)
    resume = latest_checkpoint(run_dir)
    began = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=resume)
    wall = time.perf_counter() - began

    out_dir, tmp = run_dir / "adapter", run_dir / ".adapter.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    last = next((log for log in reversed(trainer.state.log_history) if "rewards/accuracies" in log), {})
    return {
        "method": t.method, "objective": "dpo", "precision": precision, "recipe": f"{describe(cfg)} (DPO)",
        "steps": trainer.state.global_step, "epochs": trainer.state.epoch, "train_loss": out.training_loss,
        "wall_s": wall, "resumed_from": resume, "stopped_by_budget": budget.stopped, "pairs": len(rows),
        "reward_accuracy": last.get("rewards/accuracies"), "reward_margin": last.get("rewards/margins"),
        "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "total_params": sum(p.numel() for p in trainer.model.parameters()),
        "tokens_per_s": None, "dora": t.dora, "rslora": t.rslora, "adapter": "adapter",
    }
