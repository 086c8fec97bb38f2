"""DPO on preference pairs, through TRL: config -> model -> adapter -> pairs -> train -> save -> record.

    result = train_dpo(cfg, model_ref, records, run_dir)   # records carry `rejected` (preference pairs)

The reference model is the base with the adapter switched off (TRL does this when given a PEFT config), so only
one copy of the weights is in memory. The loss guard, progress bar, metrics.jsonl, time budget and checkpoint
resume are the SFT recipe's (`make_trainer`, `run_training`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tunesmith.config import Config
from tunesmith.data.records import Record
from tunesmith.errors import Problem, TunesmithError
from tunesmith.eval.suite import with_system_prompt
from tunesmith.models import ModelRef, load_tokenizer, resolve_precision
from tunesmith.train import trainer as shared
from tunesmith.train.result import TrainResult


def pair_rows(records: list[Record], cfg: Config) -> list[dict[str, Any]]:
    """TRL's conversational preference rows: prompt (with the task's system prompt), chosen and rejected turns."""
    missing = [r for r in records if not r.rejected]
    if missing:
        raise TunesmithError(
            f"DPO needs preference pairs: {len(missing)} record(s) have no rejected reply",
            [
                Problem(
                    r.where,
                    "a conversation, not a pair",
                    "give prompt/chosen/rejected records, or use train.objective: sft",
                )
                for r in missing[:10]
            ],
        )
    rows = []
    for rec in records:
        last = rec.final_assistant_index()
        rows.append(
            {
                "prompt": with_system_prompt(rec.messages[:last], cfg.task),
                "chosen": rec.messages[last:],
                "rejected": rec.rejected,
            }
        )
    return rows


def train_dpo(cfg: Config, model_ref: ModelRef, records: list[Record], run_dir: Path) -> TrainResult:
    """Train a LoRA/QLoRA adapter with DPO on preference pairs; write `adapter/` and `metrics.jsonl`."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    t = cfg.train
    precision = resolve_precision(t.precision)
    tok = load_tokenizer(model_ref)
    rows = pair_rows(records, cfg)
    model = shared.load_training_model(cfg, model_ref, precision)
    args = DPOConfig(**shared.common_args(cfg, run_dir, precision), beta=t.dpo.beta, max_length=cfg.data.max_seq_len)
    trainer, budget = shared.make_trainer(
        DPOTrainer,
        cfg,
        run_dir,
        f"{shared.describe(cfg)} (DPO)",
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=shared.lora_config(cfg, model),
    )
    facts = shared.run_training(trainer, run_dir, budget)
    shared.save_trained(trainer, tok, run_dir, t.method)
    last = next((log for log in reversed(trainer.state.log_history) if "rewards/accuracies" in log), {})
    return TrainResult.from_json(
        {
            "method": t.method,
            "objective": "dpo",
            "precision": precision,
            "recipe": f"{shared.describe(cfg)} (DPO)",
            **facts,
            "pairs": len(rows),
            "reward_accuracy": last.get("rewards/accuracies"),
            "reward_margin": last.get("rewards/margins"),
            "tokens_per_s": None,
            "dora": t.lora.dora,
            "rslora": t.lora.rslora,
            "adapter": "adapter",
        }
    )
