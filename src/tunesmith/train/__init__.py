"""Training recipes, one file per objective, each readable top to bottom; `run_recipe` picks the one a config asks
for (the train stage and every process of a multi-process run call it). Each returns a `TrainResult`
(`tunesmith.train.result`), which the train stage writes as the run's result.json."""

from __future__ import annotations

from pathlib import Path

from tunesmith.train.result import TrainResult

__all__ = ["TrainResult", "run_recipe"]


def run_recipe(
    cfg, model_ref, records: list, run_dir: Path, schema: dict | None = None, validation=None
) -> TrainResult:
    """Train with `train.objective`'s recipe; `schema` feeds GRPO's default rewards; `validation` (a
    `tunesmith.train.selection.ValidationPlan`) chooses SFT's checkpoint and when it stops."""
    objective = cfg.train.objective
    if objective == "reward":
        from tunesmith.train.reward_model import train_reward_model

        return train_reward_model(cfg, model_ref, records, run_dir)
    if objective == "dpo":
        from tunesmith.train.dpo import train_dpo

        return train_dpo(cfg, model_ref, records, run_dir)
    if objective == "grpo":
        from tunesmith.train.grpo import train_grpo

        return train_grpo(cfg, model_ref, records, run_dir, schema)
    from tunesmith.train.sft import train_sft

    return train_sft(cfg, model_ref, records, run_dir, validation)
