"""GRPO with verifiable rewards, through TRL: config -> model -> adapter -> prompts -> sample, score, reinforce.

    result = train_grpo(cfg, model_ref, records, run_dir, schema)

Each training record is a prompt (everything before its final reply) and an expectation (that reply, parsed as the
task's eval does); `train.grpo_generations` replies are sampled per prompt and scored by `train.rewards` (the eval
harness's scorers, see `tunesmith.train.rewards`). The loss guard, progress bar, metrics.jsonl, time budget and
checkpoint resume are the SFT recipe's.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from tunesmith.config import Config
from tunesmith.data.records import Record
from tunesmith.eval.suite import expected_from_reply, with_system_prompt
from tunesmith.models import ModelRef, load_tokenizer, resolve_precision
from tunesmith.train.sft import _guarded, describe, latest_checkpoint, load_training_model, lora_config


def prompt_rows(records: list[Record], cfg: Config) -> list[dict[str, Any]]:
    rows = []
    for rec in records:
        last = rec.final_assistant_index()
        prompt = rec.messages[:last] if last is not None else rec.messages
        expected = expected_from_reply(rec.reply, cfg.task) if last is not None else None
        rows.append({"prompt": with_system_prompt(prompt, cfg.task), "expected": json.dumps(expected)})
    return rows


def train_grpo(cfg: Config, model_ref: ModelRef, records: list[Record], run_dir: Path,
               schema: dict | None = None) -> dict[str, Any]:
    """Train a LoRA/QLoRA adapter (or the full model) with GRPO; write `adapter/` (or `model/`), `metrics.jsonl`."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from tunesmith.train.progress import MetricsLog, RichProgress, TimeBudget
    from tunesmith.train.rewards import reward_functions

    t = cfg.train
    precision = resolve_precision(t.precision)
    tok = load_tokenizer(model_ref)
    funcs, weights = reward_functions(cfg, schema)
    model = load_training_model(cfg, model_ref, precision)
    group = t.grpo_generations
    args = GRPOConfig(
        output_dir=str(run_dir / "checkpoints"), num_train_epochs=t.epochs, max_steps=t.max_steps or -1,
        # a step's batch holds whole groups: batch_size prompts' worth of samples, rounded to the group size
        per_device_train_batch_size=max(group, t.batch_size // group * group), gradient_accumulation_steps=t.grad_accum,
        num_generations=group, max_completion_length=t.grpo_max_completion_tokens, reward_weights=weights,
        learning_rate=t.lr, lr_scheduler_type=t.lr_scheduler, warmup_steps=t.warmup_ratio,
        weight_decay=t.weight_decay, logging_steps=t.logging_steps, save_strategy="steps", save_steps=t.save_steps,
        save_total_limit=2, bf16=precision == "bf16", gradient_checkpointing=t.gradient_checkpointing, seed=t.seed,
        data_seed=t.seed, report_to="none", disable_tqdm=True, dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(), logging_nan_inf_filter=False)
    budget = TimeBudget(cfg.budget.max_train_minutes)
    trainer = _guarded(GRPOTrainer, run_dir)(
        model=model, reward_funcs=funcs, args=args, train_dataset=Dataset.from_list(prompt_rows(records, cfg)),
        processing_class=tok, peft_config=lora_config(cfg),
        callbacks=[RichProgress(f"Training {describe(cfg)} (GRPO)"), MetricsLog(run_dir / "metrics.jsonl"), budget])
    trainer.remove_callback(PrinterCallback)
    resume = latest_checkpoint(run_dir)
    began = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=resume)
    wall = time.perf_counter() - began

    kind = "model" if t.method == "full" else "adapter"
    out_dir, tmp = run_dir / kind, run_dir / f".{kind}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    rewards = [log["reward"] for log in trainer.state.log_history if "reward" in log]
    return {
        "method": t.method, "objective": "grpo", "precision": precision, "recipe": f"{describe(cfg)} (GRPO)",
        "steps": trainer.state.global_step, "epochs": trainer.state.epoch, "train_loss": out.training_loss,
        "wall_s": wall, "resumed_from": resume, "stopped_by_budget": budget.stopped, "prompts": len(records),
        "reward_first": rewards[0] if rewards else None, "reward_last": rewards[-1] if rewards else None,
        "rewards": [f.__name__ for f in funcs], "reward_weights": weights,
        "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "total_params": sum(p.numel() for p in trainer.model.parameters()),
        "tokens_per_s": None, "dora": t.dora, "rslora": t.rslora, kind: kind,
    }
