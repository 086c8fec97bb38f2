"""Reward-model training from preference pairs (TRL's RewardTrainer): the RLHF path, for teams that need a learned
reward rather than a verifiable one.

    result = train_reward_model(cfg, model_ref, records, run_dir)   # writes run_dir/reward_model/

The base gets a one-output score head and learns score(prompt + chosen) > score(prompt + rejected). With LoRA the
adapter and the head are merged into `reward_model/` (safetensors, tokenizer), so GRPO can use it as a reward:

    train: {objective: grpo, rewards: [{type: reward_model, path: ../rm/.tunesmith/runs/<run>/reward_model}]}
"""

from __future__ import annotations

import os
from pathlib import Path

from tunesmith.config import Config
from tunesmith.data.records import Record
from tunesmith.errors import Problem, TunesmithError
from tunesmith.models import ModelRef, load_tokenizer, resolve_precision
from tunesmith.train.dpo import pair_rows
from tunesmith.train.result import TrainResult
from tunesmith.train.trainer import common_args, describe, lora_config, make_trainer, run_training, save_trained


def train_reward_model(cfg: Config, model_ref: ModelRef, records: list[Record], run_dir: Path) -> TrainResult:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    t = cfg.train
    precision = resolve_precision(t.precision)
    tok = load_tokenizer(model_ref)
    rows = pair_rows(records, cfg)
    _require_a_fitting_pair(tok, rows, cfg)
    model = _score_model(model_ref, tok)
    peft = lora_config(cfg, model, task_type="SEQ_CLS")
    args = RewardConfig(**common_args(cfg, run_dir, precision), max_length=cfg.data.max_seq_len)
    trainer, budget = make_trainer(
        RewardTrainer,
        cfg,
        run_dir,
        f"a reward model ({describe(cfg)})",
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=peft,
    )
    facts = run_training(trainer, run_dir, budget)
    # The adapter and the score head merged into one model, so GRPO loads it with transformers alone.
    final = trainer.model.merge_and_unload() if peft is not None else trainer.model
    save_trained(trainer, tok, run_dir, t.method, kind="reward_model", model=final)
    accuracy = next((log["accuracy"] for log in reversed(trainer.state.log_history) if "accuracy" in log), None)
    return TrainResult.from_json(
        {
            "method": t.method,
            "objective": "reward",
            "precision": precision,
            "recipe": f"reward model ({describe(cfg)})",
            **facts,
            "pairs": len(rows),
            "train_accuracy": accuracy,
            "tokens_per_s": None,
            "reward_model": "reward_model",
        }
    )


def _require_a_fitting_pair(tok, rows: list[dict], cfg: Config) -> None:
    """An error when no pair (either side, with the prompt) fits `data.max_seq_len`: TRL would drop every pair and
    fail with an empty sampler."""
    fits = [
        r
        for r in rows
        if max(
            len(
                tok(tok.apply_chat_template(r["prompt"] + r[side], tokenize=False), add_special_tokens=False)[
                    "input_ids"
                ]
            )
            for side in ("chosen", "rejected")
        )
        <= cfg.data.max_seq_len
    ]
    if not fits:  # TRL would drop every pair and fail with an empty sampler
        raise TunesmithError(
            "No preference pair fits data.max_seq_len",
            [
                Problem(
                    f"data.max_seq_len: {cfg.data.max_seq_len}",
                    f"all {len(rows)} pairs are longer",
                    "raise data.max_seq_len",
                )
            ],
        )


def _score_model(model_ref: ModelRef, tok):
    """The base model with a one-label score head (fp32), its pad token the tokenizer's."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        model_ref.path,
        num_labels=1,
        dtype=torch.float32,
        use_safetensors=True,
        trust_remote_code=model_ref.trust_remote_code,
    )
    model.config.pad_token_id = tok.pad_token_id
    return model


class RewardModelScorer:
    """A trained reward model as a GRPO reward: the score of prompt + reply under the model's chat template."""

    def __init__(self, path: str | Path) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            path, dtype=torch.float32, use_safetensors=True
        ).eval()

    def __call__(self, prompts: list[list[dict]], replies: list[str]) -> list[float]:
        import torch

        texts = [
            self.tok.apply_chat_template(p + [{"role": "assistant", "content": r}], tokenize=False)
            for p, r in zip(prompts, replies)
        ]
        enc = self.tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            return self.model(**enc).logits[:, 0].float().tolist()
