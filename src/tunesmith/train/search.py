"""A budgeted recipe search: Optuna chooses the recipe by the task's own generated answers on the validation split.

    result = search_recipe(cfg, pipe, model_ref, st_split, schema, budget_minutes=30)
    result.best_config          # the project's config with the best trial's recipe
    result.summary              # trials, the chosen recipe and why (for summary.json and the report)

Each trial is an ordinary train run (`tunesmith.pipeline.training.train_stage`) in the run registry, its checkpoint
chosen
on validation (`tunesmith.train.selection`); every validation evaluation is reported to Optuna's pruner
(Hyperband by default), which stops a trial falling behind the others at the same amount of training. The first
trial is the project's own recipe, so the search is measured against it. The study lives in the project
(`.tunesmith/tune/study.db`, SQLite) or in `tune.storage` (a database URL or a journal file), so a killed search
resumes where it was, and several processes or machines can work on one study at once. The budget counts the
study's trial time: a search run again with the same budget starts no new trial.

The project's other gates are respected as constraints where they can be without reading the test set: a gate on
the general probe is checked on probe prompts the gate does not use, against the base model on the same prompts.
The test split is never read here.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from tunesmith.config import SEARCH_PARAMS, Config
from tunesmith.data.io import read_jsonl
from tunesmith.errors import Problem, TunesmithError
from tunesmith.eval.stats import bootstrap_delta
from tunesmith.eval.suite import general_probe
from tunesmith.train.trainer import resolve_epochs

console = Console(stderr=True)

# Default ranges: [low, high] (numbers; lr on a log scale) or a list of choices.
DEFAULT_RANGES: dict[str, list[Any]] = {
    "lr": [1e-4, 3e-3],
    "epochs": [1, 10],
    "lora_r": [8, 16, 32, 64],
    "lora_alpha": [1, 2, 4],  # multiples of r
    "batch_size": [4, 8, 16],
    "lora_dropout": [0.0, 0.1],
    "weight_decay": [0.0, 0.1],
    "general_share": [0.0, 0.1, 0.2],
    "method": ["lora", "full"],
    "warmup_ratio": [0.0, 0.1],
}
FULL_LR_SCALE = 0.1  # a full fine-tune's learning rate: a tenth of the LoRA range
LOG_SCALE = {"lr"}
CONSTRAINT_PROMPTS = 30  # general-probe prompts outside the gate's, for the forgetting constraint


@dataclass
class SearchResult:
    best_config: Config
    best_run: Path | None
    summary: dict[str, Any]


@dataclass
class TrialRun:
    """What a trial's training gave: its run directory and the train result (with `selection`)."""

    run_dir: Path
    result: dict[str, Any]


# (config, report(step, value) -> stop?, extra cache inputs) -> TrialRun: the pipeline's train stage
TrainFn = Callable[[Config, Callable[[int, float], bool], dict], TrialRun]


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
) -> SearchResult:
    """Search the recipe within the budget, each trial trained by `train`; returns the project's config with the
    best trial's recipe, its run, and the summary (trials, the chosen recipe and why)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    budget_s = 60 * (budget_minutes or cfg.tune.budget_minutes)
    max_trials = max_trials or cfg.tune.max_trials
    space, metric = search_space(cfg), _metric(cfg)
    study = open_study(cfg, project, split_key, model_identity, space, metric)
    reap_dead_trials(study)
    ensure_default(study, default_params(cfg, space, n_train))
    console.print(
        f"[bold]Recipe search[/bold] over {', '.join(space)} by validation {metric}: budget "
        f"{budget_s / 60:.0f} min, study {study.study_name}"
    )
    while (reason := stop_reason(study, budget_s, max_trials)) is None:
        run_trial(study, cfg, space, train, guard, budget_s)
    console.print(f"[dim]· search: {reason}[/dim]")
    return result_of(study, cfg, space, metric, budget_s, guard, reason)


def run_trial(study, cfg: Config, space: dict, train: TrainFn, guard: ForgettingGuard | None, budget_s: float) -> None:
    """Ask the study for a trial, train it (reporting each validation value to the pruner), check the
    constraints, and tell the study how it went."""
    import os
    import socket

    from optuna.trial import TrialState

    trial = study.ask()
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    params = suggest(trial, space)
    tcfg = apply_params(cfg, params)
    left_min = max(1.0, (budget_s - _spent(study)) / 60)
    budget = tcfg.budget.max_train_minutes
    tcfg = tcfg.model_copy(
        update={
            "budget": tcfg.budget.model_copy(
                update={"max_train_minutes": min(budget, left_min) if budget else left_min}
            )
        }
    )
    per_step = tcfg.train.batch_size * tcfg.train.grad_accum * tcfg.train.nproc
    pruned = []

    def report(step: int, value: float) -> bool:
        if not math.isfinite(value):
            return False
        trial.report(value, step * per_step)  # examples seen: comparable across batch sizes
        if trial.should_prune():
            pruned.append(step)
            return True
        return False

    label = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
    console.print(f"[bold]▶ trial {trial.number}[/bold]: {label}")
    try:
        run = train(tcfg, report, {"search": {"study": study.study_name, "trial": trial.number}})
    except BaseException:
        study.tell(trial, state=TrialState.FAIL)  # its time counts; the next search goes on without it
        raise
    selection = run.result.get("selection") or {}
    value = selection.get("best_value")
    trial.set_user_attr("run", str(run.run_dir))
    trial.set_user_attr(
        "selection", {k: selection.get(k) for k in ("best_step", "best_value", "stopped_early", "evaluations", "curve")}
    )
    cut = bool(run.result.get("stopped_by_budget"))
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
    if guard is not None:
        check = guard.check(run.run_dir, run.result)
        trial.set_user_attr("forgetting", check)
        trial.set_user_attr("constraint", 0.0 if check["ok"] else 1.0)
    study.tell(trial, value)
    console.print(
        f"  trial {trial.number}: validation {_fmt(value)}"
        + (
            ""
            if guard is None
            else f", general probe {trial.user_attrs['forgetting']['delta']:+.3f} "
            + ("ok" if trial.user_attrs["forgetting"]["ok"] else "[red]breaks the gate[/red]")
        )
    )


def reap_dead_trials(study) -> None:
    """Trials left RUNNING by a process of this machine that no longer exists (a killed search) are failed, so
    their time counts and the search goes on; other machines' trials are theirs (Optuna's heartbeat fails them)."""
    import os
    import socket

    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("host") == socket.gethostname() and not _alive(t.user_attrs.get("pid")):
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

    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING, TrialState.RUNNING)
    if not any(t.user_attrs.get("default") and t.state in live for t in study.get_trials(deepcopy=False)):
        study.enqueue_trial(params, user_attrs={"default": True})


def too_small(study, result: dict, budget_s: float) -> None:
    """When the budget ran out before any trial could finish: an error saying how long one trial takes here."""
    from optuna.trial import TrialState

    if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return
    steps, planned, wall = result.get("steps") or 0, result.get("planned_steps") or 0, result.get("wall_s") or 0
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


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _spent(study) -> float:
    from optuna.trial import TrialState

    return sum(_duration(t) or 0 for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING)


def search_space(cfg: Config) -> dict[str, list[Any]]:
    """{param: range} for `tune.params`, with `tune.ranges` replacing defaults; bad ranges name the valid form."""
    problems = []
    for name in cfg.tune.ranges:
        if name not in SEARCH_PARAMS:
            problems.append(
                Problem(f"tune.ranges.{name}", "not a search parameter", f"valid: {', '.join(SEARCH_PARAMS)}")
            )
    space = {}
    for name in cfg.tune.params:
        rng = [_number(x) for x in cfg.tune.ranges.get(name, DEFAULT_RANGES[name])]
        if len(rng) < 2:
            problems.append(
                Problem(
                    f"tune.ranges.{name}",
                    "needs [low, high] or two or more choices",
                    f"default: {DEFAULT_RANGES[name]}",
                )
            )
        space[name] = rng
    if "general_share" in space and not cfg.train.general_data:
        problems.append(
            Problem(
                "tune.params: general_share",
                "no general data to mix in",
                "set train.general_data (e.g. the base model's own replies to general prompts, "
                "`tunesmith data distill`), or drop general_share",
            )
        )
    if problems:
        raise TunesmithError("Bad search space", problems)
    return space


def _number(value: Any) -> Any:
    """A number written as text (YAML reads `1e-4` as a string) as the number; anything else as it is."""
    if not isinstance(value, str):
        return value
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number


def _is_range(name: str, rng: list[Any]) -> bool:
    """A numeric [low, high] range (as opposed to a list of choices)."""
    return (
        len(rng) == 2
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in rng)
        and name in ("lr", "epochs", "lora_dropout", "weight_decay", "warmup_ratio")
    )


def suggest(trial, space: dict[str, list[Any]]) -> dict[str, Any]:
    """The trial's parameters from the space (lr on a log scale; epochs as whole passes)."""
    params: dict[str, Any] = {}
    for name, rng in space.items():
        if not _is_range(name, rng):
            params[name] = trial.suggest_categorical(name, rng)
        elif name == "epochs":
            params[name] = trial.suggest_int(name, int(rng[0]), int(rng[1]))
        else:
            params[name] = trial.suggest_float(name, float(rng[0]), float(rng[1]), log=name in LOG_SCALE)
    return params


def apply_params(cfg: Config, params: dict[str, Any]) -> Config:
    """The config with a trial's parameters in `train` (alpha given as a multiple of r; a full fine-tune's
    learning rate scaled down)."""
    train = cfg.train.model_dump()
    for name, value in params.items():
        train[name] = value
    if "lora_alpha" in params:
        train["lora_alpha"] = int(params["lora_alpha"] * train["lora_r"])
    if train["method"] == "full" and "lr" in params:
        train["lr"] = params["lr"] * FULL_LR_SCALE
    if train["method"] == "full":
        train["dora"] = train["rslora"] = False
    return cfg.model_copy(update={"train": type(cfg.train).model_validate(train)})


def default_params(cfg: Config, space: dict[str, list[Any]], n_train: int) -> dict[str, Any]:
    """The project's own recipe in the space's terms (the first trial: what the search must beat); a choice the
    space lacks is replaced by the nearest one."""
    t = cfg.train
    values = {
        "lr": t.lr,
        "epochs": int(round(resolve_epochs(t.epochs, n_train))),
        "lora_r": t.lora_r,
        "lora_alpha": t.lora_alpha / t.lora_r,
        "batch_size": t.batch_size,
        "lora_dropout": t.lora_dropout,
        "weight_decay": t.weight_decay,
        "general_share": t.general_share,
        "method": t.method,
        "warmup_ratio": t.warmup_ratio,
    }
    if t.method == "full":
        values["lr"] = t.lr / FULL_LR_SCALE
    out = {}
    for name, rng in space.items():
        value = values[name]
        if _is_range(name, rng):
            out[name] = min(max(value, rng[0]), rng[1])
        else:
            out[name] = value if value in rng else min(rng, key=lambda c: _distance(c, value))
    return out


def _distance(choice: Any, value: Any) -> float:
    try:
        return abs(float(choice) - float(value))
    except (TypeError, ValueError):
        return 0.0 if choice == value else 1.0


def _metric(cfg: Config) -> str:
    from tunesmith.train.selection import select_metric

    return select_metric(cfg)


def _direction(metric: str) -> str:
    from tunesmith.train.selection import LOWER_IS_BETTER

    return "minimize" if metric in LOWER_IS_BETTER else "maximize"


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
    fixed = cfg.train.model_dump(mode="json")
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


def open_study(cfg: Config, project: Path, split_key: str, model: str, space: dict, metric: str):
    """Create or load the project's study (TPE sampler with constraints, the configured pruner)."""
    import optuna

    storage, _ = storage_of(cfg, project)
    sampler = optuna.samplers.TPESampler(
        seed=cfg.tune.seed, n_startup_trials=4, constraints_func=lambda t: [t.user_attrs.get("constraint", 0.0)]
    )
    return optuna.create_study(
        study_name=study_name(cfg, split_key, model, space, metric),
        storage=storage,
        direction=_direction(metric),
        sampler=sampler,
        pruner=_pruner(cfg.tune.pruner),
        load_if_exists=True,
    )


def _pruner(kind: str):
    import optuna

    return {
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3),
        "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(reduction_factor=3),
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=1),
        "none": lambda: optuna.pruners.NopPruner(),
    }[kind]()


def _duration(trial) -> float | None:
    import datetime

    if trial.datetime_start is None:
        return None
    end = trial.datetime_complete or datetime.datetime.now()
    return (end - trial.datetime_start).total_seconds()


def stop_reason(study, budget_s: float, max_trials: int | None) -> str | None:
    """Why no further trial starts (None: start one): the trial count, or the budget (trial time spent so far,
    every worker's counted; no trial starts with less than half a typical trial's time left)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    if max_trials is not None and len(done) >= max_trials:
        return f"{len(done)} trial(s) done (tune.max_trials)"
    spent = _spent(study)
    left = budget_s - spent
    finished = [_duration(t) for t in trials if t.state == TrialState.COMPLETE and not t.user_attrs.get("cut")]
    typical = statistics.median(finished) if finished else 0.0
    if left <= 0 or (typical and left < typical / 2):
        return (
            f"budget spent ({spent / 60:.1f} of {budget_s / 60:.0f} min of trials; a trial takes about "
            f"{typical / 60:.1f} min here)"
        )
    return None


def result_of(
    study, cfg: Config, space: dict, metric: str, budget_s: float, guard: ForgettingGuard | None, reason: str
) -> SearchResult:
    """The best feasible trial (ties go to the earlier, so the project's own recipe wins a tie), the config it
    stands for, and the summary: every trial, the chosen recipe, and how it compares with the default on the same
    validation cases."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    feasible = [t for t in done if t.user_attrs.get("constraint", 0.0) <= 0]
    if not feasible:
        raise TunesmithError(
            "No recipe qualifies",
            [
                Problem(
                    "tune",
                    f"{len(done)} trial(s) finished, none within the other gates"
                    if done
                    else f"no trial finished ({reason})",
                    "raise --budget, or loosen the general-probe gate (eval.gates), or add general data "
                    "(train.general_data and tune.params: general_share)",
                )
            ],
        )
    sign = 1 if _direction(metric) == "maximize" else -1
    best = max(feasible, key=lambda t: (sign * t.value, -t.number))
    default = next((t for t in trials if t.user_attrs.get("default")), None)
    rows = [
        {
            "number": t.number,
            "params": t.params,
            "state": t.state.name.lower(),
            "value": t.value,
            "wall_s": _duration(t),
            "run": t.user_attrs.get("run"),
            "default": bool(t.user_attrs.get("default")),
            "forgetting": t.user_attrs.get("forgetting"),
            "selection": t.user_attrs.get("selection"),
        }
        for t in trials
        if t.state != TrialState.WAITING
    ]
    vs_default = None
    if default is not None and default.state == TrialState.COMPLETE and default.number != best.number:
        vs_default = paired_on_validation(default, best, metric, cfg)
    summary = {
        "metric": metric,
        "direction": _direction(metric),
        "budget_s": budget_s,
        "spent_s": _spent(study),
        "stopped": reason,
        "study": study.study_name,
        "storage": cfg.tune.storage or "project",
        "space": space,
        "trials": rows,
        "best": {"number": best.number, "params": best.params, "value": best.value, "run": best.user_attrs.get("run")},
        "default": None
        if default is None
        else {"number": default.number, "value": default.value, "state": default.state.name.lower()},
        "vs_default": vs_default,
        "constraint": guard.describe() if guard else None,
        "why": why_chosen(best, default, vs_default, metric),
    }
    return SearchResult(apply_params(cfg, best.params), Path(best.user_attrs["run"]), summary)


def why_chosen(best, default, vs_default: dict | None, metric: str) -> str:
    """One sentence: why this recipe."""
    if default is None or best.number == default.number:
        return f"the project's own recipe had the best validation {metric} ({best.value:.3f})"
    text = f"trial {best.number} had the best validation {metric}: {best.value:.3f}"
    if default.value is not None:
        text += f" against {default.value:.3f} for the project's own recipe"
    if vs_default:
        text += (
            f" (paired delta {vs_default['delta']:+.3f}, {vs_default['confidence']:.0%} CI "
            f"{vs_default['ci_low']:+.3f} .. {vs_default['ci_high']:+.3f} on {vs_default['n']} cases)"
        )
    return text


SCORE_KEYS = {
    "task_accuracy": "task_correct",
    "format_validity": "format_valid",
    "behavior_accuracy": "behavior_correct",
    "token_limit_rate": "hit_token_limit",
}


def paired_on_validation(a, b, metric: str, cfg: Config) -> dict[str, Any] | None:
    """Trial b against trial a on the same validation cases (each at its chosen step): delta and bootstrap CI."""
    key = SCORE_KEYS.get(metric)
    rows = []
    for t in (a, b):
        step = (t.user_attrs.get("selection") or {}).get("best_step")
        path = Path(t.user_attrs.get("run", "")) / "validation" / f"step-{step}" / "results.jsonl"
        if key is None or step is None or not path.exists():
            return None
        rows.append({r["id"]: r["scores"].get(key) for _, r in read_jsonl(path)})
    ids = [i for i in rows[0] if rows[0][i] is not None and rows[1].get(i) is not None]
    if not ids:
        return None
    before, after = [float(rows[0][i]) for i in ids], [float(rows[1][i]) for i in ids]
    delta, low, high = bootstrap_delta(before, after, cfg.eval.bootstrap_samples, cfg.eval.confidence)
    return {
        "delta": delta,
        "ci_low": low,
        "ci_high": high,
        "n": len(ids),
        "confidence": cfg.eval.confidence,
        "significant": low > 0 if _direction(metric) == "maximize" else high < 0,
    }


class ForgettingGuard:
    """A gate on the general probe, as a search constraint: each trial's model on probe prompts the gate does not
    use, against the base model on the same prompts; a trial whose drop breaks the gate's `min_delta` is not
    chosen."""

    def __init__(
        self, cases: list, gate, evaluate_fn: Callable[[Path | None, dict | None], float], base_value: float
    ) -> None:
        self.cases, self.gate, self.evaluate_fn, self.base_value = cases, gate, evaluate_fn, base_value

    @classmethod
    def for_project(
        cls, cfg: Config, evaluate_fn: Callable[[Path | None, dict | None], float]
    ) -> ForgettingGuard | None:
        """The guard for the first general-probe gate, when the probe has prompts the gate does not use;
        `evaluate_fn(run_dir, train_result)` scores a trial's model (None, None: the base) on `spare_probe(cfg)`."""
        gate = next((g for g in [cfg.eval.gate, *cfg.eval.gates] if g.metric.startswith("general.")), None)
        cases = spare_probe(cfg)
        if gate is None or not cfg.eval.general_probe or len(cases) < 10:
            return None
        return cls(cases, gate, evaluate_fn, evaluate_fn(None, None))

    def check(self, run_dir: Path, result: dict) -> dict[str, Any]:
        value = self.evaluate_fn(run_dir, result)
        delta = value - self.base_value
        return {
            "value": value,
            "base": self.base_value,
            "delta": delta,
            "ok": delta > self.gate.min_delta,
            "n": len(self.cases),
        }

    def describe(self) -> str:
        return (
            f"{self.gate.metric} must not drop by more than {-self.gate.min_delta:.3f}: checked on "
            f"{len(self.cases)} probe prompts the gate does not use (base {self.base_value:.3f})"
        )


def spare_probe(cfg: Config) -> list:
    """General-probe prompts the project's evaluation does not use (those after `eval.general_probe_limit`)."""
    used = cfg.eval.general_probe_limit
    if not used:
        return []
    return general_probe()[used : used + CONSTRAINT_PROMPTS]
