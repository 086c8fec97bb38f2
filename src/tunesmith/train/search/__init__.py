"""A budgeted recipe search: Optuna chooses the recipe by the task's own generated answers on the validation split.

    result = search_recipe(cfg, pipe, model_ref, st_split, schema, budget_minutes=30)
    result.best_config          # the project's config with the best trial's recipe
    result.summary              # trials, the chosen recipe and why (for summary.json and the report)

Each trial is an ordinary train run (`tunesmith.pipeline.training.train_stage`) in the run registry, its checkpoint
chosen
on validation (`tunesmith.train.selection`); every validation evaluation is reported to Optuna's pruner
(Hyperband by default), which stops a trial falling behind the others at the same amount of training. The first
trial is the project's own recipe, so the search is measured against it (a run of it already trained by `run` or
`train` is reused, not trained again). The study lives in the project
(`.tunesmith/tune/study.db`, SQLite) or in `tune.storage` (a database URL or a journal file), so a killed search
resumes where it was, and several processes or machines can work on one study at once. The budget counts the
study's trial time: a search run again with the same budget starts no new trial.

The project's other gates are respected as constraints where they can be without reading the test set: a gate on
the general probe is checked on probe prompts the gate does not use, against the base model on the same prompts.
The test split is never read here.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from tunesmith.config import Config
from tunesmith.train.search.guard import ForgettingGuard, spare_probe
from tunesmith.train.search.result import SearchResult, result_of
from tunesmith.train.search.space import default_params, search_space
from tunesmith.train.search.study import ensure_default, open_study, reap_dead_trials, stop_reason
from tunesmith.train.search.trials import OwnRunFn, TrainFn, TrialRun, run_trial

__all__ = ["ForgettingGuard", "OwnRunFn", "SearchResult", "TrainFn", "TrialRun", "search_recipe", "spare_probe"]

console = Console(stderr=True)


def search_recipe(
    cfg: Config,
    project: Path,
    split_key: str,
    model_identity: str,
    n_train: int,
    train: TrainFn,
    guard: ForgettingGuard | None = None,
    budget_minutes: float | None = None,
    max_trials: int | None = None,
    own_run: OwnRunFn | None = None,
    n_labels: int | None = None,
) -> SearchResult:
    """Search the recipe within the budget, each trial trained by `train`; returns the project's config with the
    best trial's recipe, its run, and the summary (trials, the chosen recipe and why). `own_run()`: the project's
    own recipe already trained (by `run` or `train`), which the first trial then reuses, or None. `n_train`: the
    examples the project's own recipe trains on (general data and repeats included), `n_labels`: a label task's
    labels, both counted as the trainer counts them for `epochs: auto`."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    budget_s = 60 * (budget_minutes or cfg.tune.budget_minutes)
    max_trials = cfg.tune.max_trials if max_trials is None else max_trials
    space, metric = search_space(cfg), _metric(cfg)
    study = open_study(cfg, project, split_key, model_identity, space, metric, n_train, n_labels)
    reap_dead_trials(study)
    ensure_default(study, default_params(cfg, space, n_train, n_labels))
    console.print(
        f"[bold]Recipe search[/bold] over {', '.join(space)} by validation {metric}: budget "
        f"{budget_s / 60:.0f} min, study {study.study_name}"
    )
    while (reason := stop_reason(study, budget_s, max_trials)) is None:
        run_trial(study, cfg, space, train, guard, budget_s, own_run)
    console.print(f"[dim]· search: {reason}[/dim]")
    return result_of(study, cfg, space, metric, budget_s, guard, reason)


def _metric(cfg: Config) -> str:
    from tunesmith.train.selection import select_metric

    return select_metric(cfg)
