"""`tunesmith import ...`: a tunesmith project from a fine-tuning job run on a hosted service.

tunesmith import openai-job ftjob.json --training-file train.jsonl --validation-file valid.jsonl --out my-project
tunesmith import openai-job ftjob.json --training-file train.jsonl --hosted-replies replies.jsonl --out my-project
"""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.cli.options import console

import_app = typer.Typer(
    help="Import a hosted fine-tuning job (its settings and data) as a tunesmith project.", no_args_is_help=True
)


@import_app.command("openai-job")
def openai_job(
    job: Path = typer.Argument(..., help="The saved job object: the JSON that GET /v1/fine_tuning/jobs/{id} returns."),
    training_file: Path = typer.Option(
        ..., help="The job's training JSONL (its `training_file`: GET /v1/files/{id}/content)."
    ),
    validation_file: Path | None = typer.Option(None, help="The job's validation JSONL, if it had one."),
    out: Path = typer.Option(..., help="Directory to write the project to (new or empty)."),
    base: str | None = typer.Option(
        None, help="Base model to train locally (default: tunesmith's built-in model); any model reference."
    ),
    force: bool = typer.Option(False, help="Write into a non-empty directory (files of the same name are replaced)."),
    hosted_replies: Path | None = typer.Option(
        None,
        help="The hosted fine-tuned model's recorded replies (JSONL: `prompt` or `id`, and `output`, as `tunesmith "
        "eval score` reads them): copied to data/ and compared instead of calling the API.",
    ),
) -> None:
    """Write a project from an OpenAI fine-tuning job: tunesmith.yaml (objective, hyperparameters, grader), the
    data copied into data/ (converted where needed), the hosted model as the baseline `hosted` (its endpoint, or
    its recorded replies), and print how each setting was mapped."""
    from tunesmith.cli.render import print_import
    from tunesmith.migrate import import_openai_job

    result = import_openai_job(
        job, training_file, out, validation_file, force=force, base=base, hosted_replies=hosted_replies
    )
    print_import(result, console())
