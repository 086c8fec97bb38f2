"""`tunesmith diagnose [RUN]`: what a fine-tune broke and why, from the run directories of a finished run.

    register(app)        # in cli.py: adds the `diagnose` command to the `tunesmith` app
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def diagnose_command(run: Optional[str] = typer.Argument(
                         None, help="A train, eval-tuned or compare run (name, unique part or path); default: the "
                         "newest finished `tunesmith run`."),
                     project: Path = typer.Option(Path("."), help="Project directory."),
                     as_json: bool = typer.Option(False, "--json", help="Print the diagnosis as JSON."),
                     html: Optional[Path] = typer.Option(None, help="Also write the masking preview as an HTML "
                                                         "fragment to this file."),
                     set_: list[str] = typer.Option([], "--set", help="Override a config field, e.g. "
                                                    "--set eval.max_new_tokens=256 (repeatable).")) -> None:
    """Diagnose a fine-tune: memorization, forgetting, overconfidence, stale facts, the stop token, the loss curve
    and the LoRA rank, each with its evidence and remedy, plus a preview of the training loss mask. Exit 1 when a
    finding is an error."""
    from rich.console import Console

    from tunesmith.diagnose import diagnose, masking_html, print_diagnosis

    result = diagnose(project, run, list(set_))
    if html is not None:
        html.write_text(masking_html(result["masking_preview"]), encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        console = Console()
        if not console.is_terminal:
            console.width = 120
        print_diagnosis(result, console)
    raise typer.Exit(1 if result["counts"]["error"] else 0)


def register(app: typer.Typer) -> None:
    """Add `diagnose` to a Typer app."""
    app.command("diagnose")(diagnose_command)
