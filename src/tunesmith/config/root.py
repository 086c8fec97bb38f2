"""`Config`: the whole `tunesmith.yaml`, its checks across sections, and its JSON Schema."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from tunesmith.config.budget import BudgetConfig
from tunesmith.config.data import DataConfig
from tunesmith.config.eval import EvalConfig
from tunesmith.config.export import ExportConfig
from tunesmith.config.section import Section
from tunesmith.config.task import ModelConfig, TaskConfig
from tunesmith.config.train import TrainConfig
from tunesmith.config.tune import TuneConfig
from tunesmith.scorer_specs import needs_judge, scorer_problem


class Config(Section):
    """A tunesmith project: `tunesmith.yaml`."""

    model: ModelConfig = Field(default_factory=ModelConfig, description="The base model.")
    task: TaskConfig = Field(default_factory=TaskConfig, description="What the model must do.")
    data: DataConfig = Field(default_factory=DataConfig, description="Where the examples are and how to split them.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="How base and tuned are compared.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="How the model is trained.")
    export: ExportConfig = Field(default_factory=ExportConfig, description="What is written after training.")
    tune: TuneConfig = Field(
        default_factory=TuneConfig, description="The budgeted recipe search (`tunesmith tune`, `tunesmith run --tune`)."
    )
    budget: BudgetConfig = Field(default_factory=BudgetConfig, description="Prices and limits.")

    @field_validator("train")
    @classmethod
    def _adapter_options_need_an_adapter(cls, train: TrainConfig) -> TrainConfig:
        lora_only = [
            name
            for name, on in (
                ("lora.dora", train.lora.dora),
                ("lora.rslora", train.lora.rslora),
                ("loraplus_lr_ratio", train.loraplus_lr_ratio),
            )
            if on
        ]
        if lora_only and train.method == "full":
            raise ValueError(f"{' and '.join(lora_only)} apply to a LoRA adapter; method: full has none")
        for i, spec in enumerate(train.grpo.rewards):
            if spec.get("type") == "reward_model":
                if not spec.get("path"):
                    raise ValueError(f"grpo.rewards[{i}]: a reward_model reward needs `path` (its reward_model/ dir)")
                continue
            problem = scorer_problem({k: v for k, v in spec.items() if k != "weight"})
            if problem:
                raise ValueError(f"grpo.rewards[{i}]: {problem[0]}")
        if train.method == "full" and train.objective == "dpo":
            raise ValueError("DPO here uses the base with the adapter switched off as its reference: use lora or qlora")
        sft_only = [
            name for name, on in (("prompt_loss", train.prompt_loss), ("neftune_alpha", train.neftune_alpha)) if on
        ]
        if sft_only and train.objective != "sft":
            raise ValueError(f"{' and '.join(sft_only)} apply to SFT only (objective: sft), not to {train.objective}")
        return train

    @model_validator(mode="after")
    def _model_graders_need_a_judge(self) -> Config:
        if self.eval.judge is None:
            specs = [("train.grpo.rewards", self.train.grpo.rewards), ("task.scorers", self.task.scorers)]
            for where, i, spec in ((w, i, s) for w, given in specs for i, s in enumerate(given or [])):
                if needs_judge(spec):
                    raise ValueError(
                        f"{where}[{i}]: {spec['type']} asks a judge model: set eval.judge "
                        "(an OpenAI-compatible endpoint: base_url, model)"
                    )
        return self

    @field_validator("task")
    @classmethod
    def _match_fields_need_json(cls, task: TaskConfig) -> TaskConfig:
        if task.match_fields and task.type != "json":
            raise ValueError("match_fields only applies to task.type: json")
        for i, spec in enumerate(task.scorers or []):
            problem = scorer_problem(spec)
            if problem:
                raise ValueError(f"scorers[{i}]: {problem[0]}" + (f" ({problem[1]})" if problem[1] else ""))
        return task


def config_schema() -> dict[str, Any]:
    """JSON Schema of tunesmith.yaml."""
    return Config.model_json_schema()
