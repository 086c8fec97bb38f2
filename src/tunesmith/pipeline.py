"""`tunesmith run`: check -> split -> eval base -> train -> eval tuned -> compare (-> export).

    summary = run_project("examples/support-triage", overrides=["train.epochs=2"])

Each stage's result is cached in a run directory under a key = hash(stage, its config section, the keys or
content hashes of its inputs). A re-run skips completed stages with unchanged keys and resumes an interrupted one
(training restarts from its newest checkpoint).
"""

from __future__ import annotations

import glob
import json
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape

from tunesmith import runs
from tunesmith.config import Config, load_config
from tunesmith.data.distill import SELF
from tunesmith.data.io import JsonlWriter, atomic_write_json, atomic_write_jsonl, data_sha256, file_sha256, read_jsonl
from tunesmith.errors import Problem, TunesmithError
from tunesmith.eval.plan import LIMIT_MAX

console = Console(stderr=True)


@dataclass
class Stage:
    name: str
    key: str
    run_dir: Path
    cached: bool
    wall_s: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class Pipeline:
    """Runs stages with caching; remembers what ran and how long it took."""

    project: Path
    stages: list[Stage] = field(default_factory=list)

    def stage(self, name: str, config: Any, inputs: dict[str, Any],
              work: Callable[[Path], dict[str, Any]], resume: str = "auto") -> Stage:
        """Run `work` in this stage's run directory, or reuse a completed one. An interrupted run with the same key
        is resumed (`resume="auto"`), must exist (`"require"`: an error naming the interrupted runs whose settings
        differ, and how) or is discarded (`"fresh"`)."""
        key = runs.stage_key(name, config, inputs)
        found = runs.find_run(self.project, name, key)
        if found is not None and not runs.is_complete(found) and resume == "fresh":
            shutil.rmtree(found)
            console.print(f"[dim]· {name}: discarded the interrupted {found.name}[/dim]")
            found = None
        if found is None and resume == "require":
            raise TunesmithError(f"No interrupted {name} run to resume", runs.resume_problems(
                self.project, name, config))
        if found is not None and runs.is_complete(found):
            st = Stage(name, key, found, cached=True, result=runs.read_result(found))
            console.print(f"[dim]· {name}: unchanged, using {found.name}[/dim]")
        else:
            run_dir = found or runs.start_run(self.project, name, key, config, inputs)
            console.print(f"[bold]▶ {name}[/bold]" + (" (resuming)" if found else ""))
            began = time.perf_counter()
            try:
                result = work(run_dir)
            except TunesmithError as err:
                # Bad input: leave nothing half-made behind (interruptions and diverged training keep theirs).
                if found is None and not getattr(err, "keep_run", False):
                    shutil.rmtree(run_dir, ignore_errors=True)
                raise
            wall = time.perf_counter() - began
            result["stage_wall_s"] = wall
            runs.complete_run(run_dir, result)
            st = Stage(name, key, run_dir, cached=False, wall_s=wall, result=result)
        self.stages.append(st)
        return st


def data_files(cfg: Config, project: Path, which: str = "train") -> list[Path]:
    """The data files named by `data.<which>` (train, validation or test; globs allowed), sorted; a pattern
    matching nothing is an error. A saved `datasets` directory counts as one file."""
    from tunesmith.data.tables import is_saved_dataset

    files, problems = [], []
    for i, pattern in enumerate(getattr(cfg.data, which)):
        matched = sorted(Path(p) for p in glob.glob(str(project / pattern)))
        if not matched:
            problems.append(Problem(f"data.{which}[{i}]", f"{pattern!r} matches no file under {project}",
                                    "check the path; it is relative to the project directory"))
        files.extend(m for m in matched if m.is_file() or is_saved_dataset(m))
    if problems:
        raise TunesmithError("Missing data", problems)
    return files


def suite_hashes(cfg: Config, project: Path) -> dict[str, str]:
    """Content hashes of every suite file a project evaluates on (the built-in probe included)."""
    from tunesmith.eval.suite import PROBE

    paths = [project / (e if isinstance(e, str) else e.path) for e in cfg.eval.suites]
    out = {str(p.relative_to(project)): file_sha256(p) for p in paths if p.is_file()}
    if cfg.eval.general_probe:
        out["builtin:general"] = file_sha256(PROBE)
    return out


def stratify_field(cfg: Config) -> str | None:
    s = cfg.data.stratify_by
    if s != "auto":
        return s
    if cfg.task.type == "json" and cfg.task.match_fields:
        return cfg.task.match_fields[0]
    return "label" if cfg.task.type == "classification" else None


def check_options(cfg: Config, model_ref, schema: dict | None) -> dict[str, Any]:
    """`run_checks` keyword arguments for a project: its model's tokenizer and length limit, system prompt, reply
    format and schema, task type and labels. Shared by `tunesmith run` and `tunesmith data check PROJECT`."""
    from tunesmith.data.split import ReplyLabel
    from tunesmith.models import load_tokenizer

    field = stratify_field(cfg)
    return {"near_dup_threshold": cfg.data.near_dup_threshold, "tokenizer": load_tokenizer(model_ref),
            "max_seq_len": cfg.data.max_seq_len, "system_prompt": cfg.task.system_prompt,
            "json_task": cfg.task.type == "json", "schema": schema, "task_type": cfg.task.type,
            "label_of": ReplyLabel(field), "sensitive": cfg.data.pii_check}


def _records_from(path: Path):
    from tunesmith.data.formats import load_records

    return load_records([path])


def validation_records(st_split: Stage) -> list:
    """The split's validation records ([] when the split set none aside, as for DPO and GRPO)."""
    path = st_split.run_dir / "validation.jsonl"
    return _records_from(path) if path.exists() and path.stat().st_size else []


def data_stages(cfg: Config, project: Path, pipe: Pipeline, model_ref, schema: dict | None) -> Stage:
    """Stages 1-2, check and split (cached like every stage); returns the split stage."""
    from tunesmith.data.audit import rejected_row, run_checks
    from tunesmith.data.findings import Code
    from tunesmith.data.dedup import near_duplicate_clusters
    from tunesmith.data.formats import iter_records, load_records
    from tunesmith.data.split import leakage, reply_label, three_way_split

    files = data_files(cfg, project)
    section = lambda *names: {n: getattr(cfg, n).model_dump(mode="json") for n in names}  # noqa: E731

    # 1. check: bad records are set aside with their reasons, never edited in place.
    def check(run_dir: Path) -> dict[str, Any]:
        with JsonlWriter(run_dir / "kept.jsonl") as kept, JsonlWriter(run_dir / "rejected.jsonl") as rejected:
            def verdict(item, errors) -> None:
                if errors:
                    rejected.write(rejected_row(item, errors))
                else:
                    kept.write(item.to_json())

            report = run_checks(iter_records(files, cfg.data.format, project, cfg.data.columns), keep=False,
                                on_verdict=verdict, **check_options(cfg, model_ref, schema))
        unreadable = [f for f in report.findings if f.code in (Code.BAD_LINE, Code.BAD_RECORD)]
        if unreadable:  # a broken file, not a bad example: training on what could be parsed would hide it
            raise TunesmithError.capped(f"{len(unreadable)} line(s) cannot be read", [
                Problem(f.where + (f" [{f.field}]" if f.field else ""), f.message, f.hint) for f in unreadable])
        atomic_write_json(run_dir / "report.json", report.to_json())
        if not report.n_kept:
            raise TunesmithError("No usable records", [Problem(str(files[0]), "every record was rejected",
                                                               "see report.json in the check run directory")])
        return {"records": report.records, "kept": report.n_kept, "rejected": report.n_rejected,
                "findings": len(report.findings)}

    hashes = {str(f.relative_to(project)): data_sha256(f) for f in files}
    st_check = pipe.stage("check", section("data", "task"), {"files": hashes, "model": model_ref.identity,
                                                                  "schema": schema}, check)

    # 2. split: leakage-free, seeded, stratified train / validation / test sets. Only SFT chooses its checkpoint
    # on validation; the other objectives train on what SFT would set aside.
    given = {which: data_files(cfg, project, which) for which in ("test", "validation")}
    split_data = cfg.data if cfg.train.objective == "sft" else cfg.data.model_copy(update={"validation_fraction": 0.0})

    def split(run_dir: Path) -> dict[str, Any]:
        kept = _records_from(st_check.run_dir / "kept.jsonl")
        fld = stratify_field(cfg)
        clusters = near_duplicate_clusters(kept, cfg.data.near_dup_threshold)
        own = {which: load_records(files, cfg.data.format, project, cfg.data.columns) if files else None
               for which, files in given.items()}
        parts = three_way_split(kept, split_data, lambda r: reply_label(r, fld), clusters, **own)
        leaks = leakage(parts.train, parts.test + parts.validation, cfg.data.near_dup_threshold)
        for finding in parts.findings[:10]:
            console.print(f"[yellow]leakage:[/yellow] {escape(finding.where)} {escape(finding.message)}")
        if len(parts.findings) > 10:
            console.print(f"[yellow]leakage:[/yellow] … and {len(parts.findings) - 10} more (split.json)")
        for name, records in (("train", parts.train), ("validation", parts.validation), ("heldout", parts.test)):
            atomic_write_jsonl(run_dir / f"{name}.jsonl", (r.to_json() for r in records))
        atomic_write_json(run_dir / "split.json", {"findings": [f.to_json() for f in parts.findings]})
        return {"train": len(parts.train), "validation": len(parts.validation), "heldout": len(parts.test),
                "stratified_by": fld, "grouped_with_a_twin": len(kept) - len(set(clusters)), "leaks": len(leaks),
                "dropped_as_leakage": len(parts.findings),
                "sources": {which: [str(f.relative_to(project)) for f in files] for which, files in given.items()}}

    hashes_given = {which: {str(f.relative_to(project)): data_sha256(f) for f in files}
                    for which, files in given.items() if files}
    return pipe.stage("split", {"data": split_data.model_dump(mode="json")}, {"check": st_check.key, **hashes_given},
                      split)


@dataclass
class EvalPlan:
    """What every evaluation of a project runs: its suites, their generation limits and decodings, what keys
    their cache."""

    suites: dict[str, list]
    limits: dict[str, int]
    inputs: dict[str, Any]
    cache: Any
    decodings: dict[str, Any] = field(default_factory=dict)  # suite -> tunesmith.eval.plan.Decoding


def eval_plan(cfg: Config, project: Path, st_split: Stage, model_ref, schema: dict | None,
              extra: tuple[dict, dict]) -> EvalPlan:
    """The held-out (test) split plus the project's extra suites (`project_suites`); unreadable suite cases are
    warned about here and recorded in the results. The held-out cases are decoded as the task wants
    (`tunesmith.eval.plan.task_decoding`); a constrained decoding also runs them free, as `heldout_free`. This
    reads the test split: call it only for the final evaluations."""
    from tunesmith.generate.cache import GenerationCache
    from tunesmith.eval.plan import task_decoding
    from tunesmith.eval.suite import cases_from_records
    from tunesmith.models import load_tokenizer

    extra, limits = extra
    broken = [c.error for cases in extra.values() for c in cases if c.error]
    for err in broken[:10]:
        console.print(f"[yellow]warning:[/yellow] {escape(err)} (recorded in the results, not scored)")
    if len(broken) > 10:
        console.print(f"[yellow]warning:[/yellow] … and {len(broken) - 10} more unreadable suite case(s)")
    heldout = cases_from_records(_records_from(st_split.run_dir / "heldout.jsonl"), cfg.task)
    if cfg.eval.limit:
        heldout = heldout[: cfg.eval.limit]
    replies = [r.reply or "" for r in _records_from(st_split.run_dir / "train.jsonl")]
    decoding = task_decoding(cfg, replies, load_tokenizer(model_ref), schema)
    suites, decodings = {"heldout": heldout}, {"heldout": decoding}
    if decoding.constraint is not None:  # what the weights learned, without the constraint's help
        suites["heldout_free"], decodings["heldout_free"] = heldout, decoding.free()
    inputs = {"split": st_split.key, "model": model_ref.identity, "schema": schema,
              "suites": suite_hashes(cfg, project)}
    return EvalPlan({**suites, **extra}, limits, inputs,
                    GenerationCache(project / ".tunesmith" / "cache" / "generations.sqlite"), decodings)


def train_settings(cfg: Config) -> dict[str, Any]:
    """What a train run's cache key covers of the config: the recipe, the task, and how its checkpoint is chosen
    (the validation decoding)."""
    dump = lambda name: getattr(cfg, name).model_dump(mode="json")  # noqa: E731
    evaluation = {k: dump("eval")[k] for k in ("decoding", "max_new_tokens", "no_repeat_ngram_size", "gate")}
    return {"train": dump("train"), "task": dump("task"), "max_seq_len": cfg.data.max_seq_len,
            "budget": dump("budget"), "selection": evaluation}


def train_stage(cfg: Config, pipe: Pipeline, model_ref, st_split: Stage, schema: dict | None = None,
                resume: str = "auto", report=None, extra_inputs: dict | None = None) -> Stage:
    """Stage 4: the objective's recipe (SFT, DPO, GRPO, reward model) on the split's training records plus the
    configured share of general data, in one process or several (cached; an interrupted run resumes from its newest
    checkpoint, see `Pipeline.stage` for `resume`). SFT's checkpoint is chosen on the validation split's generated
    replies (`tunesmith.train.selection`); `report(step, value)` receives each validation value (a search's
    pruner). The test split is never read here."""
    general = general_files(cfg, pipe.project)
    if SELF in cfg.train.general_data and cfg.train.general_share:
        general.append(self_general_stage(cfg, pipe, model_ref).run_dir / "general.jsonl")

    def train(run_dir: Path) -> dict[str, Any]:
        split_path = st_split.run_dir / "train.jsonl"
        records = _records_from(split_path)
        mixed = mix_general(records, general, cfg)
        added = {"general_examples": len(mixed) - len(records)}
        if cfg.train.nproc > 1 or cfg.train.accelerate_config:
            from tunesmith.train.launch import launch

            path = split_path
            if added["general_examples"]:
                path = run_dir / "train_mixed.jsonl"
                atomic_write_jsonl(path, (r.to_json() for r in mixed))
            return {**launch(cfg, model_ref, path, run_dir, schema, pipe.project,
                             st_split.run_dir / "validation.jsonl"), **added}
        from tunesmith.train import run_recipe

        plan = split_validation_plan(cfg, st_split, model_ref, schema, records, report)
        return {**run_recipe(cfg, model_ref, mixed, run_dir, schema, plan), **added}

    return pipe.stage("train", train_settings(cfg),
                      {"split": st_split.key, "model": model_ref.identity, "schema": schema,
                       "general": {str(f.relative_to(pipe.project)): file_sha256(f) for f in general},
                       **(extra_inputs or {})}, train, resume)


def search_stage(cfg: Config, pipe: Pipeline, model_ref, st_split: Stage, schema: dict | None,
                 budget_minutes: float | None = None, max_trials: int | None = None):
    """The budgeted recipe search (`tunesmith.train.search`): each trial a train stage of its own, the general-probe
    gate checked on probe prompts the gate does not use. Returns the SearchResult; the best trial's train run is
    added to the pipeline as its train stage."""
    from tunesmith.train.search import ForgettingGuard, TrialRun, search_recipe

    def train(tcfg: Config, report, extra: dict) -> TrialRun:
        st = train_stage(tcfg, pipe, model_ref, st_split, schema, report=report, extra_inputs=extra)
        return TrialRun(st.run_dir, st.result)

    guard = ForgettingGuard.for_project(cfg, probe_scorer(cfg, pipe.project, model_ref))
    n_train = sum(1 for _ in read_jsonl(st_split.run_dir / "train.jsonl"))
    result = search_recipe(cfg, pipe.project, st_split.key, model_ref.identity, n_train, train, guard,
                           budget_minutes, max_trials)
    return result


def probe_scorer(cfg: Config, project: Path, model_ref):
    """`score(run_dir, train_result) -> value` of the general-probe gate's metric on the spare probe prompts (the
    base model when `run_dir` is None), through the generation cache."""
    from tunesmith.generate.backends import TransformersBackend
    from tunesmith.generate.cache import GenerationCache
    from tunesmith.eval.evaluate import evaluate
    from tunesmith.train.search import spare_probe

    gate = next((g for g in [cfg.eval.gate, *cfg.eval.gates] if g.metric.startswith("general.")), None)
    metric = gate.metric.rpartition(".")[2] if gate else "prompt_strict_accuracy"
    cache = GenerationCache(project / ".tunesmith" / "cache" / "generations.sqlite")

    def score(run_dir: Path | None, result: dict | None) -> float:
        import tempfile

        if run_dir is None:
            backend = TransformersBackend(model_ref, precision=cfg.train.precision)
        else:
            ref, adapter = trained_model(Stage("train", "", run_dir, cached=True, result=result or {}), model_ref)
            backend = TransformersBackend(ref, adapter=adapter, precision=cfg.train.precision)
        with tempfile.TemporaryDirectory() as out:
            metrics = evaluate(backend, {"general": spare_probe(cfg)}, cfg, Path(out), None, "probe (spare)",
                               cache, {"general": cfg.eval.general_max_new_tokens})
        return float(metrics["general"].get(metric) or 0.0)

    return score


def search_train_stage(pipe: Pipeline, result) -> Stage:
    """The best trial's train run as the pipeline's train stage (reused, not trained again)."""
    meta = json.loads((result.best_run / "inputs.json").read_text())
    st = Stage("train", meta["key"], result.best_run, cached=True, result=runs.read_result(result.best_run))
    pipe.stages.append(st)
    return st


def split_validation_plan(cfg: Config, st_split: Stage, model_ref, schema: dict | None, train_records: list,
                          report=None):
    """The validation plan of an SFT run on this split (None for other objectives or without validation)."""
    records = validation_records(st_split) if cfg.train.objective == "sft" else []
    if not records:
        return None
    from tunesmith.models import load_tokenizer
    from tunesmith.train.selection import validation_plan

    return validation_plan(cfg, records, [r.reply or "" for r in train_records], load_tokenizer(model_ref), schema,
                           report)


def general_files(cfg: Config, project: Path) -> list[Path]:
    """The files of `train.general_data` (globs allowed); a pattern matching nothing is an error."""
    if not cfg.train.general_share:
        return []
    files, problems = [], []
    for i, pattern in enumerate(cfg.train.general_data):
        if pattern == SELF:  # made by self_general_stage
            continue
        matched = sorted(Path(p) for p in glob.glob(str(project / pattern)) if Path(p).is_file())
        if not matched:
            problems.append(Problem(f"train.general_data[{i}]", f"{pattern!r} matches no file",
                                    "relative to the project directory"))
        files += matched
    if not files and not problems and SELF not in cfg.train.general_data:
        problems.append(Problem("train.general_share", "a share is set but train.general_data names no file",
                                "e.g. general_data: [data/general-self.jsonl]"))
    if problems:
        raise TunesmithError("Missing general data", problems)
    return files


def mix_general(records: list, files: list[Path], cfg: Config) -> list:
    """`records` plus a seeded sample of general records making up `train.general_share` of the result."""
    import random

    share = cfg.train.general_share
    if not share or not files:
        return records
    from tunesmith.data.formats import load_records

    pool = load_records(files)
    want = round(share * len(records) / (1 - share))
    rng = random.Random(cfg.train.seed)
    picked = rng.sample(pool, min(want, len(pool)))
    return records + [replace(r, provenance={**r.provenance, "general": True}) for r in picked]


def self_general_stage(cfg: Config, pipe: Pipeline, model_ref) -> Stage:
    """`train.general_data: [builtin:self]`: the base model's own replies to the built-in general prompts, made once
    per base model (cached like any stage) and written as `general.jsonl`."""
    from tunesmith.data.distill import ANCHOR_TOKENS, GENERAL_PROMPTS, self_distilled_general
    from tunesmith.generate.backends import TransformersBackend
    from tunesmith.generate.cache import GenerationCache

    def distill(run_dir: Path) -> dict[str, Any]:
        backend = TransformersBackend(model_ref, precision=cfg.train.precision)
        cache = GenerationCache(pipe.project / ".tunesmith" / "cache" / "generations.sqlite")
        records = self_distilled_general(backend, cache)
        atomic_write_jsonl(run_dir / "general.jsonl", (r.to_json() for r in records))
        return {"records": len(records), "unfinished": sum(bool(r.provenance.get("unfinished")) for r in records)}

    return pipe.stage("general-self", {"max_new_tokens": ANCHOR_TOKENS, "precision": cfg.train.precision},
                      {"model": model_ref.identity, "prompts": file_sha256(GENERAL_PROMPTS)}, distill)


def trained_model(st_train: Stage, base_ref):
    """(model, adapter) to evaluate or export: the base with the trained adapter, or the fully trained model."""
    from tunesmith.models import resolve_model

    if "model" in st_train.result:
        return resolve_model(str(st_train.run_dir / st_train.result["model"])), None
    return base_ref, st_train.run_dir / st_train.result["adapter"]


@dataclass
class Prepared:
    """A project with its data checked and split: what `run`, `train` and `eval run` all start from."""

    cfg: Config
    project: Path
    pipe: Pipeline
    model_ref: Any
    schema: dict | None
    st_split: Stage
    suites: tuple[dict, dict] | None  # `project_suites`, when the caller evaluates


def prepare(cfg: Config, project: Path, with_suites: bool) -> Prepared:
    """Fail on missing data (and suites) before any work; resolve the base model; run (or reuse) the check and
    split stages."""
    from tunesmith.eval.evaluate import load_schema
    from tunesmith.eval.suite import project_suites
    from tunesmith.models import resolve_model

    data_files(cfg, project)
    suites = project_suites(cfg, project) if with_suites else None
    pipe = Pipeline(project)
    model_ref = resolve_model(cfg.model.base, cfg.model.trust_remote_code)
    schema = load_schema(cfg, project)
    return Prepared(cfg, project, pipe, model_ref, schema, data_stages(cfg, project, pipe, model_ref, schema), suites)


def train_project(path: str | Path, overrides: list[str] | None = None, check_only: bool = False,
                  resume: str = "auto"):
    """`tunesmith train`: check, split and train (each cached), without the evaluations; returns the train stage.
    `resume`: "auto" continues an interrupted run of the same settings, "require" fails when there is none,
    "fresh" discards it. With `check_only`, run the training invariants (`tunesmith.train.invariants`) on the
    project's model, recipe and training records instead, and return their results."""
    p = prepare(*load_config(path, overrides), with_suites=False)
    if check_only:
        from tunesmith.train.invariants import check_invariants

        return check_invariants(p.cfg, p.model_ref, _records_from(p.st_split.run_dir / "train.jsonl"))
    return train_stage(p.cfg, p.pipe, p.model_ref, p.st_split, p.schema, resume)


def tune_project(path: str | Path, overrides: list[str] | None = None, budget_minutes: float | None = None,
                 max_trials: int | None = None):
    """`tunesmith tune`: check, split, then the budgeted recipe search on the validation split (the test split is
    not read); returns the SearchResult. `tunesmith run --tune` goes on to evaluate the best recipe."""
    p = prepare(*load_config(path, overrides), with_suites=False)
    return search_stage(p.cfg, p.pipe, p.model_ref, p.st_split, p.schema, budget_minutes, max_trials)


def run_project(path: str | Path, overrides: list[str] | None = None, tune: bool = False,
                budget_minutes: float | None = None) -> dict[str, Any]:
    """The whole flow on a project directory; returns the summary (also written to summary.json). With `tune`, the
    recipe is searched first (`tunesmith.train.search`, within `budget_minutes` or `tune.budget_minutes`)."""
    from tunesmith.eval.compare import compare
    from tunesmith.eval.evaluate import evaluate

    cfg, project = load_config(path, overrides)
    if cfg.train.objective == "reward":
        raise TunesmithError("A reward model is trained, not run", [Problem(
            "train.objective: reward", "`tunesmith run` evaluates a model that generates",
            "use `tunesmith train` to train the reward model, then reward GRPO with it: "
            "rewards: [{type: reward_model, path: <run>/reward_model}]")])
    p = prepare(cfg, project, with_suites=True)
    pipe, model_ref, schema, st_split = p.pipe, p.model_ref, p.schema, p.st_split
    section = lambda *names: {n: getattr(cfg, n).model_dump(mode="json") for n in names}  # noqa: E731

    # 3. train: the recipe (searched on the validation split when asked), its checkpoint chosen on validation.
    search = None
    if tune:
        search = search_stage(cfg, pipe, model_ref, st_split, schema, budget_minutes)
        cfg = search.best_config
        st_train = search_train_stage(pipe, search)
    else:
        st_train = train_stage(cfg, pipe, model_ref, st_split, schema)
    tuned_ref, adapter = trained_model(st_train, model_ref)

    # 4. the test split, read for the first time: the base and the tuned model on the same cases, same decoding.
    plan = eval_plan(cfg, project, st_split, model_ref, schema, p.suites)
    eval_config = section("eval", "task", "budget")

    def eval_base(run_dir: Path) -> dict[str, Any]:
        from tunesmith.generate.backends import TransformersBackend

        backend = TransformersBackend(model_ref, precision=cfg.train.precision)
        return {"model": cfg.model.base, "metrics": evaluate(backend, plan.suites, cfg, run_dir, schema, "base",
                                                                   plan.cache, plan.limits, plan.decodings)}

    st_base = pipe.stage("eval-base", eval_config, plan.inputs, eval_base)

    def eval_tuned(run_dir: Path) -> dict[str, Any]:
        from tunesmith.generate.backends import TransformersBackend

        backend = TransformersBackend(tuned_ref, adapter=adapter, precision=cfg.train.precision)
        return {"model": tuned_ref.ref, "adapter": str(adapter) if adapter else None,
                "metrics": evaluate(backend, plan.suites, cfg, run_dir, schema, "tuned", plan.cache, plan.limits, plan.decodings)}

    st_tuned = pipe.stage("eval-tuned", eval_config, {**plan.inputs, "train": st_train.key}, eval_tuned)

    # 5. the cheapest alternatives on the same test cases: a classical classifier, few-shot prompting.
    st_baselines = baseline_stages(cfg, pipe, plan, st_split, model_ref, schema)

    # 6. compare + gates + the verdict (the gates, the absolute target and the alternatives).
    def compare_stage(run_dir: Path) -> dict[str, Any]:
        from tunesmith.eval.compare import compare_to_baselines
        from tunesmith.eval.verdict import ship_verdict

        base_rows = [o for _, o in read_jsonl(st_base.run_dir / "results.jsonl")]
        tuned_rows = [o for _, o in read_jsonl(st_tuned.run_dir / "results.jsonl")]
        cmp = compare(base_rows, tuned_rows, cfg)
        alternatives = {name: [o for _, o in read_jsonl(st.run_dir / "results.jsonl")]
                        for name, st in st_baselines.items()}
        info = {name: {k: st.result[k] for k in ("train_s",) if k in st.result} for name, st in st_baselines.items()}
        against = compare_to_baselines(tuned_rows, alternatives, cfg, info)
        return {**cmp, "baselines": against, "verdict": ship_verdict(cmp, against, cfg)}

    st_cmp = pipe.stage("compare", section("eval"), {"base": st_base.key, "tuned": st_tuned.key,
                                                     **{f"baseline-{n}": st.key for n, st in st_baselines.items()}},
                        compare_stage)

    # 6b. diagnose: memorization, forgetting, overconfidence, stale facts, stop token, masking, loss curve.
    from tunesmith.diagnose import diagnose_stage

    st_diag = diagnose_stage(cfg, pipe, st_split, st_base, st_tuned, st_train)

    # 7. export (optional), then the held-out split again on each exported model: does it behave like the checkpoint?
    parity_reports = None
    if cfg.export.formats:
        st_export = export_stage(cfg, pipe, st_train, st_split, tuned_ref, adapter,
                                 plan.decodings["heldout"].constraint)
        if cfg.export.parity and exported_models(st_export):
            st_parity = parity_stage(cfg, pipe, plan, st_export, st_tuned, tuned_ref, adapter, schema)
            parity_reports = st_parity.result["reports"]

    summary = build_summary(cfg, pipe, st_cmp.result, st_base.result, st_tuned.result, st_train.result)
    summary["diagnosis"] = {k: v for k, v in st_diag.result.items() if k not in ("stage_wall_s", "completed_at")}
    if parity_reports is not None:
        summary["parity"] = parity_reports
    if search is not None:
        summary["search"] = search.summary
    atomic_write_json(project / ".tunesmith" / "summary.json", summary)
    from tunesmith.cost import eval_costs

    summary["cost"] = eval_costs(project, cfg.budget.hourly_usd)  # cost per successful task, base and tuned
    atomic_write_json(st_cmp.run_dir / "summary.json", summary)
    atomic_write_json(project / ".tunesmith" / "summary.json", summary)
    summary["report"] = write_report(project, summary)
    return summary


def baseline_stages(cfg: Config, pipe: Pipeline, plan: EvalPlan, st_split: Stage, model_ref,
                    schema: dict | None) -> dict[str, Stage]:
    """One eval stage per applicable baseline (`eval.baselines`), each on the held-out cases with the task's
    decoding: `classifier` (TF-IDF + logistic regression on the training split, C chosen on validation) and
    `few_shot` (the base model shown the nearest training examples)."""
    from tunesmith.eval.baselines import applicable

    train = _records_from(st_split.run_dir / "train.jsonl")
    names = applicable(cfg, train)
    out = {}
    for name in names:
        def work(run_dir: Path, name: str = name) -> dict[str, Any]:
            from tunesmith.eval.evaluate import evaluate

            backend, info = baseline_backend(name, cfg, st_split, train, model_ref)
            suites = {"heldout": plan.suites["heldout"]}
            return {"model": name, **info, "metrics": evaluate(backend, suites, cfg, run_dir, schema, name,
                                                               plan.cache, plan.limits, plan.decodings)}

        section = {"eval": {k: getattr(cfg.eval, k) for k in ("decoding", "max_new_tokens", "few_shot_k",
                                                              "no_repeat_ngram_size")},
                   "task": cfg.task.model_dump(mode="json"), "budget": cfg.budget.model_dump(mode="json")}
        out[name] = pipe.stage(f"baseline-{name}", section, {**plan.inputs, "baseline": name}, work)
    return out


def baseline_backend(name: str, cfg: Config, st_split: Stage, train: list, model_ref):
    """(backend, facts) of a baseline: the classifier trained here (its training time measured), or the base model
    prompted with few-shot examples."""
    from tunesmith.eval.baselines import ClassifierBackend, FewShotBackend

    if name == "classifier":
        clf = ClassifierBackend(train, cfg.task, validation_records(st_split) or None, seed=cfg.data.seed)
        return clf, {"train_s": clf.train_s, "C": clf.C}
    from tunesmith.generate.backends import TransformersBackend

    base = TransformersBackend(model_ref, precision=cfg.train.precision)
    return FewShotBackend(base, train, k=cfg.eval.few_shot_k), {"k": cfg.eval.few_shot_k}


def write_report(project: Path, summary: dict[str, Any]) -> str | None:
    """The HTML report of a finished run (`tunesmith.report`); a failure to draw it is a warning, never a failed
    run (the results are already written)."""
    from tunesmith.report import build_report

    try:
        return str(build_report(project, summary))
    except Exception as exc:  # noqa: BLE001 - see the docstring
        console.print(f"[yellow]warning:[/yellow] the report could not be written: {type(exc).__name__}: "
                      f"{escape(str(exc))} (`tunesmith report {project}` tries again)")
        return None


def export_stage(cfg: Config, pipe: Pipeline, st_train: Stage, st_split: Stage, tuned_ref, adapter,
                 constraint=None) -> Stage:
    """Stage 9: the formats of `export.formats` (cached under the train run and the export settings); with the
    task's decoding `constraint`, its GBNF grammar and schema ship beside the GGUF and Ollama files."""
    def export(run_dir: Path) -> dict[str, Any]:
        from tunesmith.export.merge import export_artifacts

        return export_artifacts(tuned_ref, adapter, cfg.export.formats, run_dir, cfg.eval.no_repeat_ngram_size,
                                cfg.export.gguf_types, cfg.export.ollama_type,
                                shipped_system_prompt(cfg, st_split), cfg.data.max_seq_len, constraint)

    section = {"export": cfg.export.model_dump(mode="json"), "max_seq_len": cfg.data.max_seq_len,
               "system_prompt": cfg.task.system_prompt}
    return pipe.stage("export", section, {"train": st_train.key, "split": st_split.key,
                                          "no_repeat_ngram_size": cfg.eval.no_repeat_ngram_size,
                                          "constraint": constraint.key() if constraint is not None else None},
                      export)


def split_constraint(cfg: Config, st_split: Stage | None, schema: dict | None):
    """The task's decoding constraint from the split's training replies (None without a split or constraint)."""
    from tunesmith.eval.plan import task_constraint_of

    if st_split is None:
        return None
    return task_constraint_of(cfg, [r.reply or "" for r in _records_from(st_split.run_dir / "train.jsonl")], schema)


def export_run(path: str | Path, run: str, formats: list[str] | None = None, gguf_types: list[str] | None = None,
               overrides: list[str] | None = None) -> dict[str, Any]:
    """`tunesmith export RUN`: export a finished train run of the project into `<run>/export/`; returns the
    manifest. Formats default to `export.formats`, else everything the run can give."""
    from tunesmith.models import resolve_model

    cfg, project = load_config(path, overrides)
    run_dir = runs.resolve_run(project, run)
    meta = json.loads((run_dir / "inputs.json").read_text())
    if meta.get("stage") != "train":
        raise TunesmithError("Not a training run", [Problem(run_dir.name, f"a {meta.get('stage')} run",
                                                            "`tunesmith runs list` shows the train runs")])
    if not runs.is_complete(run_dir):
        raise TunesmithError("The training run is not finished", [Problem(
            run_dir.name, "no COMPLETED marker: it was interrupted, or is still running",
            f"finish it with `tunesmith train {project} --resume`")])
    model_ref = resolve_model(cfg.model.base, cfg.model.trust_remote_code)
    if meta["inputs"].get("model") != model_ref.identity:
        raise TunesmithError("The base model changed since this run", [Problem(
            "model.base", f"{cfg.model.base} is not the model {run_dir.name} trained",
            "set model.base back to the run's base model")])
    st_train = Stage("train", meta["key"], run_dir, cached=True, result=runs.read_result(run_dir))
    tuned_ref, adapter = trained_model(st_train, model_ref)
    split_dir = runs.find_run(project, "split", meta["inputs"]["split"])
    st_split = Stage("split", meta["inputs"]["split"], split_dir, cached=True) if split_dir else None
    formats = formats or list(cfg.export.formats) or (["adapter"] if adapter is not None else []) + [
        "merged", "gguf", "ollama"]
    from tunesmith.export.merge import export_artifacts

    from tunesmith.eval.evaluate import load_schema

    system = shipped_system_prompt(cfg, st_split) if st_split else cfg.task.system_prompt
    return export_artifacts(tuned_ref, adapter, formats, run_dir / "export", cfg.eval.no_repeat_ngram_size,
                            gguf_types or list(cfg.export.gguf_types), cfg.export.ollama_type, system,
                            cfg.data.max_seq_len, split_constraint(cfg, st_split, load_schema(cfg, project)))


def serve_target(project: str | Path, target: str):
    """(model reference, adapter, name) for `tunesmith serve TARGET`: a finished train run of the project (its base
    with its adapter, or its fully trained model), else `target` as a model reference."""
    from tunesmith.models import resolve_model

    project = Path(project)
    run_dir = None
    try:
        found = runs.resolve_run(project, target) if (project / "tunesmith.yaml").exists() else None
        if found is not None and json.loads((found / "inputs.json").read_text()).get("stage") == "train":
            run_dir = found
    except TunesmithError:
        pass  # not a run: a model reference
    if run_dir is None:
        return resolve_model(target), None, None
    if not runs.is_complete(run_dir):
        raise TunesmithError("The training run is not finished", [Problem(
            run_dir.name, "no COMPLETED marker", f"finish it with `tunesmith train {project} --resume`")])
    cfg = load_config(project)[0]
    st_train = Stage("train", "", run_dir, cached=True, result=runs.read_result(run_dir))
    ref, adapter = trained_model(st_train, resolve_model(cfg.model.base, cfg.model.trust_remote_code))
    return ref, adapter, f"{project.resolve().name}-{run_dir.name.rsplit('-', 1)[-1]}"


def shipped_system_prompt(cfg: Config, st_split: Stage) -> str | None:
    """The system prompt an exported model ships with (Ollama's SYSTEM): the task's, else the one every training
    record shares, else none."""
    if cfg.task.system_prompt:
        return cfg.task.system_prompt
    prompts = {r.messages[0]["content"] if r.messages and r.messages[0].get("role") == "system" else None
               for r in _records_from(st_split.run_dir / "train.jsonl")}
    return prompts.pop() if len(prompts) == 1 else None


def exported_models(st_export: Stage) -> list[tuple[str, Path]]:
    """(kind, path) of every exported model that generates: `merged`, and each GGUF type."""
    out = []
    for fmt, info in st_export.result.get("exports", {}).items():
        if fmt == "merged":
            out.append(("merged", Path(info["path"])))
        elif fmt == "gguf":
            out += [(name[len("model-"):-len(".gguf")], Path(info["path"]) / name) for name in info["files"]
                    if name.endswith(".gguf")]  # beside them: the grammar and schema of a constrained task
    return out


def parity_stage(cfg: Config, pipe: Pipeline, plan: EvalPlan, st_export: Stage, st_tuned: Stage, tuned_ref, adapter,
                 schema: dict | None) -> Stage:
    """Stage 8: the held-out split on the checkpoint and on every exported model (the GGUFs loaded back through
    transformers), all in `export.parity_precision` (fp32: precision held fixed, so a difference is the export's
    doing; bf16 evaluation alone changes many greedy replies of a small model), each export compared with the
    checkpoint (`tunesmith.export.parity`)."""
    def run(run_dir: Path) -> dict[str, Any]:
        from tunesmith.chat import render_prompt
        from tunesmith.generate.backends import LlamaCppBackend, TransformersBackend
        from tunesmith.eval.evaluate import evaluate
        from tunesmith.export.parity import parity, print_parity
        from tunesmith.models import resolve_model

        cases, precision = plan.suites["heldout"], cfg.export.parity_precision

        def heldout(kind: str, backend) -> list[dict]:
            out = run_dir / kind
            out.mkdir(exist_ok=True)
            evaluate(backend, {"heldout": cases}, cfg, out, schema, f"parity {kind}", plan.cache, plan.limits, plan.decodings)
            return [o for _, o in read_jsonl(out / "results.jsonl")]

        ours = TransformersBackend(tuned_ref, adapter=adapter, precision=precision)
        checkpoint = heldout("checkpoint", ours)
        sample = cases[0].messages if cases else [{"role": "user", "content": "hi"}]
        reports = []
        for kind, path in exported_models(st_export):
            backend = TransformersBackend(resolve_model(str(path), cfg.model.trust_remote_code), precision=precision)
            reports.append(parity(kind, checkpoint, heldout(kind, backend), cfg,
                                  template_same=render_prompt(backend.tok, sample) == render_prompt(ours.tok, sample),
                                  eos_same=backend.tok.eos_token == ours.tok.eos_token))
            if path.suffix == ".gguf" and "llama.cpp" in runtimes:
                # the file as Ollama / llama-server run it: llama.cpp's tokenizer, the template stored in the file
                llama = LlamaCppBackend(path, n_ctx=cfg.data.max_seq_len + (cfg.eval.max_new_tokens or LIMIT_MAX))
                reports.append(parity(kind, checkpoint, heldout(f"{kind}-llama.cpp", llama), cfg,
                                      runtime="llama.cpp", decoding_same=not cfg.eval.no_repeat_ngram_size))
        print_parity(reports, console)
        return {"precision": precision, "reports": reports}

    import importlib.util

    runtimes = ["transformers"] + (["llama.cpp"] if importlib.util.find_spec("llama_cpp") is not None else [])
    return pipe.stage("parity", {"eval": cfg.eval.model_dump(mode="json"),
                                 "export": cfg.export.model_dump(mode="json")},
                      {**plan.inputs, "export": st_export.key, "tuned": st_tuned.key, "runtimes": runtimes}, run)


def evaluate_model(path: str | Path, model: str | None = None, adapter: str | Path | None = None,
                   endpoint=None, backend: str = "transformers", overrides: list[str] | None = None,
                   use_cache: bool = True) -> Stage:
    """`tunesmith eval run`: the project's suites (held-out split included) on one model, in a run directory of
    its own (`results.jsonl`, metrics in `result.json`). `model` defaults to the project's base; `endpoint` (an
    EndpointConfig) evaluates an OpenAI-compatible server instead; `backend="vllm"` uses vLLM in-process,
    `backend="llamacpp"` runs the GGUF file `model` through llama.cpp."""
    from tunesmith.eval.evaluate import evaluate
    from tunesmith.models import ModelRef, cached_sha256, dir_identity, resolve_model

    p = prepare(*load_config(path, overrides), with_suites=True)
    cfg, pipe, schema = p.cfg, p.pipe, p.schema
    if backend == "llamacpp":  # the file itself, not converted: llama.cpp reads it as a runtime would
        if not model or not model.endswith(".gguf") or not Path(model).is_file():
            raise TunesmithError("llama.cpp evaluates a GGUF file", [Problem(
                "--model", f"{model!r} is not a .gguf file", "e.g. --model <run>/export/gguf/model-q8_0.gguf")])
        model_ref = ModelRef(model, Path(model), "gguf:" + cached_sha256(Path(model)))
    else:
        model_ref = resolve_model(model, cfg.model.trust_remote_code) if model else p.model_ref
    plan = eval_plan(cfg, p.project, p.st_split, model_ref, schema, p.suites)
    if endpoint is not None:
        who = {"endpoint": endpoint.base_url, "served_model": endpoint.model}
    else:
        who = {"model": model_ref.identity, "adapter": dir_identity(Path(adapter)) if adapter else None,
               "backend": backend}
    label = endpoint.model if endpoint is not None else (model or cfg.model.base)

    def work(run_dir: Path) -> dict[str, Any]:
        from tunesmith.generate import backends

        if endpoint is not None:
            be = backends.EndpointBackend(endpoint.base_url, endpoint.model, endpoint.api_key_env,
                                          endpoint.concurrency, endpoint.max_retries, input_usd_per_mtok=endpoint.input_usd_per_mtok,
                                          output_usd_per_mtok=endpoint.output_usd_per_mtok)
        elif backend == "vllm":
            be = backends.VLLMBackend(model_ref, adapter)
        elif backend == "llamacpp":
            be = backends.LlamaCppBackend(model_ref.path, n_ctx=cfg.data.max_seq_len + (cfg.eval.max_new_tokens or LIMIT_MAX))
        else:
            be = backends.TransformersBackend(model_ref, adapter=adapter, precision=cfg.train.precision)
        return {"model": label, "adapter": str(adapter) if adapter else None, **who,
                "metrics": evaluate(be, plan.suites, cfg, run_dir, schema, label,
                                    plan.cache if use_cache else None, plan.limits,
                                    plan.decodings)}

    section = {n: getattr(cfg, n).model_dump(mode="json") for n in ("eval", "task", "budget")}
    fresh = {} if use_cache else {"fresh": time.time()}  # --no-cache: neither the stage nor any generation reused
    return pipe.stage("eval", section, {**plan.inputs, **who, **fresh}, work)


def build_summary(cfg: Config, pipe: Pipeline, cmp: dict, base: dict, tuned: dict, train: dict) -> dict[str, Any]:
    """What a person wants from a run: metrics base vs tuned, the gate, what it cost, where everything is."""
    train_hours = train.get("wall_s", 0) / 3600
    return {
        "project": str(pipe.project),
        "model": cfg.model.base,
        "gate": cmp["gate"],
        "gates": cmp.get("gates", [cmp["gate"]]),
        "verdict": cmp.get("verdict"),
        "baselines": cmp.get("baselines"),
        "confidence": cmp["confidence"],
        "metrics": cmp["metrics"],
        "base_metrics": base["metrics"],
        "tuned_metrics": tuned["metrics"],
        "train": {k: train.get(k) for k in ("steps", "epochs", "train_loss", "eval_loss", "wall_s",
                                             "tokens_per_s", "trainable_params", "precision", "stopped_by_budget",
                                             "recipe", "planned_epochs", "selection")},
        "train_cost_usd": None if cfg.budget.hourly_usd is None else train_hours * cfg.budget.hourly_usd,
        "stages": [{"stage": s.name, "run": str(s.run_dir), "cached": s.cached, "wall_s": s.wall_s}
                   for s in pipe.stages],
    }


def print_summary(summary: dict[str, Any], console: Console) -> None:
    """The base-vs-tuned table, the gate and per-stage wall time."""
    from tunesmith.eval.compare import print_comparison, print_gates

    print_comparison(summary["metrics"], summary["confidence"], f"Base vs tuned: {summary['model']}", console)
    print_gates(summary.get("gates") or [summary["gate"]], console)
    if summary.get("verdict"):
        from tunesmith.eval.verdict import print_verdict

        print_verdict(summary["verdict"], console)
    if summary.get("parity"):
        from tunesmith.export.parity import print_parity

        print_parity(summary["parity"], console)
    if summary.get("diagnosis"):
        counts = summary["diagnosis"].get("counts") or {}
        flagged = [f for f in summary["diagnosis"].get("findings", []) if f.get("severity") in ("warning", "error")]
        console.print("Diagnosis: " + (", ".join(f"{f['severity']}: {f['title']}" for f in flagged[:6])
                                       if flagged else "nothing flagged")
                      + (f" ({counts})" if counts and not flagged else "") + " — `tunesmith diagnose` for evidence")
    stage_times = [f"{s['stage']} " + ("cached" if s["cached"] else f"{s['wall_s']:.0f}s") for s in summary["stages"]]
    stages = "  ".join(stage_times)
    console.print(f"Stages: {stages}")
    tr = summary["train"]
    if tr.get("steps") is not None:
        cost = summary.get("train_cost_usd")
        held = f" (held-out {tr['eval_loss']:.3f})" if tr.get("eval_loss") is not None else ""
        console.print(f"Training: {tr['steps']} steps, loss {tr['train_loss']:.3f}{held}, {tr['wall_s']:.0f} s"
                      + (f", ${cost:.4f}" if cost is not None else "")
                      + f" ({tr['trainable_params']:,} trainable parameters, {tr['precision']})")
    if summary.get("report"):
        console.print(f"Report: {summary['report']}")


def load_summary(project: Path) -> dict[str, Any] | None:
    f = Path(project) / ".tunesmith" / "summary.json"
    return json.loads(f.read_text()) if f.exists() else None
