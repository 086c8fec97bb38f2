"""The study: where it is stored and what it is called (the same on every machine), how it is opened, the trials a
killed search left behind, the project's own recipe queued first, and the budget that says when to stop."""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from pathlib import Path
from typing import Any

from tunesmith.config import Config, flat_train
from tunesmith.errors import Problem, TunesmithError
from tunesmith.train.result import TrainResult


def storage_of(cfg: Config, project: Path):
    """The study's storage: `tune.storage` (a database URL, or `journal:///path` for a journal file), else a
    SQLite file in the project."""
    import optuna

    url = cfg.tune.storage
    if url is None:
        path = project / ".tunesmith" / "tune" / "study.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path}"
    if url.startswith("journal://"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(url[len("journal://") :])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path))), url
    try:
        return optuna.storages.RDBStorage(url), url
    except Exception as exc:
        raise TunesmithError(
            "Cannot open the search's storage",
            [
                Problem(
                    "tune.storage",
                    f"{url}: {type(exc).__name__}: {exc}",
                    "sqlite:///path.db, postgresql://user@host/db, mysql://…, or journal:///path.log",
                )
            ],
        ) from None


def study_name(cfg: Config, split_key: str, model: str, space: dict, metric: str) -> str:
    """The same project, split, model and space give the same study, on every machine."""
    fixed = flat_train(cfg.train.model_dump(mode="json"))  # the flat layout: the names studies were made with
    for name in space:
        fixed.pop(name, None)
    blob = json.dumps(
        [
            split_key,
            model,
            fixed,
            cfg.task.model_dump(mode="json"),
            space,
            metric,
            cfg.eval.decoding,
            cfg.eval.max_new_tokens,
        ],
        sort_keys=True,
        default=str,
    )
    return "tunesmith-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def open_study(
    cfg: Config,
    project: Path,
    split_key: str,
    model: str,
    space: dict,
    metric: str,
    n_train: int,
    n_labels: int | None = None,
):
    """Create or load the project's study (TPE sampler with constraints, the configured pruner, its resources in
    training examples seen, `pruner_resources`)."""
    import optuna

    storage, _ = storage_of(cfg, project)
    sampler = optuna.samplers.TPESampler(
        seed=cfg.tune.seed, n_startup_trials=4, constraints_func=lambda t: [t.user_attrs.get("constraint", 0.0)]
    )
    return optuna.create_study(
        study_name=study_name(cfg, split_key, model, space, metric),
        storage=storage,
        direction=direction_of(metric),
        sampler=sampler,
        pruner=pruner(cfg.tune.pruner, *pruner_resources(cfg, space, n_train, n_labels)),
        load_if_exists=True,
    )


def pruner_resources(cfg: Config, space: dict, n_train: int, n_labels: int | None = None) -> tuple[int, int]:
    """(min, max) training examples a trial is judged over: the project's recipe's first validation, and the longest
    trial the space allows. Given, not left to Optuna's `auto`, which waits for a finished trial: the first trial,
    the project's own recipe, then never took its rungs, and no later trial was measured against it."""
    from tunesmith.train.trainer import examples_per_step, resolve_epochs, resolve_eval_steps

    first = resolve_eval_steps(cfg, n_train) * examples_per_step(cfg.train)
    epochs = max(space["epochs"]) if "epochs" in space else resolve_epochs(cfg.train.epochs, n_train, n_labels)
    return first, max(first + 1, math.ceil(n_train * epochs))


def pruner(kind: str, min_resource: int, max_resource: int):
    """The configured Optuna pruner; its steps are training examples seen (comparable across batch sizes)."""
    import optuna

    return {
        "hyperband": lambda: optuna.pruners.HyperbandPruner(
            min_resource=min_resource, max_resource=max_resource, reduction_factor=3
        ),
        "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(
            min_resource=min_resource, reduction_factor=3
        ),
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=1),
        "none": lambda: optuna.pruners.NopPruner(),
    }[kind]()


def direction_of(metric: str) -> str:
    from tunesmith.train.selection import LOWER_IS_BETTER

    return "minimize" if metric in LOWER_IS_BETTER else "maximize"


def reap_dead_trials(study) -> None:
    """Trials left RUNNING by a process of this machine that no longer exists (a killed search) are failed, so
    the search goes on; their time is counted to their last validation (`alive_at`), not to now, so the hours
    between a crash and the next search do not spend the budget. Another machine's trials are left to it: they
    count as running until its own search reaps them."""
    import os
    import socket

    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("host") == socket.gethostname() and not _alive(t.user_attrs.get("pid")):
            alive = t.user_attrs.get("alive_at")
            began = t.datetime_start.timestamp() if t.datetime_start else None
            seconds = max(0.0, alive - began) if alive and began else 0.0
            study._storage.set_trial_user_attr(t._trial_id, "seconds", seconds)  # no public setter for another's
            study.tell(t.number, state=TrialState.FAIL)
    study.set_user_attr("opened_by", f"{socket.gethostname()}:{os.getpid()}")


def _alive(pid: int | None) -> bool:
    import os

    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ensure_default(study, params: dict[str, Any]) -> None:
    """Queue the project's own recipe as a trial unless one is done, queued or running (a killed default trial is
    queued again: the search is measured against it)."""
    from optuna.trial import TrialState

    if not _default_trials(study, (TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING, TrialState.RUNNING)):
        study.enqueue_trial(params, user_attrs={"default": True})


def _default_trials(study, states: tuple) -> list:
    """The study's trials of the project's own recipe in these states."""
    return [t for t in study.get_trials(deepcopy=False, states=states) if t.user_attrs.get("default")]


def duplicate_default(study, trial) -> bool:
    """Whether `trial` is a second copy of the project's own recipe: two workers that opened the study at once
    both found none queued and both queued one (Optuna has no atomic "queue unless queued"); the later copy is
    dropped when asked for, so one worker does not train (or wait for) what another is training."""
    from optuna.trial import TrialState

    if not trial.user_attrs.get("default"):
        return False
    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return any(t.number < trial.number for t in _default_trials(study, live))


def trial_seconds(trial) -> float | None:
    """A trial's time: start to end (to now while it runs), or what was counted for it when it was reaped."""
    import datetime

    if "seconds" in trial.user_attrs:
        return trial.user_attrs["seconds"]
    if trial.datetime_start is None:
        return None
    end = trial.datetime_complete or datetime.datetime.now()
    return (end - trial.datetime_start).total_seconds()


def time_spent(study) -> float:
    from optuna.trial import TrialState

    return sum(trial_seconds(t) or 0 for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING)


def stop_reason(study, budget_s: float, max_trials: int | None) -> str | None:
    """Why no further trial starts (None: start one): the trial count, or the budget (trial time spent so far,
    every worker's counted; no trial starts with less than half a typical trial's time left)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    if max_trials is not None and len(done) >= max_trials:
        return f"{len(done)} trial(s) done (tune.max_trials)"
    spent = time_spent(study)
    left = budget_s - spent
    finished = [trial_seconds(t) for t in trials if t.state == TrialState.COMPLETE and not t.user_attrs.get("cut")]
    typical = statistics.median(finished) if finished else 0.0
    if left <= 0 or (typical and left < typical / 2):
        return (
            f"budget spent ({spent / 60:.1f} of {budget_s / 60:.0f} min of trials; a trial takes about "
            f"{typical / 60:.1f} min here)"
        )
    return None


def too_small(study, result: TrainResult, budget_s: float) -> None:
    """When the budget ran out before any trial could finish: an error saying how long one trial takes here."""
    from optuna.trial import TrialState

    if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return
    steps, planned, wall = result.steps or 0, result.planned_steps or 0, result.wall_s or 0
    estimate = wall * planned / steps if steps and planned else None
    took = (
        f"one trial of this recipe takes about {estimate / 60:.1f} min here ({steps} of {planned} steps in "
        f"{wall:.0f} s)"
        if estimate
        else f"no step finished in {wall:.0f} s"
    )
    raise TunesmithError(
        "The budget is too small for one trial",
        [
            Problem(
                "--budget",
                f"{budget_s / 60:.1f} min: {took}",
                f"raise --budget to at least {math.ceil(1.2 * estimate / 60)}m" if estimate else "raise --budget",
            )
        ],
    )
