"""Reward-model training from preference pairs (TRL's RewardTrainer): the RLHF path, for teams that need a learned
reward rather than a verifiable one.

    result = train_reward_model(cfg, model_ref, records, run_dir)   # writes run_dir/reward_model/

The base gets a one-output score head and learns score(prompt + chosen) > score(prompt + rejected). With LoRA the
adapter and the head are merged into `reward_model/` (safetensors, tokenizer), so GRPO can use it as a reward:

    train: {objective: grpo, rewards: [{type: reward_model, path: ../rm/.tunesmith/runs/<run>/reward_model}]}
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from tunesmith.config import Config
from tunesmith.data.records import Record
from tunesmith.models import ModelRef, load_tokenizer, resolve_precision
from tunesmith.train.dpo import pair_rows
from tunesmith.train.sft import _guarded, common_args, describe, latest_checkpoint


def train_reward_model(cfg: Config, model_ref: ModelRef, records: list[Record], run_dir: Path) -> dict[str, Any]:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import shutil

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForSequenceClassification
    from transformers.trainer_callback import PrinterCallback
    from trl import RewardConfig, RewardTrainer

    from tunesmith.train.progress import MetricsLog, RichProgress, TimeBudget

    t = cfg.train
    precision = resolve_precision(t.precision)
    tok = load_tokenizer(model_ref)
    rows = pair_rows(records, cfg)
    fits = [r for r in rows if max(len(tok(tok.apply_chat_template(r["prompt"] + r[side], tokenize=False),
                                           add_special_tokens=False)["input_ids"])
                                   for side in ("chosen", "rejected")) <= cfg.data.max_seq_len]
    if not fits:  # TRL would drop every pair and fail with an empty sampler
        from tunesmith.errors import Problem, TunesmithError

        raise TunesmithError("No preference pair fits data.max_seq_len", [Problem(
            f"data.max_seq_len: {cfg.data.max_seq_len}", f"all {len(rows)} pairs are longer",
            "raise data.max_seq_len")])
    model = AutoModelForSequenceClassification.from_pretrained(
        model_ref.path, num_labels=1, dtype=torch.float32, use_safetensors=True,
        trust_remote_code=model_ref.trust_remote_code)
    model.config.pad_token_id = tok.pad_token_id
    peft = None if t.method == "full" else LoraConfig(
        r=t.lora_r, lora_alpha=t.lora_alpha, lora_dropout=t.lora_dropout, target_modules=t.target_modules,
        task_type="SEQ_CLS", use_dora=t.dora, use_rslora=t.rslora)  # SEQ_CLS also trains the new score head
    args = RewardConfig(**common_args(cfg, run_dir, precision), max_length=cfg.data.max_seq_len)
    budget = TimeBudget(cfg.budget.max_train_minutes)
    trainer = _guarded(RewardTrainer, run_dir)(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok, peft_config=peft,
        callbacks=[RichProgress(f"Training a reward model ({describe(cfg)})"), MetricsLog(run_dir / "metrics.jsonl"),
                   budget])
    trainer.remove_callback(PrinterCallback)
    resume = latest_checkpoint(run_dir)
    began = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=resume)
    wall = time.perf_counter() - began
    if trainer.is_world_process_zero():
        final = trainer.model.merge_and_unload() if peft is not None else trainer.model
        out_dir, tmp = run_dir / "reward_model", run_dir / ".reward_model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        final.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        shutil.rmtree(out_dir, ignore_errors=True)
        os.replace(tmp, out_dir)
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    accuracy = next((log["accuracy"] for log in reversed(trainer.state.log_history) if "accuracy" in log), None)
    return {"method": t.method, "objective": "reward", "precision": precision,
            "recipe": f"reward model ({describe(cfg)})", "steps": trainer.state.global_step,
            "epochs": trainer.state.epoch, "train_loss": out.training_loss, "wall_s": wall, "resumed_from": resume,
            "stopped_by_budget": budget.stopped, "pairs": len(rows), "train_accuracy": accuracy,
            "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
            "total_params": sum(p.numel() for p in trainer.model.parameters()), "tokens_per_s": None,
            "reward_model": "reward_model"}


class RewardModelScorer:
    """A trained reward model as a GRPO reward: the score of prompt + reply under the model's chat template."""

    def __init__(self, path: str | Path) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32,
                                                                        use_safetensors=True).eval()

    def __call__(self, prompts: list[list[dict]], replies: list[str]) -> list[float]:
        import torch

        texts = [self.tok.apply_chat_template(p + [{"role": "assistant", "content": r}], tokenize=False)
                 for p, r in zip(prompts, replies)]
        enc = self.tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            return self.model(**enc).logits[:, 0].float().tolist()
