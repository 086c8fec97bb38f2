"""Keys that moved: `train`'s flat LoRA, DPO and GRPO keys now live in the sub-sections `train.lora`, `train.dpo` and
`train.grpo`. An old key is still read, at its new place, with one warning naming both (never dropped); the old and
the new key set to different values is an error.

    nest_moved({"lora_r": 8}, "tunesmith.yaml: train")    # {"lora": {"r": 8}}, warns `train.lora_r` moved
    moved_override("train.lora_r")                          # "train.lora.r" (a --set key)
    flat_train(run_config["train"])                         # either layout, flat: old runs' config.yaml and new

The flat layout is also what a train run's cache key hashes, so the same recipe keeps its key.
"""

from __future__ import annotations

import copy
from typing import Any

from tunesmith.errors import Problem, TunesmithError, warn

# old flat key in `train:` -> (sub-section, key there)
MOVED: dict[str, tuple[str, str]] = {
    "lora_r": ("lora", "r"),
    "lora_alpha": ("lora", "alpha"),
    "lora_dropout": ("lora", "dropout"),
    "dora": ("lora", "dora"),
    "rslora": ("lora", "rslora"),
    "target_modules": ("lora", "target_modules"),
    "dpo_beta": ("dpo", "beta"),
    "grpo_generations": ("grpo", "generations"),
    "grpo_max_completion_tokens": ("grpo", "max_completion_tokens"),
    "rewards": ("grpo", "rewards"),
}
_UNSET = object()


class MovedKeyConflict(ValueError):
    """An old flat key and its new place set to different values."""

    def __init__(self, old: str, message: str) -> None:
        super().__init__(message)
        self.old = old


def new_key(old: str) -> str:
    """`lora_r` -> `lora.r`: where an old flat key of `train` lives now."""
    section, key = MOVED[old]
    return f"{section}.{key}"


def nest_moved(train: Any, where: str = "train", quiet: bool = False) -> Any:
    """A raw `train` mapping with each old flat key moved into its sub-section (a copy; anything that is not a
    mapping is returned as it is, for validation to report). Each move warns once, naming `where` and both keys,
    unless `quiet` (a dump tunesmith wrote itself); a `MovedKeyConflict` (a ValueError, which validation reports)
    when the old and the new key disagree."""
    if not isinstance(train, dict) or not MOVED.keys() & train.keys():
        return train
    out = copy.deepcopy(train)
    for old in [k for k in out if k in MOVED]:
        section, key = MOVED[old]
        sub = out.setdefault(section, {})
        if not isinstance(sub, dict):
            continue  # `lora: 5`: validation says what is wrong with it; the old key stays and is reported too
        value = out.pop(old)
        present = sub.get(key, _UNSET)
        if present is not _UNSET and present != value:
            raise MovedKeyConflict(
                old,
                f"`{old}: {value!r}` and `{section}: {{{key}: {present!r}}}` disagree: {old} is the old name of "
                f"{section}.{key}; keep only {section}.{key}",
            )
        sub[key] = value
        if not quiet:
            warn(
                f"{where}.{old}",
                f"deprecated: read as train.{section}.{key}",
                f"write it as `{section}: {{{key}: {_yaml(value)}}}` under `train:`",
            )
    return out


def read_moved(train: Any, where: str) -> Any:
    """`nest_moved` for input a person wrote (a file, typed updates): the old and new key disagreeing is a
    `TunesmithError` naming `where`."""
    try:
        return nest_moved(train, where)
    except MovedKeyConflict as exc:
        raise TunesmithError("Bad config: 1 problem(s)", [Problem(f"{where}.{exc.old}", str(exc))]) from None


def moved_override(key: str) -> str:
    """A `--set` key with an old flat train key at its new place (`train.lora_r` -> `train.lora.r`); others as
    they are."""
    parts = key.split(".")
    if len(parts) == 2 and parts[0] == "train" and parts[1] in MOVED:
        return f"train.{new_key(parts[1])}"
    return key


def flat_train(train: dict[str, Any]) -> dict[str, Any]:
    """A dumped `train` section in the flat layout of before the sub-sections, whichever layout it is in: what a
    train run's cache key hashes (the same recipe, the same key) and what reads old and new runs' config.yaml."""
    out = {k: v for k, v in train.items() if k not in ("lora", "dpo", "grpo")}
    nested = {name: dict(train[name]) for name in ("lora", "dpo", "grpo") if isinstance(train.get(name), dict)}
    for old, (section, key) in MOVED.items():
        if key in nested.get(section, {}):
            out[old] = nested[section].pop(key)
    # keys added to a sub-section later, unless unset (so a recipe that leaves them unset keeps its cache key)
    later = {name: {k: v for k, v in rest.items() if v is not None} for name, rest in nested.items()}
    out.update({name: rest for name, rest in later.items() if rest})
    return out


def _yaml(value: Any) -> str:
    import json

    return json.dumps(value, default=str) if not isinstance(value, str) else value
