"""GRPO with verifiable rewards, through TRL: config -> model -> adapter -> prompts -> sample, score, reinforce.

    result = train_grpo(cfg, model_ref, records, run_dir, schema)

Each training record is a prompt (everything before its final reply) and an expectation (that reply, parsed as the
task's eval does); `train.grpo.generations` replies are sampled per prompt and scored by `train.grpo.rewards` (the eval
harness's scorers, see `tunesmith.train.grpo_rewards`). The loss guard, progress bar, metrics.jsonl, time budget and
checkpoint resume are the SFT recipe's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tunesmith.config import Config
from tunesmith.data.records import Record
from tunesmith.eval.plan import reply_limit
from tunesmith.eval.suite import expected_from_reply, with_system_prompt
from tunesmith.models import ModelRef, load_tokenizer, resolve_precision
from tunesmith.train import trainer as shared
from tunesmith.train.grpo_rewards import reward_functions
from tunesmith.train.result import TrainResult


def prompt_rows(records: list[Record], cfg: Config) -> list[dict[str, Any]]:
    rows = []
    for rec in records:
        last = rec.final_assistant_index()
        prompt = rec.messages[:last] if last is not None else rec.messages
        expected = expected_from_reply(rec.reply, cfg.task) if last is not None else None
        rows.append({"prompt": with_system_prompt(prompt, cfg.task), "expected": json.dumps(expected)})
    return rows


def completion_limit(cfg: Config, records: list[Record], tok) -> int:
    """`train.grpo.max_completion_tokens`, or with `auto` the limit the evaluation derives from the same replies."""
    configured = cfg.train.grpo.max_completion_tokens
    if configured != "auto":
        return configured
    return reply_limit([r.reply for r in records if r.reply], tok, cfg.eval.max_new_tokens)


def train_grpo(
    cfg: Config, model_ref: ModelRef, records: list[Record], run_dir: Path, schema: dict | None = None
) -> TrainResult:
    """Train a LoRA/QLoRA adapter (or the full model) with GRPO; write `adapter/` (or `model/`), `metrics.jsonl`."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    t = cfg.train
    precision = resolve_precision(t.precision)
    tok = load_tokenizer(model_ref)
    funcs, weights = reward_functions(cfg, schema)
    model = shared.load_training_model(cfg, model_ref, precision)
    group = t.grpo.generations
    args = GRPOConfig(
        **{
            **shared.common_args(cfg, run_dir, precision),
            # a step's batch holds whole groups: batch_size prompts' worth of samples, rounded to the group size
            "per_device_train_batch_size": max(group, t.batch_size // group * group),
            "num_generations": group,
            "max_completion_length": completion_limit(cfg, records, tok),
            "reward_weights": weights,
        }
    )
    trainer, budget = shared.make_trainer(
        GRPOTrainer,
        cfg,
        run_dir,
        f"{shared.describe(cfg)} (GRPO)",
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=Dataset.from_list(prompt_rows(records, cfg)),
        processing_class=tok,
        peft_config=shared.lora_config(cfg, model),
    )
    facts = shared.run_training(trainer, run_dir, budget)
    kind = shared.save_trained(trainer, tok, run_dir, t.method)
    rewards = [log["reward"] for log in trainer.state.log_history if "reward" in log]
    return TrainResult.from_json(
        {
            "method": t.method,
            "objective": "grpo",
            "precision": precision,
            "recipe": f"{shared.describe(cfg)} (GRPO)",
            **facts,
            "prompts": len(records),
            "reward_first": rewards[0] if rewards else None,
            "reward_last": rewards[-1] if rewards else None,
            "rewards": [f.__name__ for f in funcs],
            "reward_weights": weights,
            "tokens_per_s": None,
            "dora": t.lora.dora,
            "rslora": t.lora.rslora,
            kind: kind,
        }
    )
