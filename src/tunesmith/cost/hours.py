"""Training time and dollars on one GPU class, each GPU's row of the plan, and how times and dollars read
(`7B, QLoRA, RTX 4090, 2-4 h, $1.10-2.20`)."""

from __future__ import annotations

import math
from typing import Any

from tunesmith.cost.flops import FLOPS_PER_TOKEN, flops_per_token
from tunesmith.cost.gpus import Gpu
from tunesmith.cost.memory import METHOD_NAMES, Recipe, fit_on
from tunesmith.cost.shape import ModelShape

# The table's speeds assume a model big enough to keep the GPU busy; below this, launch overheads dominate and the
# estimate is optimistic (tunesmith's caution: `--probe` measures instead).
SMALL_MODEL_PARAMS = 1e9
# The guide's times span 2x (7B QLoRA on an RTX 4090: "2-4 hours"; 13B on an A100: "3-6 hours"): the slow end of
# every estimate is the fast end times this (data loading, padding, logging, checkpoints, weaker kernels).
TIME_SPREAD = 2.0


def train_hours(
    params: int, tokens: float, method: str, checkpointing: bool, gpu: Gpu, backward_share: float = 1.0
) -> tuple[float, float]:
    """(fast, slow) hours to train on `tokens` tokens (epochs included) with one GPU of this class (the backward
    pass through `backward_share` of the layers: `Recipe.backward_share`)."""
    flops = flops_per_token(method, checkpointing, backward_share)
    rate = gpu.tokens_per_s_per_b / (params / 1e9) * FLOPS_PER_TOKEN["full"] / flops
    fast = tokens / rate / 3600
    return fast, fast * TIME_SPREAD


def dollars(hours: tuple[float, float], hourly_usd: tuple[float, float] | None) -> tuple[float, float] | None:
    """(low, high) dollars: the fast time at the low price, the slow time at the high price."""
    if hourly_usd is None:
        return None
    return hours[0] * hourly_usd[0], hours[1] * hourly_usd[1]


def _short(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}".rstrip("0").rstrip(".")


def hours_text(hours: tuple[float, float]) -> str:
    """`2-4 h`, `20-40 min`, `<1 min`."""
    low, high = hours
    if high < 1 / 60:
        return "<1 min"
    if high < 1:
        lo, hi = max(1, round(low * 60)), max(1, round(high * 60))
        return f"{lo} min" if lo == hi else f"{lo}-{hi} min"
    lo, hi = _short(low), _short(high)
    return f"{lo} h" if lo == hi else f"{lo}-{hi} h"


def money(x: float) -> str:
    """Two decimals, or two significant digits below a cent: `1.10`, `0.0034`, `0.000052`."""
    if x == 0 or x >= 0.01:
        return f"{x:.2f}"
    if x < 1e-6:
        return "<0.000001"
    return f"{x:.{1 - math.floor(math.log10(x))}f}"


def usd_text(usd: tuple[float, float] | None) -> str:
    """`$1.10-2.20`, `$1.33`, or `price unknown`."""
    if usd is None:
        return "price unknown"
    lo, hi = money(usd[0]), money(usd[1])
    return f"${lo}" if lo == hi else f"${lo}-{hi}"


def format_line(size: str, method: str, gpu: str, hours: tuple[float, float], usd: tuple[float, float] | None) -> str:
    """The one-line answer: `7B, QLoRA, RTX 4090, 2-4 h, $1.10-2.20`."""
    return f"{size}, {METHOD_NAMES.get(method, method)}, {gpu}, {hours_text(hours)}, {usd_text(usd)}"


def trained_tokens(tokens_per_epoch: int, examples: int, recipe: Recipe) -> float:
    """Tokens the run trains on: epochs x the split's tokens, or max_steps' share of an epoch (it overrides)."""
    if recipe.max_steps:
        per_step = recipe.batch_size * recipe.grad_accum * recipe.nproc
        steps_per_epoch = max(1, math.ceil(examples / per_step))
        return tokens_per_epoch * recipe.max_steps / steps_per_epoch
    return tokens_per_epoch * epochs_of(recipe, examples)


def epochs_of(recipe: Recipe, examples: int | None) -> float:
    """The recipe's passes over `examples` records (`auto` resolved as training resolves it)."""
    from tunesmith.train.trainer import resolve_epochs

    return resolve_epochs(recipe.epochs, examples or None, recipe.labels)


def gpu_rows(shape: ModelShape, recipe: Recipe, tokens: float | None, table: dict[str, Gpu]) -> list[dict[str, Any]]:
    """One row per GPU class: does the recipe fit (and with what change), how long, how much, the one-liner."""
    rows = []
    for gpu in table.values():
        fit = fit_on(shape, recipe, gpu.memory_gib)
        row: dict[str, Any] = {
            "gpu": gpu.name,
            "memory_gib": gpu.memory_gib,
            "hourly_usd": gpu.hourly_usd,
            **fit.to_json(),
        }
        if tokens is not None and fit.fits:
            hours = train_hours(
                shape.params,
                tokens / recipe.nproc,
                recipe.method,
                fit.recipe.gradient_checkpointing,
                gpu,
                recipe.backward_share(shape.layers),
            )
            usd = dollars(hours, gpu.hourly_usd)
            usd = None if usd is None else (usd[0] * recipe.nproc, usd[1] * recipe.nproc)
            row.update(
                hours=list(hours),
                usd=None if usd is None else list(usd),
                line=format_line(shape.label, recipe.method, gpu.name, hours, usd),
            )
        rows.append(row)
    return rows
