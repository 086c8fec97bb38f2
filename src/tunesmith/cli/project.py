"""The project's own verbs: `init`, `config schema|show`, `runs list|show`, `model prepare`.

tunesmith init my-project --target 0.85
tunesmith config show my-project --set train.lr=1e-4
tunesmith runs show compare --project my-project
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from tunesmith.cli.options import SET_HELP, console

config_app = typer.Typer(
    help="Inspect tunesmith.yaml: its JSON Schema, or a project's resolved config.", no_args_is_help=True
)
runs_app = typer.Typer(help="Run directories (the registry): list and show.", no_args_is_help=True)
model_app = typer.Typer(help="Models: resolve and cache a model reference.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add `init` to the main app (`tunesmith.cli` adds the groups `config_app`, `runs_app` and `model_app`, in the
    order `--help` lists them)."""
    app.command("init")(init)


def init(
    directory: Path = typer.Argument(..., help="Directory to create the starter project in."),
    target: float | None = typer.Option(
        None,
        help="The task accuracy you need to ship (0-1), e.g. 0.85: "
        "eval.gate.min_value. Asked for on a terminal when not given.",
    ),
    force: bool = typer.Option(False, help="Overwrite an existing tunesmith.yaml."),
) -> None:
    """Write a commented starter project: tunesmith.yaml, data/, eval/."""
    from tunesmith.starter import write_starter

    if target is None and sys.stdin.isatty():
        answer = typer.prompt("Task accuracy you need to ship (0-1, blank for none)", default="", show_default=False)
        try:
            target = float(answer) if answer.strip() else None
        except ValueError:
            target = -1.0  # reported below
    if target is not None and not 0 <= target <= 1:
        from tunesmith.errors import fail

        raise fail("Bad --target", "--target", f"{target} is not between 0 and 1", "e.g. --target 0.85")
    written = write_starter(directory, force=force, target=target)
    for path in written:
        console().print(f"wrote {path}")
    console().print(f"Next: put conversations in {directory}/data/*.jsonl, then `tunesmith run {directory}`.")


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of tunesmith.yaml (for editor autocompletion)."""
    from tunesmith.config import config_schema as schema

    typer.echo(json.dumps(schema(), indent=2))


@config_app.command("show")
def config_show(
    project: Path = typer.Argument(..., help="Project directory or tunesmith.yaml."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Print a project's config with every default filled in and overrides applied."""
    import yaml

    from tunesmith.config import load_config

    cfg, _ = load_config(project, set_)
    typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


@runs_app.command("list")
def runs_list(project: Path = typer.Argument(Path("."), help="Project directory.")) -> None:
    """List a project's run directories, oldest first."""
    from tunesmith.cli.render import runs_table
    from tunesmith.runs import list_runs

    if not project.is_dir():
        from tunesmith.errors import fail

        what = "is a file, not a project directory" if project.exists() else "does not exist"
        raise fail("No such project", str(project), what, "give the directory that holds tunesmith.yaml")
    console().print(runs_table(list_runs(project)))


@runs_app.command("show")
def runs_show(
    name: str = typer.Argument(..., help="Run name (or a unique part of it) or path."),
    project: Path = typer.Option(Path("."), help="Project directory."),
) -> None:
    """Show one run: its inputs, files and result."""
    from tunesmith.cli.render import print_run
    from tunesmith.runs import is_complete, resolve_run

    run_dir = resolve_run(project, name)
    print_run(run_dir, is_complete(run_dir), console())


@model_app.command("prepare")
def model_prepare(
    ref: str = typer.Argument("builtin:smollm2-135m-instruct", help="Model reference."),
    trust_remote_code: bool = typer.Option(False, help="Allow the model's own code to run."),
) -> None:
    """Resolve a model reference (converting a GGUF once) and print where it is cached."""
    from tunesmith.models import resolve_model

    ref_ = resolve_model(ref, trust_remote_code)
    console().print(f"{ref_.ref} -> {ref_.path}\nidentity {ref_.identity}")
