"""The summary of a `tunesmith run`: built from its stages, saved once to the compare run and the project
(`summary.json`), drawn as the HTML report, and printed to the terminal by `tunesmith.cli.render`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape

from tunesmith.config import Config
from tunesmith.eval.result import EvalResult
from tunesmith.files import atomic_write_json
from tunesmith.pipeline.machinery import Pipeline, Stage, console
from tunesmith.runs import summary_path
from tunesmith.train.result import TrainResult


def build_summary(
    cfg: Config, pipe: Pipeline, cmp: dict, base: EvalResult, tuned: EvalResult, train: TrainResult
) -> dict[str, Any]:
    """What a person wants from a run: metrics base vs tuned, the gate, what it cost, where everything is."""
    paid = training_paid(pipe, train, cfg.budget.hourly_usd)
    return {
        "project": str(pipe.project),
        "model": cfg.model.base,
        "gate": cmp["gate"],
        "gates": cmp.get("gates", [cmp["gate"]]),
        "verdict": cmp.get("verdict"),
        "baselines": cmp.get("baselines"),
        "side_by_side": cmp.get("side_by_side"),
        "cost_per_success": cmp.get("cost_per_success"),
        "confidence": cmp["confidence"],
        "metrics": cmp["metrics"],
        "base_metrics": base.metrics,
        "tuned_metrics": tuned.metrics,
        "train": {
            k: getattr(train, k)
            for k in (
                "steps",
                "epochs",
                "train_loss",
                "eval_loss",
                "wall_s",
                "step_s",
                "tokens_per_s",
                "trainable_params",
                "precision",
                "stopped_by_budget",
                "recipe",
                "planned_epochs",
                "selection",
                "oversampled",
                "general_examples",
                "general_wanted",
                "general_kl",
            )
        },
        "train_cost_usd": paid["usd"],
        "train_cost": paid,
        "stages": [
            {"stage": s.name, "run": str(s.run_dir), "cached": s.cached, "wall_s": s.wall_s} for s in pipe.stages
        ],
    }


def training_paid(pipe: Pipeline, train: TrainResult, hourly_usd: float | None) -> dict[str, Any]:
    """The training behind the run's model, priced at `hourly_usd`: the final run's wall time (`train`: the chosen
    trial's run with `--tune`, whether trained now or by an earlier run) and the recipe search's other trials
    trained in this run (every train stage that ran, the final one aside), each at its training's wall time."""
    trains = [s for s in pipe.stages if s.name == "train"]
    final = trains[-1].run_dir if trains else None
    trials = [s for s in trains if not s.cached and s.run_dir != final]
    search_s = sum(_trained_seconds(s) for s in trials)
    final_s = train.wall_s or 0.0
    return {
        "hourly_usd": hourly_usd,
        "final_s": final_s,
        "final_usd": _usd(final_s, hourly_usd),
        "final_reused": bool(trains) and not any(s.run_dir == final and not s.cached for s in trains),
        "search_trials": len(trials),
        "search_s": search_s,
        "search_usd": _usd(search_s, hourly_usd),
        "wall_s": final_s + search_s,
        "usd": _usd(final_s + search_s, hourly_usd),
    }


def _trained_seconds(st: Stage) -> float:
    """A train stage's training time (its result's wall time, as the final run's is counted), else the stage's."""
    wall = getattr(st.result, "wall_s", None)
    return float(wall) if wall is not None else st.wall_s


def _usd(seconds: float, hourly_usd: float | None) -> float | None:
    return None if hourly_usd is None else seconds / 3600 * hourly_usd


def save_summary(project: Path, st_cmp: Stage, summary: dict[str, Any]) -> None:
    """Write the summary, once each, into the compare run and to PROJECT/.tunesmith/summary.json."""
    atomic_write_json(st_cmp.run_dir / "summary.json", summary)
    atomic_write_json(summary_path(project), summary)


def write_report(project: Path, summary: dict[str, Any]) -> str | None:
    """The HTML report of a finished run (`tunesmith.report`); a failure to draw it is a warning, never a failed
    run (the results are already written)."""
    from tunesmith.report import build_report

    try:
        return str(build_report(project, summary))
    except Exception as exc:
        console.print(
            f"[yellow]warning:[/yellow] the report could not be written: {type(exc).__name__}: "
            f"{escape(str(exc))} (`tunesmith report {project}` tries again)"
        )
        return None
