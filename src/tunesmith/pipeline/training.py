"""Stage 3, training: the train stage (the objective's recipe on the split's training records plus general data),
the `general-self` stage that makes `builtin:self` general data, the budgeted recipe search, and the helpers they
share (the validation plan that chooses SFT's checkpoint, the model a train run produced).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from tunesmith import runs
from tunesmith.config import Config, flat_train
from tunesmith.data.distill import SELF
from tunesmith.data.project import (
    general_files,
    general_shortfall,
    general_wanted,
    mix_general,
    oversample,
    oversample_factors,
    read_records,
    validation_records,
)
from tunesmith.files import atomic_write_jsonl, file_sha256
from tunesmith.pipeline.machinery import Pipeline, Stage, console, sections
from tunesmith.train.kinds import general_kl_skipped, spreads_general
from tunesmith.train.result import TrainResult

# Train fields added after runs were cached, keyed only when set away from their default, so a recipe that leaves
# them alone keeps its key. shared_prefix: off, batches of MIN_ROWS+ are not grouped by system prompt (other batches).
# `oversample` is keyed as what it resolves to on the split (the train inputs' `oversample`), never as written.
KEYED_WHEN_CHANGED = {
    "shared_prefix": True,
    "prompt_loss": False,
    "neftune_alpha": 0.0,
    "loraplus_lr_ratio": None,
    "general_kl": 0.0,
}


def train_settings(cfg: Config, flat: bool = False) -> dict[str, Any]:
    """What a train run's cache key covers of the config: the recipe, the task, and how its checkpoint is chosen
    (the validation decoding). `flat`: the train section in the flat layout of before its sub-sections, which the
    key hashes so the same recipe keeps its key (config.yaml holds the section as it is now)."""
    dumped = sections(cfg, "train", "task", "budget", "eval")
    for name, default in KEYED_WHEN_CHANGED.items():
        if dumped["train"].get(name) == default:
            dumped["train"].pop(name, None)
    dumped["train"].pop("oversample", None)
    if not spreads_general(cfg):  # runs cached before it trained as `spread_general: false` does: the same key
        dumped["train"].pop("spread_general", None)
    if flat:
        dumped["train"] = flat_train(dumped["train"])
    evaluation = {k: dumped["eval"][k] for k in ("decoding", "max_new_tokens", "no_repeat_ngram_size", "gate")}
    return {
        "train": dumped["train"],
        "task": dumped["task"],
        "max_seq_len": cfg.data.max_seq_len,
        "budget": dumped["budget"],
        "selection": evaluation,
    }


def train_stage(
    cfg: Config,
    pipe: Pipeline,
    model_ref,
    st_split: Stage,
    schema: dict | None = None,
    resume: str = "auto",
    report=None,
    extra_inputs: dict | None = None,
) -> Stage[TrainResult]:
    """Stage 4: the objective's recipe (SFT, DPO, GRPO, reward model) on the split's training records plus the
    configured share of general data, in one process or several (cached; an interrupted run resumes from its newest
    checkpoint, see `Pipeline.stage` for `resume`). SFT's checkpoint is chosen on the validation split's generated
    replies (`tunesmith.train.selection`); `report(step, value)` receives each validation value (a search's
    pruner). The test split is never read here."""
    records, factors, repeated, general = _training_mix(cfg, pipe, model_ref, st_split)

    def train(run_dir: Path) -> TrainResult:
        mixed = mix_general(repeated, general, cfg)
        added = len(mixed) - len(repeated)
        short = general_shortfall(len(repeated), added, cfg)
        if short:
            console.print(f"[yellow]· {short}[/yellow]")
        skipped = general_kl_skipped(cfg)
        if skipped:
            console.print(
                f"[yellow]· train.general_kl is not applied ({skipped}): the general rows train with "
                "cross-entropy on their replies[/yellow]"
            )
        if cfg.train.nproc > 1 or cfg.train.accelerate_config:
            from tunesmith.train.launch import launch

            path = st_split.run_dir / "train.jsonl"
            if len(mixed) != len(records):
                path = run_dir / "train_mixed.jsonl"
                atomic_write_jsonl(path, (r.to_json() for r in mixed))
            validation = st_split.run_dir / "validation.jsonl"
            result = launch(cfg, model_ref, path, run_dir, schema, pipe.project, validation)
        else:
            from tunesmith.train import run_recipe

            plan = split_validation_plan(cfg, st_split, model_ref, schema, records, report)
            result = run_recipe(cfg, model_ref, mixed, run_dir, schema, plan)
        wanted = general_wanted(len(repeated), cfg) if short else None  # the report names the ask when short
        return replace(result, general_examples=added, general_wanted=wanted, oversampled=factors or None)

    return pipe.stage(
        "train",
        train_settings(cfg),
        {**_train_inputs(pipe, model_ref, st_split, schema, general, factors), **(extra_inputs or {})},
        train,
        resume,
        typed=TrainResult,
        key_config=train_settings(cfg, flat=True),
    )


def finished_train_run(
    cfg: Config, pipe: Pipeline, model_ref, st_split: Stage, schema: dict | None
) -> Stage[TrainResult] | None:
    """The finished train run of this config on this split (what `train_stage` would reuse), without training:
    None when there is none. A search's first trial, the project's own recipe, reuses it."""
    _, factors, _, general = _training_mix(cfg, pipe, model_ref, st_split)
    inputs = _train_inputs(pipe, model_ref, st_split, schema, general, factors)
    key = runs.stage_key("train", train_settings(cfg, flat=True), inputs)
    found = runs.find_run(pipe.project, "train", key)
    return train_run(found, key) if found is not None and runs.is_complete(found) else None


def _training_mix(
    cfg: Config, pipe: Pipeline, model_ref, st_split: Stage
) -> tuple[list, dict[str, int], list, list[Path]]:
    """(the split's training records, the labels `train.oversample` repeats on them, the records with those
    repeats, the general-data files mixed in beside them): what a train run trains on and what its key covers,
    resolved before the cache is asked."""
    records = read_records(st_split.run_dir / "train.jsonl")
    factors = oversample_factors(records, cfg)
    repeated = oversample(records, cfg, factors)
    return records, factors, repeated, _general(cfg, pipe, model_ref, len(repeated))


def _general(cfg: Config, pipe: Pipeline, model_ref, n_task: int) -> list[Path]:
    """The general-data files mixed into training beside `n_task` task examples (`builtin:self` made by its own
    cached stage, as many replies as the share asks of them)."""
    general = general_files(cfg, pipe.project)
    if wanted := _self_wanted(cfg, n_task):
        general.append(self_general_stage(cfg, pipe, model_ref, wanted).run_dir / "general.jsonl")
    return general


def general_to_count(cfg: Config, project: Path, model_ref, n_task: int) -> tuple[list[Path], list, list[str]]:
    """What `_general` mixes in beside `n_task` task examples, without making anything (`tunesmith cost`'s count):
    (the general-data files, with a finished `general-self` stage's replies; stand-ins at their token limit for
    `builtin:self` replies not made yet; a note when there are stand-ins)."""
    from tunesmith.data.distill import ANCHOR_TOKENS, general_stand_ins

    files = general_files(cfg, project)
    wanted = _self_wanted(cfg, n_task)
    if not wanted:
        return files, [], []
    made = _made_self_general(cfg, project, model_ref, wanted)
    if made is not None:
        return [*files, made], [], []
    stand_ins = general_stand_ins(wanted)
    note = (
        f"{SELF}: the base model's {len(stand_ins)} general replies are not made yet; counted at their "
        f"{ANCHOR_TOKENS}-token limit (training makes them first)"
    )
    return files, stand_ins, [note]


def _self_wanted(cfg: Config, n_task: int) -> int:
    """How many `builtin:self` replies the mix asks beside `n_task` task examples: 0 without `builtin:self`, and
    for a handful of examples (nothing to make)."""
    return general_wanted(n_task, cfg) if SELF in cfg.train.general_data else 0


def _train_inputs(
    pipe: Pipeline, model_ref, st_split: Stage, schema: dict | None, general: list[Path], factors: dict[str, int]
) -> dict:
    """What a train run's key covers besides its settings: the split, the model, the schema, the general data, and
    the labels `train.oversample` repeats on this split (`factors`, only when it repeats any, so older runs keep
    their key)."""
    inputs = {
        "split": st_split.key,
        "model": model_ref.identity,
        "schema": schema,
        "general": {_general_name(pipe.project, f): file_sha256(f) for f in general},
    }
    return {**inputs, "oversample": factors} if factors else inputs


def _general_name(project: Path, path: Path) -> str:
    """A general-data file's name in the train key: its path in the project, or `builtin:self` for a `general-self`
    stage's replies, whose directory is named by when the stage ran (made again with the same replies, the same
    key: the file's hash is keyed beside its name)."""
    return SELF if path.is_relative_to(runs.runs_root(project)) else str(path.relative_to(project))


def self_general_stage(cfg: Config, pipe: Pipeline, model_ref, wanted: int) -> Stage:
    """`train.general_data: [builtin:self]`: the base model's own replies to the first `wanted` built-in general
    prompts (all of them when the mix asks more), made once per base model and count (cached like any stage; the
    replies themselves are in the project's generation cache, so a larger count generates only the new ones) and
    written as `general.jsonl`."""
    from tunesmith.data.distill import self_distilled_general
    from tunesmith.generate.backends import TransformersBackend
    from tunesmith.generate.cache import GenerationCache

    settings, inputs = _self_general_key(cfg, model_ref, wanted)
    count = settings["prompts"]

    def distill(run_dir: Path) -> dict[str, Any]:
        backend = TransformersBackend(model_ref, precision=cfg.train.precision)
        cache = GenerationCache.of_project(pipe.project)
        records = self_distilled_general(backend, cache, count=count)
        atomic_write_jsonl(run_dir / "general.jsonl", (r.to_json() for r in records))
        return {"records": len(records), "unfinished": sum(bool(r.provenance.get("unfinished")) for r in records)}

    return pipe.stage("general-self", settings, inputs, distill)


def _self_general_key(cfg: Config, model_ref, wanted: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(settings, inputs) of the `general-self` stage making `wanted` replies (at most one per built-in prompt)."""
    from tunesmith.data.distill import ANCHOR_TOKENS, GENERAL_PROMPTS, general_prompts

    settings = {"max_new_tokens": ANCHOR_TOKENS, "precision": cfg.train.precision}
    settings["prompts"] = min(wanted, len(general_prompts()))
    return settings, {"model": model_ref.identity, "prompts": file_sha256(GENERAL_PROMPTS)}


def _made_self_general(cfg: Config, project: Path, model_ref, wanted: int) -> Path | None:
    """The `general.jsonl` of a finished `general-self` stage making `wanted` replies, or None: nothing is made."""
    settings, inputs = _self_general_key(cfg, model_ref, wanted)
    found = runs.find_run(project, "general-self", runs.stage_key("general-self", settings, inputs))
    return found / "general.jsonl" if found is not None and runs.is_complete(found) else None


def split_validation_plan(
    cfg: Config, st_split: Stage, model_ref, schema: dict | None, train_records: list, report=None
):
    """The validation plan of an SFT run on this split (None for other objectives or without validation)."""
    records = validation_records(st_split.run_dir) if cfg.train.objective == "sft" else []
    if not records:
        return None
    from tunesmith.models import load_tokenizer
    from tunesmith.train.selection import validation_plan

    return validation_plan(
        cfg, records, [r.reply or "" for r in train_records], load_tokenizer(model_ref), schema, report
    )


def train_run(run_dir: Path, key: str = "") -> Stage[TrainResult]:
    """A finished train run (of this version or an older one) as a cached train stage."""
    return Stage("train", key, run_dir, cached=True, result=TrainResult.read(run_dir))


def trained_model(st_train: Stage[TrainResult], base_ref):
    """(model, adapter) to evaluate or export: the base with the trained adapter, or the fully trained model."""
    from tunesmith.models import resolve_model

    result = st_train.result
    if result.model:
        return resolve_model(str(st_train.run_dir / result.model)), None
    return base_ref, st_train.run_dir / (result.adapter or "adapter")


def search_stage(
    cfg: Config,
    pipe: Pipeline,
    model_ref,
    st_split: Stage,
    schema: dict | None,
    budget_minutes: float | None = None,
    max_trials: int | None = None,
):
    """The budgeted recipe search (`tunesmith.train.search`): each trial a train stage of its own, the general-probe
    gate checked on probe prompts the gate does not use. Returns the SearchResult; the best trial's train run is
    added to the pipeline as its train stage."""
    from tunesmith.train.search import ForgettingGuard, TrialRun, search_recipe
    from tunesmith.train.trainer import task_labels

    def train(tcfg: Config, report, extra: dict) -> TrialRun:
        st = train_stage(tcfg, pipe, model_ref, st_split, schema, report=report, extra_inputs=extra)
        return TrialRun(st.run_dir, st.result)

    def own_run() -> TrialRun | None:  # the project's own recipe, trained before by `run` or `train`
        st = finished_train_run(cfg, pipe, model_ref, st_split, schema)
        return None if st is None else TrialRun(st.run_dir, st.result)

    guard = ForgettingGuard.for_project(cfg, probe_scorer(cfg, pipe.project, model_ref))
    # `epochs: auto` counted over what the project's own recipe trains on (its general data and repeats too), as
    # the trainer counts it, so the first trial is that recipe
    split_train, _, repeated, general = _training_mix(cfg, pipe, model_ref, st_split)
    return search_recipe(
        cfg,
        pipe.project,
        st_split.key,
        model_ref.identity,
        len(mix_general(repeated, general, cfg)),
        train,
        guard,
        budget_minutes,
        max_trials,
        own_run,
        n_labels=task_labels(cfg, split_train),
    )


def probe_scorer(cfg: Config, project: Path, model_ref):
    """`score(run_dir, train_result) -> value` of the general-probe gate's metric on the spare probe prompts (the
    base model when `run_dir` is None), through the generation cache."""
    from tunesmith.eval.evaluate import evaluate
    from tunesmith.generate.backends import TransformersBackend
    from tunesmith.generate.cache import GenerationCache
    from tunesmith.train.search import spare_probe

    gate = next((g for g in [cfg.eval.gate, *cfg.eval.gates] if g.metric.startswith("general.")), None)
    metric = gate.metric.rpartition(".")[2] if gate else "prompt_strict_accuracy"
    cache = GenerationCache.of_project(project)

    def score(run_dir: Path | None, result: TrainResult | None) -> float:
        import tempfile

        if run_dir is None:
            backend = TransformersBackend(model_ref, precision=cfg.train.precision)
        else:
            ref, adapter = trained_model(Stage("train", "", run_dir, cached=True, result=result), model_ref)
            backend = TransformersBackend(ref, adapter=adapter, precision=cfg.train.precision)
        with tempfile.TemporaryDirectory() as out:
            metrics = evaluate(
                backend,
                {"general": spare_probe(cfg)},
                cfg,
                Path(out),
                None,
                "probe (spare)",
                cache,
                {"general": cfg.eval.general_max_new_tokens},
            )
        return float(metrics["general"].get(metric) or 0.0)

    return score


def search_train_stage(pipe: Pipeline, result) -> Stage[TrainResult]:
    """The best trial's train run as the pipeline's train stage (reused, not trained again)."""
    meta = json.loads((result.best_run / "inputs.json").read_text())
    st = train_run(result.best_run, meta["key"])
    pipe.stages.append(st)
    return st
