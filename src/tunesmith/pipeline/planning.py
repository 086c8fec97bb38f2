"""`tunesmith cost`: the cost report of a project (or of a model size with no project), composed from
`tunesmith.cost`'s estimates and, for a project, its checked and split training data (`project_tokens`) and a probe
of real training steps."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tunesmith.config import apply_updates, load_config
from tunesmith.cost import (
    FLOPS_PER_TOKEN,
    SMALL_MODEL_PARAMS,
    Gpu,
    ModelShape,
    ProjectTokens,
    Recipe,
    epochs_of,
    estimate_memory,
    eval_costs,
    extrapolate,
    find_gpu,
    gpu_rows,
    gpus,
    measure,
    model_shape,
    named_shape,
    trained_tokens,
)
from tunesmith.errors import Problem, TunesmithError
from tunesmith.models import resolve_model
from tunesmith.pipeline.commands import project_tokens

# a plan's settings that live elsewhere than `train.<name>`: their place in the config
PLAN_FIELDS = {"seq_len": ("data", "max_seq_len"), "lora_r": ("train", "lora", "r")}


@dataclass(frozen=True)
class TokenCount:
    """The tokens a plan trains on, as given: tokens per epoch, or examples x mean tokens per example (which wins
    over `tokens`). Nothing given: a project's training split is counted."""

    tokens: int | None = None
    examples: int | None = None
    tokens_per_example: int | None = None

    def per_epoch(self) -> int | None:
        """Tokens per epoch as given, None when nothing is (a TunesmithError when only half a count is)."""
        if self.examples is not None and self.tokens_per_example is not None:
            return self.examples * self.tokens_per_example
        if (self.examples is None) != (self.tokens_per_example is None) and self.tokens is None:
            raise TunesmithError(
                "Incomplete token count", [Problem("--examples / --tokens-per-example", "pass both (or --tokens)")]
            )
        return self.tokens


@dataclass(frozen=True)
class Pricing:
    """Where a plan's dollars come from: the GPU classes to show (names or parts of names; empty: the whole table),
    a price file merged over the table, and this machine's hourly price (default: the project's budget.hourly_usd)."""

    gpu: tuple[str, ...] = ()
    prices: Path | None = None
    hourly: float | None = None


def cost_report(
    project: Path | None = None,
    model_size: str | None = None,
    model: str | None = None,
    settings: dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    count: TokenCount = TokenCount(),
    pricing: Pricing = Pricing(),
    probe_steps: int | None = None,
) -> dict[str, Any]:
    """Everything `tunesmith cost` prints. `settings`: Recipe fields (method, seq_len, batch_size, grad_accum,
    lora_r, epochs, gradient_checkpointing) that replace the project's (or the defaults); None values are left.
    `probe_steps`: time that many real training steps of the project here (None: no probe)."""
    settings = {k: v for k, v in (settings or {}).items() if v is not None}
    table = _gpu_table(pricing)
    if probe_steps is not None and project is None:
        raise TunesmithError(
            "--probe needs a project",
            [Problem("--probe", "it trains the project's recipe on its data", "pass a project directory")],
        )
    cfg, root, recipe = plan_recipe(project, settings, overrides or [])
    shape = _plan_shape(cfg, model_size, model)
    tokens, examples = count.per_epoch(), count.examples
    counted, notes = None, []
    if cfg is not None and (tokens is None or probe_steps is not None):
        counted = _count(cfg, root, recipe)
        recipe = replace(recipe, labels=counted.labels)  # `epochs: auto` counts a label task's examples per label
        if tokens is None:
            tokens, examples = counted.tokens_per_epoch, counted.examples
            notes += counted.notes
            if model_size or model:
                notes.append(f"tokens counted with {cfg.model.base}'s tokenizer")
    notes += _size_notes(shape)
    trained = _trained(tokens, examples, recipe)
    report = _estimates(shape, recipe, table, {"examples": examples, "per_epoch": tokens, "trained": trained}, notes)
    hourly = pricing.hourly if pricing.hourly is not None else (cfg.budget.hourly_usd if cfg is not None else None)
    if probe_steps is not None:
        report["probe"] = _probe(cfg, counted, recipe, trained, hourly, probe_steps)
        notes += _probe_notes(cfg, recipe, model_size or model)
    if root is not None:
        spent = eval_costs(root, hourly)
        if spent["evaluations"] or spent["train_cost_usd"] is not None:
            report["success_cost"] = spent
    return report


def _gpu_table(pricing: Pricing) -> dict[str, Gpu]:
    """The GPU table (with the price file merged over it), only the GPUs asked for when some are."""
    table = gpus(pricing.prices)
    if pricing.gpu:
        table = {g.name: g for g in (find_gpu(table, name) for name in pricing.gpu)}
    return table


def _size_notes(shape: ModelShape) -> list[str]:
    if shape.params < SMALL_MODEL_PARAMS:
        return [
            f"below {SMALL_MODEL_PARAMS / 1e9:g}B parameters the table's speeds are optimistic (a small "
            "model does not keep a GPU busy): --probe measures"
        ]
    return []


def _trained(tokens: int | None, examples: int | None, recipe: Recipe) -> float | None:
    """Tokens the run trains on (epochs or max_steps applied), None when the count is unknown."""
    if tokens is None:
        return None
    return trained_tokens(tokens, examples, recipe) if examples else tokens * epochs_of(recipe, None)


def _estimates(
    shape: ModelShape, recipe: Recipe, table: dict[str, Gpu], tokens: dict[str, Any], notes: list[str]
) -> dict[str, Any]:
    """The estimates of the report: the model, the recipe, the tokens, memory per method and each GPU's row."""
    return {
        "model": {
            "name": shape.name,
            "size": shape.label,
            "params": shape.params,
            "layers": shape.layers,
            "hidden": shape.hidden,
            "vocab": shape.vocab,
        },
        "recipe": asdict(recipe),
        "tokens": tokens,
        "memory": {m: estimate_memory(shape, recipe, m).to_json() for m in ("full", "lora", "qlora")},
        "gpus": gpu_rows(shape, recipe, tokens["trained"], table),
        "notes": notes,
    }


def plan_recipe(project: Path | None, settings: dict[str, Any], overrides: list[str]):
    """(config, project dir, recipe): a project's, with `settings` applied to its config as typed updates (so a
    probe trains exactly what is planned), or tunesmith's defaults with `settings`."""
    if project is not None:
        updates: dict[str, Any] = {}
        for key, value in settings.items():
            *path, name = PLAN_FIELDS.get(key, ("train", key))
            node = updates
            for part in path:
                node = node.setdefault(part, {})
            node[name] = value
        cfg, root = load_config(project, overrides)
        cfg = apply_updates(cfg, updates)
        return cfg, root, Recipe.from_config(cfg)
    recipe = replace(Recipe(), **settings)
    if recipe.method not in FLOPS_PER_TOKEN:
        raise TunesmithError("Unknown method", [Problem(f"--method {recipe.method}", "not lora, qlora or full")])
    return None, None, recipe


def _plan_shape(cfg, model_size: str | None, model: str | None) -> ModelShape:
    if model_size:
        return named_shape(model_size)
    if model:
        return model_shape(model)
    if cfg is not None:
        return model_shape(cfg.model.base, cfg.model.trust_remote_code)
    raise TunesmithError(
        "Nothing to size",
        [Problem("cost", "no project, --model-size or --model", "e.g. tunesmith cost --model-size 7B --method qlora")],
    )


def _count(cfg, root, recipe: Recipe) -> ProjectTokens:
    """The project's training split, tokenized (its model resolved once for the count and the probe)."""
    return project_tokens(cfg, root, resolve_model(cfg.model.base, cfg.model.trust_remote_code), recipe)


def _probe(
    cfg, counted: ProjectTokens, recipe: Recipe, trained: float | None, hourly_usd: float | None, steps: int
) -> dict[str, Any]:
    """Real training steps of the project's recipe here, extrapolated to the tokens trained."""
    measured = measure(cfg, counted.model_ref, counted.records, steps)
    measured.update(
        extrapolate(measured, trained, recipe.nproc, hourly_usd),
        trained_tokens=trained,
        hourly_usd=hourly_usd,
        estimated_gib=estimate_memory(model_shape(cfg.model.base, cfg.model.trust_remote_code), recipe).total,
    )
    return measured


def _probe_notes(cfg, recipe: Recipe, other_model: str | None) -> list[str]:
    notes = []
    if cfg.train.objective != "sft":
        notes.append(f"the probe times the SFT recipe; {cfg.train.objective} steps cost more")
    if recipe.nproc > 1:
        notes.append(f"the probe runs one process; the time assumes {recipe.nproc} scale linearly")
    if other_model:
        notes.append(f"the probe trains the project's model ({cfg.model.base}), not {other_model}")
    return notes
