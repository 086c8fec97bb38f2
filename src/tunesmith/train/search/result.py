"""The search's result: the best feasible trial, the config it stands for, and the summary (every trial, the chosen
recipe, why, and how it compares with the project's own recipe on the same validation cases)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunesmith.config import Config
from tunesmith.data.io import read_jsonl
from tunesmith.errors import Problem, TunesmithError
from tunesmith.eval.stats import paired_change
from tunesmith.train.search.space import apply_params
from tunesmith.train.search.study import direction_of, time_spent, trial_seconds

if TYPE_CHECKING:
    from tunesmith.train.search.guard import ForgettingGuard


@dataclass
class SearchResult:
    best_config: Config
    best_run: Path | None
    summary: dict[str, Any]


def result_of(
    study, cfg: Config, space: dict, metric: str, budget_s: float, guard: ForgettingGuard | None, reason: str
) -> SearchResult:
    """The best feasible trial (ties go to the earlier, so the project's own recipe wins a tie), the config it
    stands for, and the summary: every trial, the chosen recipe, and how it compares with the default on the same
    validation cases."""
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("duplicate")]
    best = _best_feasible(trials, metric, reason)
    default = next((t for t in trials if t.user_attrs.get("default")), None)
    vs_default = None
    if default is not None and default.state == TrialState.COMPLETE and default.number != best.number:
        vs_default = paired_on_validation(default, best, metric, cfg)
    summary = {
        "metric": metric,
        "direction": direction_of(metric),
        "budget_s": budget_s,
        "spent_s": time_spent(study),
        "stopped": reason,
        "study": study.study_name,
        "storage": cfg.tune.storage or "project",
        "space": space,
        "trials": [_trial_row(t) for t in trials if t.state != TrialState.WAITING],
        "best": {"number": best.number, "params": best.params, "value": best.value, "run": best.user_attrs.get("run")},
        "default": None
        if default is None
        else {"number": default.number, "value": default.value, "state": default.state.name.lower()},
        "vs_default": vs_default,
        "constraint": guard.describe() if guard else None,
        "why": why_chosen(best, default, vs_default, metric),
    }
    # a reused run is the project's own recipe as configured, which its trial's params may only approximate
    # (a choice the space lacks snapped to the nearest, `epochs: auto` counted before mixing)
    best_config = cfg if best.user_attrs.get("reused") else apply_params(cfg, best.params)
    return SearchResult(best_config, Path(best.user_attrs["run"]), summary)


def _best_feasible(trials: list, metric: str, reason: str):
    """The best completed trial within the constraints (ties to the earlier); an error when none qualifies."""
    from optuna.trial import TrialState

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
    sign = 1 if direction_of(metric) == "maximize" else -1
    return max(feasible, key=lambda t: (sign * t.value, -t.number))


def _trial_row(t) -> dict[str, Any]:
    """One trial as the summary lists it."""
    return {
        "number": t.number,
        "params": t.params,
        "state": t.state.name.lower(),
        "value": t.value,
        "wall_s": trial_seconds(t),
        "run": t.user_attrs.get("run"),
        "default": bool(t.user_attrs.get("default")),
        "reused": bool(t.user_attrs.get("reused")),  # the project's own run, trained before the search
        "forgetting": t.user_attrs.get("forgetting"),
        "selection": t.user_attrs.get("selection"),
    }


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
    samples, confidence = cfg.eval.bootstrap_samples, cfg.eval.confidence
    delta, low, high, direction, _ = paired_change(before, after, samples, confidence)  # the comparison's own rule
    return {
        "delta": delta,
        "ci_low": low,
        "ci_high": high,
        "n": len(ids),
        "confidence": cfg.eval.confidence,
        "significant": direction == (1 if direction_of(metric) == "maximize" else -1),
    }
