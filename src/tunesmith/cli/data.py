"""`tunesmith data ...`: convert, check, stats, split, dedup, distill, synth, scrub.

tunesmith data convert tickets.csv data/tickets.jsonl --from csv
tunesmith data check my-project
tunesmith data synth my-project --out data/synth.jsonl --n 200 --endpoint http://127.0.0.1:8000/v1 ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from tunesmith.cli.options import console
from tunesmith.files import refuse_to_overwrite

data_app = typer.Typer(
    help="Data: convert formats, check and describe records, split off a held-out set, dedup, scrub.",
    no_args_is_help=True,
)

PATHS = typer.Argument(..., help="Data files, or a project directory.")
NEAR_DUP_HELP = "MinHash Jaccard for near-duplicates (files; a project uses its config)."
NEAR_DUP = {"min": 0.3, "max": 1.0}  # as data.near_dup_threshold
MODEL_HELP = "Also render with this model's chat template and tokenizer (default for a project: its model)."
WORKERS_HELP = "Processes checking records in parallel (default: one a core)."
MAX_NEW_TOKENS = {"min": 1}
MAX_SEQ_LEN = typer.Option(1024, min=16, help="With --model on files: the training length limit.")
ENDPOINT_MODEL_HELP = "Model name on the endpoint."
KEY_HELP = "Environment variable with the key."


def _load(paths: list[Path]):
    """(files, records) of data files or a project's data."""
    from tunesmith.data.convert import resolve_data_paths
    from tunesmith.data.formats import load_records

    files, fmt, base, columns = resolve_data_paths(paths)
    return files, load_records(files, fmt, base, columns)


def _write(out: Path, records) -> None:
    from tunesmith.files import atomic_write_jsonl

    atomic_write_jsonl(out, (r.to_json() for r in records))


@data_app.command("convert")
def data_convert(
    source: Path = typer.Argument(
        ..., help="Input file: JSONL, JSON array, CSV, Parquet, Arrow, or a saved `datasets` directory."
    ),
    out: Path = typer.Argument(..., help="Output JSONL of `messages` records."),
    from_: str = typer.Option(
        "auto",
        "--from",
        help="auto, messages, openai, sharegpt, alpaca, prompt_completion, csv or labeled (labeled JSONL).",
    ),
    text_column: str | None = typer.Option(None, help="csv/labeled: the column with the input text (default: text)."),
    label_column: str | None = typer.Option(
        None,
        help="The column with the label (csv/labeled default: label); with --prompt-column, the label is the reply.",
    ),
    system: str | None = typer.Option(None, help="System prompt to put first in every conversation."),
    json_key: str | None = typer.Option(None, help="Answer as JSON {KEY: label}."),
    prompt_column: str | None = typer.Option(
        None, help="Column mapping (as data.columns): the field with the user's turn."
    ),
    reply_column: str | None = typer.Option(None, help="Column mapping: the field with the reply."),
    system_column: str | None = typer.Option(None, help="Column mapping: the field with a per-row system prompt."),
    chosen_column: str | None = typer.Option(None, help="Column mapping: the preferred reply of a preference pair."),
    rejected_column: str | None = typer.Option(None, help="Column mapping: the dispreferred reply."),
) -> None:
    """Convert a data file to canonical `messages` JSONL (provenance kept under `meta`)."""
    from tunesmith.data.convert import columns_from_options, convert_file

    columns = columns_from_options(
        prompt=prompt_column,
        reply=reply_column,
        system=system_column,
        label=label_column,
        json_key=json_key,
        chosen=chosen_column,
        rejected=rejected_column,
    )
    n = convert_file(
        source,
        out,
        from_,
        text_column=text_column or "text",
        label_column=label_column or "label",
        system=system,
        json_key=json_key,
        columns=columns,
    )
    console().print(f"wrote {n} conversation(s) to {out}")


def _audit(paths: list[Path], near_dup_threshold: float, model: str | None, max_seq_len: int, workers: int | None):
    """Stream every record of the files (or a project's data) through every check, with a progress bar."""
    from tunesmith.cli.render import check_progress
    from tunesmith.data.audit import check_files, default_workers
    from tunesmith.data.convert import audit_options, resolve_data_paths

    files, fmt, base, columns = resolve_data_paths(paths)
    options = audit_options(base, model, near_dup_threshold, max_seq_len)
    with check_progress(files, console(stderr=True)) as progress:
        return check_files(files, fmt, base, workers or default_workers(), progress, columns, keep=False, **options)


@data_app.command("check")
def data_check(
    paths: list[Path] = PATHS,
    as_json: bool = typer.Option(False, "--json", help="Print every finding as JSON."),
    show: int = typer.Option(3, min=0, help="Findings shown per code."),
    near_dup_threshold: float = typer.Option(0.8, **NEAR_DUP, help=NEAR_DUP_HELP),
    model: str | None = typer.Option(None, help=MODEL_HELP),
    max_seq_len: int = MAX_SEQ_LEN,
    workers: int | None = typer.Option(None, min=1, help=WORKERS_HELP),
) -> None:
    """Check records: a table of finding codes, then examples with file:line and a fix. Exit 1 on errors."""
    from tunesmith.cli.render import print_report

    report = _audit(paths, near_dup_threshold, model, max_seq_len, workers)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        print_report(report, console(), show)
    raise typer.Exit(1 if report.has_errors else 0)


@data_app.command("stats")
def data_stats(
    paths: list[Path] = PATHS,
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
    model: str | None = typer.Option(
        None, help="Also count tokens with this model's chat template (default for a project: its model)."
    ),
    max_seq_len: int = MAX_SEQ_LEN,
    workers: int | None = typer.Option(None, min=1, help=WORKERS_HELP),
) -> None:
    """Describe the data: files and formats, turns, reply lengths, tokens, behaviours, labels and tags."""
    from tunesmith.cli.render import print_stats

    report = _audit(paths, 0.8, model, max_seq_len, workers)
    if as_json:
        typer.echo(
            json.dumps(
                {**report.stats, "findings": {f"{c}/{s}": n for (c, s), n in sorted(report.counts().items())}}, indent=2
            )
        )
    else:
        print_stats(report, console())


@data_app.command("split")
def data_split(
    paths: list[Path] = PATHS,
    out: Path = typer.Option(..., help="Directory for train.jsonl and heldout.jsonl."),
    fraction: float = typer.Option(0.2, help="Held-out share."),
    seed: int = typer.Option(42, help="Split seed."),
    stratify_by: str | None = typer.Option(None, help="JSON reply field, or `label`, to stratify by."),
    near_dup_threshold: float = typer.Option(0.8, **NEAR_DUP, help="MinHash Jaccard for near-duplicates."),
) -> None:
    """Split off a leakage-free, stratified held-out set (near-duplicate clusters never straddle the split)."""
    from tunesmith.data.split import split_heldout
    from tunesmith.errors import fail

    if not 0 < fraction < 0.9:
        raise fail("Bad --fraction", "--fraction", f"{fraction} is outside (0, 0.9)", "e.g. --fraction 0.2")
    files, records = _load(paths)
    if out.exists() and not out.is_dir():
        raise fail("Cannot write the split", str(out), "is a file, not a directory", "give a directory for --out")
    refuse_to_overwrite(files, out / "train.jsonl", out / "heldout.jsonl")
    train, heldout, leaks = split_heldout(records, fraction, seed, stratify_by, near_dup_threshold)
    _write(out / "train.jsonl", train)
    _write(out / "heldout.jsonl", heldout)
    console().print(f"train: {len(train)}  held-out: {len(heldout)}  leaks: {len(leaks)}  -> {out}")


@data_app.command("dedup")
def data_dedup(
    paths: list[Path] = PATHS,
    out: Path = typer.Option(..., help="Output JSONL: the records kept."),
    near: bool = typer.Option(True, help="Also drop near-duplicate inputs (keeps the first of each)."),
    near_dup_threshold: float = typer.Option(0.8, **NEAR_DUP, help="MinHash Jaccard for near-duplicates."),
) -> None:
    """Write a copy without exact duplicates (input and output together) and, by default, near-duplicate inputs."""
    from tunesmith.data.dedup import dedup_records

    files, records = _load(paths)
    refuse_to_overwrite(files, out)
    kept, dropped = dedup_records(records, near, near_dup_threshold)
    _write(out, kept)
    con = console()
    con.print(f"kept {len(kept)}, dropped {len(dropped)} -> {out}")
    for rec, reason in dropped[:10]:
        con.print(f"  {rec.where}: {reason}")


@data_app.command("distill")
def data_distill(
    paths: list[Path] = PATHS,
    out: Path = typer.Option(..., help="Output JSONL: the same prompts with the teacher's replies."),
    teacher: str | None = typer.Option(
        None, help="Teacher model reference (default: the project's base model, i.e. self-distillation)."
    ),
    adapter: Path | None = typer.Option(None, help="A PEFT adapter applied on the teacher."),
    endpoint: str | None = typer.Option(None, help="OpenAI-compatible base URL of a teacher."),
    endpoint_model: str | None = typer.Option(None, help=ENDPOINT_MODEL_HELP),
    api_key_env: str | None = typer.Option(None, help=KEY_HELP),
    teacher_system: str | None = typer.Option(
        None, help="A system prompt only the teacher sees (context distillation)."
    ),
    max_new_tokens: int = typer.Option(256, **MAX_NEW_TOKENS, help="Longest reply."),
    project: Path | None = typer.Option(
        None, help="Project whose base model is the default teacher (default: PATHS when it is a project)."
    ),
) -> None:
    """Regenerate the replies with a teacher: self-distillation, a larger model, or an endpoint."""
    from tunesmith.data.distill import distill_records
    from tunesmith.data.synth import teacher_backend

    files, records = _load(paths)
    refuse_to_overwrite(files, out)
    be = teacher_backend(paths, project, teacher, adapter, endpoint, endpoint_model, api_key_env)
    distilled, errors = distill_records(records, be, teacher_system, max_new_tokens)
    _write(out, distilled)
    con = console()
    con.print(f"{len(distilled)} of {len(records)} record(s) distilled -> {out}")
    for err in errors[:10]:
        con.print(f"  [yellow]{err}[/yellow]")
    if errors and not distilled:
        raise typer.Exit(1)


@data_app.command("synth")
def data_synth(
    paths: list[Path] = typer.Argument(..., help="Real records to grow from: files, or a project."),
    out: Path = typer.Option(..., help="Output JSONL of the kept synthetic records."),
    n: int = typer.Option(..., min=1, help="How many synthetic records to generate."),
    operators: str = typer.Option(
        "paraphrase,typos,tone,edge_case,multi_issue,refuse,escalate",
        help="Variation operators, comma-separated, taken in turn; or weighted: paraphrase=3,refuse=1.",
    ),
    endpoint: str | None = typer.Option(
        None, help="OpenAI-compatible base URL of the teacher (OpenAI, vLLM, Ollama, llama.cpp, tunesmith serve)."
    ),
    endpoint_model: str | None = typer.Option(None, help=ENDPOINT_MODEL_HELP),
    api_key_env: str | None = typer.Option(None, help=KEY_HELP),
    teacher: str | None = typer.Option(
        None, help="A local teacher model instead of an endpoint (default: the project's base model)."
    ),
    adapter: Path | None = typer.Option(None, help="A PEFT adapter applied on the local teacher."),
    concurrency: int = typer.Option(4, min=1, max=256, help="Requests in flight to the endpoint."),
    input_usd_per_mtok: float | None = typer.Option(None, help="Price per million input tokens."),
    output_usd_per_mtok: float | None = typer.Option(None, help="Price per million output tokens."),
    seed: int = typer.Option(0, help="Seed of the plan (which record, operator and examples per job)."),
    few_shot: int = typer.Option(3, min=0, help="Real examples shown to the teacher per reply."),
    max_new_tokens: int = typer.Option(256, **MAX_NEW_TOKENS, help="Longest teacher reply."),
    rejected: Path | None = typer.Option(None, help="Also write the dropped jobs with reasons."),
    project: Path | None = typer.Option(
        None, help="Project whose task, JSON Schema and generation cache apply (default: PATHS when it is a project)."
    ),
) -> None:
    """Grow real examples into more with a teacher (variation operators), each reply held to the task's format,
    checked by the data doctor and deduplicated; an interrupted run resumes without repeating paid calls."""
    from tunesmith.cli.render import print_synth
    from tunesmith.data.synth import operator_mix, synth_setup, teacher_backend

    files, records = _load(paths)
    refuse_to_overwrite(files, out, rejected)
    cfg, schema, cache = synth_setup(paths, project)
    prices = (input_usd_per_mtok, output_usd_per_mtok)
    be = teacher_backend(paths, project, teacher, adapter, endpoint, endpoint_model, api_key_env, concurrency, prices)
    settings = {"seed": seed, "few_shot": few_shot, "max_new_tokens": max_new_tokens, "rejected_out": rejected}
    summary = _synthesize_resumably(records, be, n, operator_mix(operators), out, cfg.task, schema, cache, settings)
    print_synth(summary, out, console())
    if not summary["kept"]:
        raise typer.Exit(1)


def _synthesize_resumably(records, be, n, operators, out: Path, task, schema, cache: Path, settings: dict) -> dict:
    """`synthesize` with the generation cache at `cache`; Ctrl-C says how to resume (finished calls are cached)."""
    from tunesmith.data.synth import synthesize
    from tunesmith.generate.cache import GenerationCache

    try:
        return synthesize(
            records, be, n, operators, out, task=task, schema=schema, cache=GenerationCache(cache), **settings
        )
    except KeyboardInterrupt:
        print("interrupted; finished teacher calls are cached: re-run the same command to resume", file=sys.stderr)
        raise typer.Exit(130) from None


@data_app.command("scrub")
def data_scrub(paths: list[Path] = PATHS, out: Path = typer.Option(..., help="Output JSONL: a redacted copy.")) -> None:
    """Write a redacted copy: personal data and secrets become typed placeholders ([EMAIL_1], the same entity
    getting the same placeholder within a record). The input is never changed."""
    from tunesmith.data.convert import resolve_data_paths
    from tunesmith.data.formats import load_records
    from tunesmith.data.pii import scrub_records

    files, fmt, base, columns = resolve_data_paths(paths)
    refuse_to_overwrite(files, out)
    scrubbed, kinds = scrub_records(load_records(files, fmt, base, columns))
    _write(out, scrubbed)
    summary = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "nothing found"
    console().print(f"wrote {len(scrubbed)} record(s) to {out}")
    console().print(f"redacted entities: {summary}")
