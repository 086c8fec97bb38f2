"""`tune:`: the budgeted recipe search, and `SEARCH_PARAMS`, what it may vary."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tunesmith.config.section import Section

SEARCH_PARAMS = (
    "lr",
    "epochs",
    "lora_r",
    "lora_alpha",
    "batch_size",
    "lora_dropout",
    "weight_decay",
    "general_share",
    "method",
    "warmup_ratio",
    "prompt_loss",
    "neftune_alpha",
    "loraplus_lr_ratio",
    "general_kl",
)


class TuneConfig(Section):
    budget_minutes: float = Field(
        30.0,
        gt=0,
        description="Wall time for the search's trials (`tunesmith tune --budget`); no trial starts "
        "when the time left is under half the trials' median so far, and a running trial stops at the budget.",
    )
    max_trials: int | None = Field(None, ge=1, description="At most this many trials (the budget decides otherwise).")
    params: list[Literal[SEARCH_PARAMS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["lr", "epochs", "lora_r", "lora_alpha"],
        description="What the search varies, each over the range in `ranges` (or its default there): lr (log "
        "scale), epochs, lora_r (train.lora.r), lora_alpha (train.lora.alpha, as a multiple of r), batch_size, "
        "lora_dropout (train.lora.dropout), weight_decay, general_share (a share of `train.general_data` mixed in "
        "against forgetting), method (lora or full), "
        "warmup_ratio, prompt_loss (train.prompt_loss: loss on the user turns too), neftune_alpha (NEFTune's "
        "embedding noise), loraplus_lr_ratio (LoRA+: the B matrices' learning rate as a multiple of lr), general_kl "
        "(the general rows trained towards the base's logits, at this weight; 0: towards its sampled replies).",
    )
    ranges: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="Ranges that replace the defaults: [low, high] for lr (log scale), epochs (whole passes), "
        "lora_dropout, weight_decay and warmup_ratio; a list of choices for the others, e.g. {lr: [1e-4, 3e-3], "
        "lora_r: [8, 16, 32, 64]} (lora_r: [8, 64] tries 8 and 64 only). Every value is checked before the search.",
    )
    pruner: Literal["hyperband", "successive_halving", "median", "none"] = Field(
        "hyperband",
        description="How a trial whose validation metric falls behind is stopped early (Optuna "
        "pruners, fed by the validation metric at every evaluation).",
    )
    storage: str | None = Field(
        None,
        description="Optuna storage URL, so several machines work on one study: `sqlite:///path.db`, "
        "`postgresql://…`, `mysql://…`, or `journal:///path.log` (a journal file, for a shared file system). "
        "Default: a SQLite file in the project's .tunesmith/tune/.",
    )
    seed: int = Field(42, description="Seed of the sampler (TPE).")
