"""`tunesmith report` and `tunesmith diagnose`: what a finished run did, as an HTML page or a diagnosis.

tunesmith report my-project                      # after `tunesmith run`: .tunesmith/report.html
tunesmith report compare-1a2b3c --project my-project --preference review/ab --open
tunesmith diagnose --project my-project --json
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tunesmith.cli.options import console


def register(app: typer.Typer) -> None:
    """Add `diagnose` and `report` to the main app."""
    app.command("diagnose")(diagnose_command)
    app.command("report")(report)


def diagnose_command(
    run: str | None = typer.Argument(
        None,
        help="A train, eval-tuned or compare run (name, unique part or path); default: the "
        "newest finished `tunesmith run`.",
    ),
    project: Path = typer.Option(Path("."), help="Project directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the diagnosis as JSON."),
    html: Path | None = typer.Option(None, help="Also write the masking preview as an HTML fragment to this file."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a config field, e.g. --set eval.max_new_tokens=256 (repeatable)."
    ),
) -> None:
    """Diagnose a fine-tune: memorization, forgetting, overconfidence, stale facts, the stop token, the loss curve
    and the LoRA rank, each with its evidence and remedy, plus a preview of the training loss mask. Exit 1 when a
    finding is an error."""
    from tunesmith.cli.render import print_diagnosis
    from tunesmith.diagnose import diagnose, masking_html

    result = diagnose(project, run, list(set_))
    if html is not None:
        html.write_text(masking_html(result["masking_preview"]), encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print_diagnosis(result, console())
    raise typer.Exit(1 if result["counts"]["error"] else 0)


def report(
    target: str = typer.Argument(
        ...,
        help="A project directory (its latest run), or a compare run of "
        "--project: its name, a unique part of it, or its path.",
    ),
    project: Path = typer.Option(Path("."), help="Project directory, when TARGET names a run."),
    out: Path | None = typer.Option(
        None, help="Where to write the page (default: the compare run's directory and PROJECT/.tunesmith/report.html)."
    ),
    diagnosis: Path | None = typer.Option(None, help="A diagnosis (JSON) to include."),
    cost: Path | None = typer.Option(None, help="A cost estimate (JSON) to include."),
    preference: Path | None = typer.Option(
        None, help="A blind A/B review (`tunesmith review ab`): its directory or preference.json."
    ),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in a browser."),
) -> None:
    """Write one self-contained HTML page of a run: the verdict, what was paid, what improved and what broke, data
    findings, base vs tuned with intervals, slices, loss curves, diagnosis, cost, export parity, preference."""
    from tunesmith.report import build_report
    from tunesmith.report.sources import load_json_arg, load_preference

    root, summary, default_out = _resolve(target, project)
    path = build_report(
        root,
        summary,
        diagnosis=load_json_arg(diagnosis, "diagnosis") if diagnosis else None,
        cost=load_json_arg(cost, "cost estimate") if cost else None,
        preference=load_preference(preference) if preference else None,
        out=out or default_out,
    )
    typer.echo(f"Report: {path}")
    if open_browser:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())


def _resolve(target: str, project: Path) -> tuple[Path, dict | None, Path | None]:
    """(project, summary, out): a project directory reports its latest summary (None: build_report reads it) to
    the default places; a compare run reports its own summary.json into its own directory (and to the project's
    report.html too when it is the latest run)."""
    from tunesmith import runs
    from tunesmith.errors import Problem, TunesmithError

    as_dir = Path(target)
    if (as_dir / "tunesmith.yaml").is_file() or (as_dir / ".tunesmith" / "summary.json").is_file():
        return as_dir, None, None
    run_dir = runs.resolve_run(project, target)
    if run_dir.parent.name == "runs" and run_dir.parent.parent.name == ".tunesmith":
        project = run_dir.parent.parent.parent  # a run given by path knows its project
    found = run_dir / "summary.json"
    if not found.is_file():
        raise TunesmithError(
            "Not a finished run of `tunesmith run`",
            [
                Problem(
                    str(run_dir),
                    "no summary.json here (only the compare stage of `tunesmith run` writes one)",
                    "give the project directory, or a compare run: `tunesmith runs list` shows them",
                )
            ],
        )
    summary = json.loads(found.read_text(encoding="utf-8"))
    latest = project / ".tunesmith" / "summary.json"
    is_latest = latest.is_file() and json.loads(latest.read_text(encoding="utf-8")) == summary
    return project, summary, None if is_latest else run_dir / "report.html"
