"""`tunesmith run`, `tunesmith tune`, `tunesmith train`: the flow, the recipe search, training alone.

tunesmith run my-project --set train.epochs=2
tunesmith tune my-project --budget 30m
tunesmith train my-project --method qlora --resume
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from tunesmith.cli.options import BUDGET_HELP, SET_HELP, console, minutes

PROJECT = typer.Argument(..., help="Project directory holding tunesmith.yaml.")


def register(app: typer.Typer) -> None:
    """Add `run`, `tune` and `train` to the main app."""
    app.command("run")(run)
    app.command("tune")(tune_cmd)
    app.command("train")(train)


def run(
    project: Path = PROJECT,
    tune: bool = typer.Option(
        False, "--tune", help="Search the recipe first (`tunesmith tune`), then train, evaluate and gate the best one."
    ),
    budget: str | None = typer.Option(None, help=BUDGET_HELP),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Walk the whole flow: check -> split -> train (checkpoint chosen on validation) -> eval base and tuned on the
    test split -> compare with the cheapest alternatives -> verdict. Exit 1 unless the verdict is to ship."""
    from tunesmith.cli.render import print_allocator, print_recipe, print_summary
    from tunesmith.config import load_config, recipe_sources
    from tunesmith.pipeline import run_project

    print_recipe(recipe_sources(load_config(project, set_)[0], project, set_), console(), searched=tune)
    print_allocator(console())
    summary = run_project(project, set_, tune=tune, budget_minutes=minutes(budget))
    print_summary(summary, console())
    verdict = summary.get("verdict") or {"ship": summary["gate"]["passed"]}
    raise typer.Exit(0 if verdict["ship"] else 1)


def tune_cmd(
    project: Path = PROJECT,
    budget: str | None = typer.Option(None, help=BUDGET_HELP),
    trials: int | None = typer.Option(None, min=1, help="At most this many trials (tune.max_trials)."),
    storage: str | None = typer.Option(
        None,
        help="Optuna storage URL shared by several machines "
        "(tune.storage), e.g. postgresql://host/db or journal:///nfs/s.log.",
    ),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Search the recipe (learning rate, epochs, LoRA rank and alpha, ...) within a budget, by the task's own
    generated answers on the validation split; the test split is not read. Run it again to resume."""
    from tunesmith.cli.render import print_allocator, trials_table
    from tunesmith.config import update_overrides
    from tunesmith.pipeline import tune_project

    overrides = list(set_) + (update_overrides({"tune": {"storage": storage}}) if storage else [])
    print_allocator(console())
    result = tune_project(project, overrides, minutes(budget), trials)
    con = console()
    con.print(trials_table(result.summary))
    con.print(f"Chosen: {result.summary['why']}")
    con.print(f"Best run: {result.best_run}\n`tunesmith run {project} --tune` evaluates it on the test split.")


def train(
    project: Path = PROJECT,
    method: Literal["lora", "qlora", "full"] | None = typer.Option(
        None, help="lora, qlora or full (overrides train.method)."
    ),
    objective: Literal["sft", "dpo", "grpo", "reward"] | None = typer.Option(
        None, help="sft, dpo, grpo or reward (overrides train.objective)."
    ),
    dora: bool | None = typer.Option(None, "--dora/--no-dora", help="DoRA on the LoRA adapter."),
    rslora: bool | None = typer.Option(None, "--rslora/--no-rslora", help="rsLoRA scaling."),
    nproc: int | None = typer.Option(None, min=1, max=64, help="Training processes through accelerate launch (DDP)."),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the interrupted run of these settings "
        "from its newest checkpoint, or fail saying why there is none (without the "
        "flag an interrupted run is resumed too, when there is one).",
    ),
    fresh: bool = typer.Option(False, "--fresh", help="Discard an interrupted run of these settings and start over."),
    check: bool = typer.Option(
        False,
        "--check",
        help="Instead of training, verify the training invariants "
        "(weights move or stay, 8x1 = 1x8 accumulation, exact label mask, overfitting "
        "one batch) on this model and data; exit 1 if one fails.",
    ),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Check, split and train (each stage cached and resumable), without the evaluations."""
    from tunesmith.cli.render import invariants_table, print_allocator, train_line
    from tunesmith.config import update_overrides
    from tunesmith.errors import Problem, TunesmithError
    from tunesmith.pipeline import train_project

    flags = {"method": method, "objective": objective, "nproc": nproc}
    lora = {k: v for k, v in {"dora": dora, "rslora": rslora}.items() if v is not None}
    train = {**{k: v for k, v in flags.items() if v is not None}, **({"lora": lora} if lora else {})}
    overrides = list(set_) + update_overrides({"train": train})
    if check:
        results = train_project(project, overrides, check_only=True)
        console().print(invariants_table(results))
        raise typer.Exit(0 if all(r.passed for r in results) else 1)
    if resume and fresh:
        raise TunesmithError(
            "Conflicting options",
            [Problem("--resume --fresh", "one continues a run, the other discards it", "pass one of them")],
        )
    print_allocator(console())
    st = train_project(project, overrides, resume="require" if resume else "fresh" if fresh else "auto")
    console().print(train_line(st))
