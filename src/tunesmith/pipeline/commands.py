"""The verbs that run stages: `tunesmith run` (`run_project`), `train` (`train_project`), `tune`
(`tune_project`), and the token count of `tunesmith cost PROJECT` (`project_tokens`).

    summary = run_project("examples/support-triage", overrides=["train.epochs=2"])
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tunesmith.config import Config, load_config
from tunesmith.data.project import mix_general, oversample, read_records
from tunesmith.errors import Problem, TunesmithError
from tunesmith.eval.verdict import with_parity
from tunesmith.pipeline.evaluation import (
    EvalPlan,
    baseline_stages,
    compare_stage,
    eval_base_stage,
    eval_plan,
    eval_tuned_stage,
)
from tunesmith.pipeline.machinery import Pipeline, Stage
from tunesmith.pipeline.named_baselines import named_baseline_stages
from tunesmith.pipeline.preparation import Prepared, data_stages, prepare
from tunesmith.pipeline.shipping import shipping_stages
from tunesmith.pipeline.summary import build_summary, save_summary, write_report
from tunesmith.pipeline.training import (
    general_to_count,
    search_stage,
    search_train_stage,
    train_stage,
    trained_model,
)


def train_project(path: str | Path, overrides: list[str] | None = None, check_only: bool = False, resume: str = "auto"):
    """`tunesmith train`: check, split and train (each cached), without the evaluations; returns the train stage.
    `resume`: "auto" continues an interrupted run of the same settings, "require" fails when there is none,
    "fresh" discards it. With `check_only`, run the training invariants (`tunesmith.train.invariants`) on the
    project's model, recipe and training records instead, and return their results."""
    p = prepare(*load_config(path, overrides), with_suites=False)
    if check_only:
        from tunesmith.train.invariants import check_invariants

        return check_invariants(p.cfg, p.model_ref, read_records(p.st_split.run_dir / "train.jsonl"))
    return train_stage(p.cfg, p.pipe, p.model_ref, p.st_split, p.schema, resume)


def tune_project(
    path: str | Path,
    overrides: list[str] | None = None,
    budget_minutes: float | None = None,
    max_trials: int | None = None,
):
    """`tunesmith tune`: check, split, then the budgeted recipe search on the validation split (the test split is
    not read); returns the SearchResult. `tunesmith run --tune` goes on to evaluate the best recipe."""
    p = prepare(*load_config(path, overrides), with_suites=False)
    return search_stage(p.cfg, p.pipe, p.model_ref, p.st_split, p.schema, budget_minutes, max_trials)


def project_tokens(cfg: Config, project: Path, model_ref, recipe):
    """`tunesmith cost PROJECT`'s count: check and split the project (cached stages, as `tunesmith train` does), mix
    in its general data, repeat what `train.oversample` repeats and count the tokens of every training example
    (`tunesmith.cost.count_tokens`). `builtin:self` replies not made yet are counted at their token limit, with
    a note saying so."""
    from tunesmith.cost import count_tokens
    from tunesmith.data.project import load_schema

    schema = load_schema(cfg, project)
    st_split = data_stages(cfg, project, Pipeline(project), model_ref, schema)
    records = oversample(read_records(st_split.run_dir / "train.jsonl"), cfg)
    files, stand_ins, notes = general_to_count(cfg, project, model_ref, len(records))
    records = mix_general(records, files, cfg, stand_ins)
    counted = count_tokens(cfg, records, model_ref, recipe)
    return replace(counted, notes=notes)


@dataclass
class Trained:
    """What the train step of `run_project` gives the evaluations: its stage, the model it made, the search."""

    stage: Stage
    ref: Any
    adapter: Path | None
    search: Any = None  # the SearchResult of `--tune`


@dataclass
class Evaluated:
    """The evaluation stages of `run_project`: the plan, base and tuned on the test split, their comparison."""

    plan: EvalPlan
    base: Stage
    tuned: Stage
    compare: Stage


def run_project(
    path: str | Path, overrides: list[str] | None = None, tune: bool = False, budget_minutes: float | None = None
) -> dict[str, Any]:
    """The whole flow on a project directory; returns the summary (also written to summary.json). With `tune`, the
    recipe is searched first (`tunesmith.train.search`, within `budget_minutes` or `tune.budget_minutes`)."""
    from tunesmith.diagnose import diagnose_stage

    cfg, project = load_config(path, overrides)
    refuse_reward_model(cfg)
    p = prepare(cfg, project, with_suites=True)  # 1-2. check, split
    p, trained = train_step(p, tune, budget_minutes)  # 3. train (or search, then the best recipe)
    ev = evaluation_steps(p, trained)  # 4-6. eval base + tuned, baselines, compare
    st_diag = diagnose_stage(p.cfg, p.pipe, p.st_split, ev.base, ev.tuned, trained.stage)  # 6b. diagnose
    parity = shipping_stages(
        p.cfg,
        p.pipe,
        ev.plan,
        p.st_split,
        trained.stage,
        ev.tuned,  # 7-8. export, parity
        trained.ref,
        trained.adapter,
        p.schema,
        ev.compare,  # what the exports' model cards show
    )
    summary = run_summary(p, trained, ev, st_diag, parity)
    save_summary(project, ev.compare, summary)
    summary["report"] = write_report(project, summary)
    return summary


def refuse_reward_model(cfg: Config) -> None:
    """A reward model is trained (`tunesmith train`), never run: it does not generate."""
    if cfg.train.objective == "reward":
        raise TunesmithError(
            "A reward model is trained, not run",
            [
                Problem(
                    "train.objective: reward",
                    "`tunesmith run` evaluates a model that generates",
                    "use `tunesmith train` to train the reward model, then reward GRPO with it: "
                    "rewards: [{type: reward_model, path: <run>/reward_model}]",
                )
            ],
        )


def train_step(p: Prepared, tune: bool, budget_minutes: float | None) -> tuple[Prepared, Trained]:
    """3. train: the recipe, its checkpoint chosen on validation; with `tune`, searched on the validation split
    first and the best trial's run reused (the project then goes on with the best recipe's config)."""
    search = None
    if tune:
        search = search_stage(p.cfg, p.pipe, p.model_ref, p.st_split, p.schema, budget_minutes)
        p = replace(p, cfg=search.best_config)
        st_train = search_train_stage(p.pipe, search)
    else:
        st_train = train_stage(p.cfg, p.pipe, p.model_ref, p.st_split, p.schema)
    tuned_ref, adapter = trained_model(st_train, p.model_ref)
    return p, Trained(st_train, tuned_ref, adapter, search)


def evaluation_steps(p: Prepared, trained: Trained) -> Evaluated:
    """4. the test split, read for the first time: the base and the tuned model on the same cases, same decoding;
    5. the alternatives on the same test cases (a classical classifier, few-shot prompting, and the named ones: an
    endpoint, recorded replies); 6. compare, gates and the verdict."""
    plan = eval_plan(p.cfg, p.project, p.st_split, p.model_ref, p.schema, p.suites)
    st_base = eval_base_stage(p.cfg, p.pipe, plan, p.model_ref, p.schema)
    st_tuned = eval_tuned_stage(p.cfg, p.pipe, plan, trained.stage, trained.ref, trained.adapter, p.schema)
    st_baselines = baseline_stages(p.cfg, p.pipe, plan, p.st_split, p.model_ref, p.schema)
    st_baselines.update(named_baseline_stages(p.cfg, p.pipe, plan, p.model_ref, p.schema))  # endpoint, recorded
    return Evaluated(plan, st_base, st_tuned, compare_stage(p.cfg, p.pipe, st_base, st_tuned, st_baselines))


def run_summary(p: Prepared, trained: Trained, ev: Evaluated, st_diag: Stage, parity: list | None) -> dict[str, Any]:
    """The run's summary: `build_summary`, the diagnosis, parity, the search, and the cost per successful task of
    base and tuned (`tunesmith.cost.eval_costs`, from this summary, not from disk)."""
    from tunesmith.cost import eval_costs

    summary = build_summary(p.cfg, p.pipe, ev.compare.result, ev.base.result, ev.tuned.result, trained.stage.result)
    summary["diagnosis"] = {k: v for k, v in st_diag.result.items() if k not in ("stage_wall_s", "completed_at")}
    if parity is not None:
        summary["parity"] = parity
        summary["verdict"] = with_parity(summary.get("verdict"), parity)  # a model ships as an export
    if trained.search is not None:
        summary["search"] = trained.search.summary
    summary["cost"] = eval_costs(p.project, p.cfg.budget.hourly_usd, summary)
    return summary
