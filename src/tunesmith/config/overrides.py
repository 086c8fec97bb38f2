"""Changing a config: `--set section.key=value` overrides, typed updates, and updates written as overrides."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from tunesmith.config.moved import moved_override, read_moved
from tunesmith.config.problems import problems_from
from tunesmith.config.root import Config
from tunesmith.errors import Problem, TunesmithError, warn


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` overrides (values parsed as YAML) to a raw config mapping. An old flat train key
    (`train.lora_r=8`) sets its new place (`train.lora.r`), with a warning."""
    problems = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            problems.append(Problem(f"--set {item}", "expected KEY=VALUE", "e.g. --set train.lr=1e-4"))
            continue
        node = raw
        parts = _moved_key(key.strip(), item).split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                problems.append(Problem(f"--set {item}", f"`{part}` is not a section"))
                break
            node = child
        else:
            node[parts[-1]] = _parse_scalar(value)
    if problems:
        raise TunesmithError("Bad --set override", problems)
    return raw


def _moved_key(key: str, item: str) -> str:
    """`key` at its new place, warning when it moved (`train.lora_r` -> `train.lora.r`)."""
    moved = moved_override(key)
    if moved != key:
        warn(f"--set {item}", f"deprecated: {key} is read as {moved}", f"write --set {moved}={item.partition('=')[2]}")
    return moved


def _parse_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_updates(cfg: Config, updates: dict[str, Any], source: str = "options") -> Config:
    """`cfg` with typed updates applied, validated as a whole: `apply_updates(cfg, {"train": {"lora": {"r": 8}}})`.
    An old flat train key among the updates (`{"train": {"lora_r": 8}}`) sets its new place, with a warning.

    What command-line flags use (a value keeps its Python type; nothing is parsed back from a string). For an API
    that takes `--set` strings only, `update_overrides` writes the same updates as strings that parse back exactly.
    """

    def merge(node: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
        for key, value in patch.items():
            node[key] = merge(dict(node.get(key) or {}), value) if isinstance(value, dict) else value
        return node

    if "train" in updates:
        updates = {**updates, "train": read_moved(updates["train"], f"{source}: train")}
    try:
        return Config.model_validate(merge(cfg.model_dump(mode="json"), updates))
    except ValidationError as err:
        problems = problems_from(err, source)
        raise TunesmithError(f"Bad config: {len(problems)} problem(s)", problems) from None


def update_overrides(updates: dict[str, Any], prefix: str = "") -> list[str]:
    """Typed updates as `section.key=value` overrides whose values parse back to the same type and value (each is
    JSON, which YAML reads exactly): {"train": {"lora": {"dora": True}, "method": "lora"}} -> ["train.lora.dora=true",
    'train.method="lora"']. For the APIs that take `--set` strings (`train_project`, `tune_project`)."""
    import json

    out: list[str] = []
    for key, value in updates.items():
        if isinstance(value, dict):
            out += update_overrides(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")
    return out
