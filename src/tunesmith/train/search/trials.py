"""A trial as a train run: its parameters applied to the config within the budget left, each validation value
reported to the pruner, and the outcome told to the study (complete, pruned, cut short by the budget, or failed)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from tunesmith.config import Config
from tunesmith.train.result import TrainResult
from tunesmith.train.search.space import apply_params, suggest
from tunesmith.train.search.study import duplicate_default, time_spent, too_small
from tunesmith.train.trainer import examples_per_step

if TYPE_CHECKING:
    from tunesmith.train.search.guard import ForgettingGuard

console = Console(stderr=True)


@dataclass
class TrialRun:
    """What a trial's training gave: its run directory and the train result (with `selection`)."""

    run_dir: Path
    result: TrainResult


# (config, report(step, value) -> stop?, extra cache inputs) -> TrialRun: the pipeline's train stage
TrainFn = Callable[[Config, Callable[[int, float], bool], dict], TrialRun]
# () -> the project's own recipe's finished train run, or None: what the first trial reuses
OwnRunFn = Callable[[], "TrialRun | None"]


def run_trial(
    study,
    cfg: Config,
    space: dict,
    train: TrainFn,
    guard: ForgettingGuard | None,
    budget_s: float,
    own_run: OwnRunFn | None = None,
) -> None:
    """Ask the study for a trial, train it (reporting each validation value to the pruner) or, for the project's
    own recipe trained before, reuse that run; check the constraints, and tell the study how it went."""
    from optuna.trial import TrialState

    trial = _ask(study)
    try:
        params = suggest(trial, space)
        tcfg, capped = _within_budget(apply_params(cfg, params), budget_s - time_spent(study))
        report, pruned = _pruner_report(trial, tcfg)
        console.print(f"[bold]▶ trial {trial.number}[/bold]: {', '.join(f'{k}={_fmt(v)}' for k, v in params.items())}")
        run = _reused(trial, cfg, own_run) or train(
            tcfg, report, {"search": {"study": study.study_name, "trial": trial.number}}
        )
    except BaseException:
        study.tell(trial, state=TrialState.FAIL)  # its time counts; the next search goes on without it
        raise
    _tell(study, trial, run, pruned, guard, budget_s, cut=run.result.stopped_by_budget and capped)


def _reused(trial, cfg: Config, own_run: OwnRunFn | None) -> TrialRun | None:
    """The project's own recipe's finished run for the default trial (its validation curve told to the pruner as
    if trained now), or None: not the default trial, or no such run with a validation curve."""
    if own_run is None or not trial.user_attrs.get("default"):
        return None
    run = own_run()
    if run is None or not (run.result.selection or {}).get("curve"):
        return None
    report, _ = _pruner_report(trial, cfg)
    for step, value in run.result.selection["curve"]:
        report(step, value)  # the first trial: the pruner's reference, never pruned itself
    trial.set_user_attr("reused", True)
    console.print(f"  trial {trial.number}: the project's own recipe, already trained: reusing {run.run_dir.name}")
    return run


def _ask(study):
    """A new trial, marked with this host and process (so a killed search's trials can be told apart); a second
    copy of the project's own recipe queued by a worker that started at the same time is failed, marked
    `duplicate`, and left out of the summary."""
    import os
    import socket

    from optuna.trial import TrialState

    trial = study.ask()
    while duplicate_default(study, trial):
        trial.set_user_attr("duplicate", True)
        study.tell(trial, state=TrialState.FAIL)
        trial = study.ask()
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    return trial


def _within_budget(tcfg: Config, left_s: float) -> tuple[Config, bool]:
    """The trial's config with its training time capped at what is left of the budget (at least a minute), and
    whether that cap is the search's (where the project's own `budget.max_train_minutes` is the lower, a trial it
    stops has ended as its recipe says, a fair candidate)."""
    left_min = max(1.0, left_s / 60)
    own = tcfg.budget.max_train_minutes
    capped = min(own, left_min) if own else left_min
    update = {"budget": tcfg.budget.model_copy(update={"max_train_minutes": capped})}
    return tcfg.model_copy(update=update), not own or left_min < own


def _pruner_report(trial, tcfg: Config) -> tuple[Callable[[int, float], bool], list[int]]:
    """`report(step, value) -> stop?` for the train stage, and the list that records the step it was pruned at."""
    per_step = examples_per_step(tcfg.train)
    pruned: list[int] = []

    def report(step: int, value: float) -> bool:
        trial.set_user_attr("alive_at", time.time())  # a killed trial's time ends here (reap_dead_trials)
        if not math.isfinite(value):
            return False
        trial.report(value, step * per_step)  # examples seen: comparable across batch sizes
        if trial.should_prune():
            pruned.append(step)
            return True
        return False

    return report, pruned


def _tell(
    study, trial, run: TrialRun, pruned: list[int], guard: ForgettingGuard | None, budget_s: float, cut: bool
) -> None:
    """Record the trial's run and selection, then tell the study: pruned when `cut` short by the search's budget
    (not a fair candidate) or by the pruner, else its validation value with the forgetting constraint."""
    from optuna.trial import TrialState

    selection = run.result.selection or {}
    value = selection.get("best_value")
    trial.set_user_attr("run", str(run.run_dir))
    trial.set_user_attr(
        "selection", {k: selection.get(k) for k in ("best_step", "best_value", "stopped_early", "evaluations", "curve")}
    )
    trial.set_user_attr("cut", cut)
    if cut:  # stopped by the budget, not by its own recipe: not a fair candidate
        console.print(f"  trial {trial.number}: cut short by the budget")
        study.tell(trial, state=TrialState.PRUNED)
        too_small(study, run.result, budget_s)
        return
    if pruned or value is None or not math.isfinite(value):
        console.print(f"  trial {trial.number}: pruned at step {pruned[0] if pruned else '?'}")
        study.tell(trial, state=TrialState.PRUNED)
        return
    check = _check_forgetting(trial, run, guard)
    study.tell(trial, value)
    verdict = "ok" if check is None or check["ok"] else "[red]breaks the gate[/red]"
    probe = "" if check is None else f", general probe {check['delta']:+.3f} {verdict}"
    console.print(f"  trial {trial.number}: validation {_fmt(value)}{probe}")


def _check_forgetting(trial, run: TrialRun, guard: ForgettingGuard | None) -> dict[str, Any] | None:
    """The guard's check of the trial's model, kept on the trial with its constraint (None without a guard)."""
    if guard is None:
        return None
    check = guard.check(run.run_dir, run.result)
    trial.set_user_attr("forgetting", check)
    trial.set_user_attr("constraint", 0.0 if check["ok"] else 1.0)
    return check


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
