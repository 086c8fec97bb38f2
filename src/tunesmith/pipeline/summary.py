"""The summary of a `tunesmith run`: built from its stages, saved once to the compare run and the project
(`summary.json`), drawn as the HTML report, and printed to the terminal (`print_summary`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from tunesmith.config import Config
from tunesmith.data.io import atomic_write_json
from tunesmith.pipeline.machinery import Pipeline, Stage, console
from tunesmith.runs import summary_path


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
    except Exception as exc:  # noqa: BLE001 - see the docstring
        console.print(f"[yellow]warning:[/yellow] the report could not be written: {type(exc).__name__}: "
                      f"{escape(str(exc))} (`tunesmith report {project}` tries again)")
        return None


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
        print_diagnosis(summary["diagnosis"], console)
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


def print_diagnosis(diagnosis: dict[str, Any], console: Console) -> None:
    """One line: the diagnosis's warnings and errors (the first six), or that nothing was flagged."""
    counts = diagnosis.get("counts") or {}
    flagged = [f for f in diagnosis.get("findings", []) if f.get("severity") in ("warning", "error")]
    console.print("Diagnosis: " + (", ".join(f"{f['severity']}: {f['title']}" for f in flagged[:6])
                                   if flagged else "nothing flagged")
                  + (f" ({counts})" if counts and not flagged else "") + " — `tunesmith diagnose` for evidence")
