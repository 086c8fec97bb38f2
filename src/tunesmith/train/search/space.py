"""The search space: the parameters a trial may vary, their default ranges, what Optuna suggests for a trial, and
how a trial's parameters (or the project's own recipe) map to and from the project's config.

A parameter is named as its train field in the flat layout (`tunesmith.config.flat_train`): `lr`, `epochs`, and
`lora_r`, `lora_alpha`, `lora_dropout` for `train.lora.r`, `.alpha`, `.dropout` (the names the studies were made
with)."""

from __future__ import annotations

from typing import Any

from tunesmith.config import SEARCH_PARAMS, Config, flat_train, nest_moved
from tunesmith.errors import Problem, TunesmithError
from tunesmith.train.trainer import resolve_epochs

# Default ranges: [low, high] (numbers; lr on a log scale) or a list of choices.
DEFAULT_RANGES: dict[str, list[Any]] = {
    "lr": [1e-4, 3e-3],
    "epochs": [1, 10],
    "lora_r": [8, 16, 32, 64],
    "lora_alpha": [1, 2, 4],  # multiples of r
    "batch_size": [4, 8, 16],
    "lora_dropout": [0.0, 0.1],
    "weight_decay": [0.0, 0.1],
    "general_share": [0.0, 0.1, 0.2],
    "method": ["lora", "full"],
    "warmup_ratio": [0.0, 0.1],
    "prompt_loss": [False, True],
    "neftune_alpha": [0.0, 5.0, 10.0],  # choices: the paper's 5, and off
    "loraplus_lr_ratio": [None, 4.0, 16.0],  # choices: plain LoRA, and LoRA+ up to the paper's 16
    "general_kl": [0.0, 1.0, 3.0],  # choices: cross-entropy on the sampled replies, less, the starter's 3
}


FULL_LR_SCALE = 0.1  # a full fine-tune's learning rate: a tenth of the LoRA range


LOG_SCALE = {"lr"}


def search_space(cfg: Config) -> dict[str, list[Any]]:
    """{param: range} for `tune.params`, with `tune.ranges` replacing defaults; bad ranges name the valid form."""
    problems = []
    for name in cfg.tune.ranges:
        if name not in SEARCH_PARAMS:
            problems.append(
                Problem(f"tune.ranges.{name}", "not a search parameter", f"valid: {', '.join(SEARCH_PARAMS)}")
            )
    space = {}
    for name in cfg.tune.params:
        rng = [_number(x) for x in cfg.tune.ranges.get(name, DEFAULT_RANGES[name])]
        if len(rng) < 2:
            problems.append(
                Problem(
                    f"tune.ranges.{name}",
                    "needs [low, high] or two or more choices",
                    f"default: {DEFAULT_RANGES[name]}",
                )
            )
        space[name] = rng
    for name in ("general_share", "general_kl"):
        if name in space and not cfg.train.general_data:
            problems.append(
                Problem(
                    f"tune.params: {name}",
                    "no general data to mix in",
                    "set train.general_data (e.g. the base model's own replies to general prompts, "
                    f"`tunesmith data distill`), or drop {name}",
                )
            )
    problems += [] if problems else _unusable_values(cfg, space)
    if problems:
        raise TunesmithError("Bad search space", problems)
    return space


def _unusable_values(cfg: Config, space: dict[str, list[Any]]) -> list[Problem]:
    """Each choice, and each end of a range, applied to the project's config and checked as the config is, so a
    value no trial could train with is named before the search starts (not a traceback in its middle)."""
    from pydantic import ValidationError

    problems = []
    for name, rng in space.items():
        where, default = f"tune.ranges.{name}", f"default: {DEFAULT_RANGES[name]}"
        values = rng
        if _is_range(name, rng):
            low, high = rng
            if low > high:
                problems.append(Problem(where, f"low {low} is above high {high}", "give [low, high]"))
            if name == "lr" and low <= 0:
                problems.append(
                    Problem(where, f"low {low}: a learning rate is above 0 (searched on a log scale)", default)
                )
                continue
            values = [int(low), int(high)] if name == "epochs" else [low, high]  # epochs: whole passes
        for value in values:
            try:
                apply_params(cfg, {name: value})
            except ValidationError as exc:
                error = exc.errors()[0]
                reason = str(error.get("ctx", {}).get("error") or error["msg"])
                problems.append(Problem(where, f"{value!r}: {reason}", default))
    return problems


def _number(value: Any) -> Any:
    """A number written as text (YAML reads `1e-4` as a string) as the number; anything else as it is."""
    if not isinstance(value, str):
        return value
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number


def _is_range(name: str, rng: list[Any]) -> bool:
    """A numeric [low, high] range (as opposed to a list of choices)."""
    return (
        len(rng) == 2
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in rng)
        and name in ("lr", "epochs", "lora_dropout", "weight_decay", "warmup_ratio")
    )


def suggest(trial, space: dict[str, list[Any]]) -> dict[str, Any]:
    """The trial's parameters from the space (lr on a log scale; epochs as whole passes)."""
    params: dict[str, Any] = {}
    for name, rng in space.items():
        if not _is_range(name, rng):
            params[name] = trial.suggest_categorical(name, rng)
        elif name == "epochs":
            params[name] = trial.suggest_int(name, int(rng[0]), int(rng[1]))
        else:
            params[name] = trial.suggest_float(name, float(rng[0]), float(rng[1]), log=name in LOG_SCALE)
    return params


def apply_params(cfg: Config, params: dict[str, Any]) -> Config:
    """The config with a trial's parameters in `train` (alpha given as a multiple of r; a full fine-tune's
    learning rate a tenth of LoRA's, also where the trial changes the method and not the rate), checked as the
    whole config is (a pydantic ValidationError when a combination cannot train)."""
    train = flat_train(cfg.train.model_dump())
    for name, value in params.items():
        train[name] = value
    if "lora_alpha" in params:
        train["lora_alpha"] = int(params["lora_alpha"] * train["lora_r"])
    if "lr" in params or train["method"] != cfg.train.method:
        lora_lr = params.get("lr", cfg.train.lr / (FULL_LR_SCALE if cfg.train.method == "full" else 1))
        train["lr"] = lora_lr * (FULL_LR_SCALE if train["method"] == "full" else 1)
    if train["method"] == "full":
        train["dora"] = train["rslora"] = False
        train["loraplus_lr_ratio"] = None
    return type(cfg).model_validate({**cfg.model_dump(), "train": nest_moved(train, quiet=True)})


def default_params(
    cfg: Config, space: dict[str, list[Any]], n_train: int, n_labels: int | None = None
) -> dict[str, Any]:
    """The project's own recipe in the space's terms (the first trial: what the search must beat); a choice the
    space lacks is replaced by the nearest one."""
    t = cfg.train
    values = {
        "lr": t.lr,
        "epochs": int(round(resolve_epochs(t.epochs, n_train, n_labels))),
        "lora_r": t.lora.r,
        "lora_alpha": t.lora.alpha / t.lora.r,
        "batch_size": t.batch_size,
        "lora_dropout": t.lora.dropout,
        "weight_decay": t.weight_decay,
        "general_share": t.general_share,
        "method": t.method,
        "warmup_ratio": t.warmup_ratio,
        "prompt_loss": t.prompt_loss,
        "neftune_alpha": t.neftune_alpha,
        "loraplus_lr_ratio": t.loraplus_lr_ratio,
        "general_kl": t.general_kl,
    }
    if t.method == "full":
        values["lr"] = t.lr / FULL_LR_SCALE
    out = {}
    for name, rng in space.items():
        value = values[name]
        if _is_range(name, rng):
            out[name] = min(max(value, rng[0]), rng[1])
        else:
            out[name] = value if value in rng else min(rng, key=lambda c: _distance(c, value))
    return out


def _distance(choice: Any, value: Any) -> float:
    try:
        return abs(float(choice) - float(value))
    except (TypeError, ValueError):
        return 0.0 if choice == value else 1.0
