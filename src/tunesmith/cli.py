"""The `tunesmith` command: one Typer app, one command per verb. Heavy imports live inside the commands so
`tunesmith --help` starts instantly.

    tunesmith init my-project
    tunesmith run my-project --set train.epochs=2
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from tunesmith.cli_diagnose import register as register_diagnose
from tunesmith.cli_plan import register as register_plan
from tunesmith.cli_report import register as register_report
from tunesmith.review.cli import review_app

app = typer.Typer(help="Fine-tune open LLMs the careful way: check the data, write the eval first, train, and "
                       "ship only a model that beats its base.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
config_app = typer.Typer(help="Inspect tunesmith.yaml: its JSON Schema, or a project's resolved config.",
                         no_args_is_help=True)
data_app = typer.Typer(help="Data: convert formats, check and describe records, split off a held-out set, dedup, "
                              "scrub.", no_args_is_help=True)
runs_app = typer.Typer(help="Run directories (the registry): list and show.", no_args_is_help=True)
model_app = typer.Typer(help="Models: resolve and cache a model reference.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluation: score suites.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(data_app, name="data")
app.add_typer(runs_app, name="runs")
app.add_typer(model_app, name="model")
app.add_typer(eval_app, name="eval")
app.add_typer(review_app, name="review")
register_diagnose(app)
register_report(app)
register_plan(app)

SET_HELP = "Override a config field, e.g. --set train.lr=1e-4 (repeatable)."


def _console(stderr: bool = False):
    from rich.console import Console

    console = Console(stderr=stderr)
    if not console.is_terminal:  # piped or logged: wide enough for the comparison table, not 80 columns
        console.width = 120
    return console


BUDGET_HELP = "Wall time for the search's trials: 30m, 1h, 90s, or minutes (default: tune.budget_minutes)."


def _minutes(budget: Optional[str]) -> Optional[float]:
    """`30m`, `1h`, `90s` or a bare number of minutes -> minutes; a clear error otherwise."""
    import re

    from tunesmith.errors import fail

    if budget is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h)?\s*", budget)
    if not m or float(m.group(1)) <= 0:
        raise fail("Bad --budget", "--budget", f"{budget!r} is not a duration", "e.g. 30m, 1h, 90s or 45")
    return float(m.group(1)) * {"s": 1 / 60, "m": 1, "min": 1, "h": 60, None: 1}[m.group(2)]


@app.command()
def run(project: Path = typer.Argument(..., help="Project directory holding tunesmith.yaml."),
        tune: bool = typer.Option(False, "--tune", help="Search the recipe first (`tunesmith tune`), then train, "
                                  "evaluate and gate the best one."),
        budget: Optional[str] = typer.Option(None, help=BUDGET_HELP),
        set_: list[str] = typer.Option([], "--set", help=SET_HELP)) -> None:
    """Walk the whole flow: check -> split -> train (checkpoint chosen on validation) -> eval base and tuned on the
    test split -> compare with the cheapest alternatives -> verdict. Exit 1 unless the verdict is to ship."""
    from tunesmith.pipeline import print_summary, run_project

    summary = run_project(project, set_, tune=tune, budget_minutes=_minutes(budget))
    print_summary(summary, _console())
    verdict = summary.get("verdict") or {"ship": summary["gate"]["passed"]}
    raise typer.Exit(0 if verdict["ship"] else 1)


@app.command("tune")
def tune_cmd(project: Path = typer.Argument(..., help="Project directory holding tunesmith.yaml."),
             budget: Optional[str] = typer.Option(None, help=BUDGET_HELP),
             trials: Optional[int] = typer.Option(None, help="At most this many trials (tune.max_trials)."),
             storage: Optional[str] = typer.Option(None, help="Optuna storage URL shared by several machines "
                                                   "(tune.storage), e.g. postgresql://host/db or journal:///nfs/s.log."),
             set_: list[str] = typer.Option([], "--set", help=SET_HELP)) -> None:
    """Search the recipe (learning rate, epochs, LoRA rank and alpha, ...) within a budget, by the task's own
    generated answers on the validation split; the test split is not read. Run it again to resume."""
    from tunesmith.pipeline import tune_project

    overrides = list(set_) + ([f"tune.storage={storage}"] if storage else [])
    result = tune_project(project, overrides, _minutes(budget), trials)
    console = _console()
    console.print(_trials_table(result.summary))
    console.print(f"Chosen: {result.summary['why']}")
    console.print(f"Best run: {result.best_run}\n`tunesmith run {project} --tune` evaluates it on the test split.")


def _trials_table(summary: dict):
    from rich.table import Table

    table = Table(title=f"Trials ({summary['study']}; validation {summary['metric']})")
    for col in ("trial", "state", "value", "params", "minutes", "general probe"):
        table.add_column(col, justify="right" if col in ("trial", "value", "minutes") else "left")
    best = summary["best"]["number"]
    for t in summary["trials"]:
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["params"].items())
        forget = t.get("forgetting") or {}
        mark = "*" if t["number"] == best else ""
        table.add_row(f"{mark}{t['number']}" + (" (default)" if t["default"] else ""), t["state"],
                      "-" if t["value"] is None else f"{t['value']:.3f}", params,
                      "-" if t["wall_s"] is None else f"{t['wall_s'] / 60:.1f}",
                      f"{forget['delta']:+.3f}" + ("" if forget.get("ok") else " breaks gate") if forget else "-")
    return table


@app.command()
def train(project: Path = typer.Argument(..., help="Project directory holding tunesmith.yaml."),
          method: Optional[str] = typer.Option(None, help="lora, qlora or full (overrides train.method)."),
          objective: Optional[str] = typer.Option(None, help="sft, dpo, grpo or reward (overrides "
                                                  "train.objective)."),
          dora: Optional[bool] = typer.Option(None, "--dora/--no-dora", help="DoRA on the LoRA adapter."),
          rslora: Optional[bool] = typer.Option(None, "--rslora/--no-rslora", help="rsLoRA scaling."),
          nproc: Optional[int] = typer.Option(None, help="Training processes through accelerate launch (DDP)."),
          resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run of these settings "
                                      "from its newest checkpoint, or fail saying why there is none (without the "
                                      "flag an interrupted run is resumed too, when there is one)."),
          fresh: bool = typer.Option(False, "--fresh", help="Discard an interrupted run of these settings and "
                                     "start over."),
          check: bool = typer.Option(False, "--check", help="Instead of training, verify the training invariants "
                                     "(weights move or stay, 8x1 = 1x8 accumulation, exact label mask, overfitting "
                                     "one batch) on this model and data; exit 1 if one fails."),
          set_: list[str] = typer.Option([], "--set", help=SET_HELP)) -> None:
    """Check, split and train (each stage cached and resumable), without the evaluations."""
    from tunesmith.errors import Problem, TunesmithError
    from tunesmith.pipeline import train_project

    overrides = list(set_)
    for key, value in (("method", method), ("objective", objective), ("dora", dora), ("rslora", rslora),
                       ("nproc", nproc)):
        if value is not None:
            overrides.append(f"train.{key}={str(value).lower() if isinstance(value, bool) else value}")
    if check:
        from rich.table import Table

        results = train_project(project, overrides, check_only=True)
        table = Table(title="Training invariants")
        for col in ("invariant", "result", "detail"):
            table.add_column(col)
        for r in results:
            table.add_row(r.name, "[green]pass[/green]" if r.passed else "[red]FAIL[/red]", r.detail)
        _console().print(table)
        raise typer.Exit(0 if all(r.passed for r in results) else 1)
    if resume and fresh:
        raise TunesmithError("Conflicting options", [Problem("--resume --fresh", "one continues a run, the other "
                                                             "discards it", "pass one of them")])
    st = train_project(project, overrides, resume="require" if resume else "fresh" if fresh else "auto")
    r = st.result
    _console().print(f"{r['recipe']}: {r['steps']} steps, loss {r['train_loss']:.3f}, "
                     f"{r.get('tokens_per_s') or 0:.0f} tokens/s, {r['trainable_params']:,} trainable of "
                     f"{r['total_params']:,} parameters ({r['precision']})"
                     + (" [cached]" if st.cached else "")
                     + f"\n{st.run_dir / (r.get('adapter') or r.get('model') or r['reward_model'])}")


def _human_preference(path: Path) -> dict:
    """A blind A/B review's result, from its directory (summarized afresh) or its preference.json."""
    from tunesmith.errors import Problem, TunesmithError
    from tunesmith.review import preference_summary

    if path.is_dir():
        return preference_summary(path)
    try:
        pref = json.loads(path.read_text())
        pref["results"]["b"]
        return pref
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TunesmithError("Cannot read the A/B review", [Problem(str(path), f"{type(exc).__name__}: {exc}",
                                                                    "pass the review directory or its "
                                                                    "preference.json")]) from None


@app.command()
def export(run: str = typer.Argument(..., help="A finished train run: its name (or a unique part) or path."),
           project: Path = typer.Option(Path("."), help="Project directory."),
           format_: list[str] = typer.Option([], "--format", help="adapter, merged, gguf, ollama (repeatable; "
                                             "default: export.formats, else all the run can give)."),
           gguf_type: list[str] = typer.Option([], "--gguf-type", help="f16, q8_0, q4_0 (repeatable; default: "
                                               "export.gguf_types)."),
           set_: list[str] = typer.Option([], "--set", help=SET_HELP)) -> None:
    """Export a trained run into <run>/export/: adapter, merged safetensors, GGUF, Ollama Modelfile."""
    from rich.table import Table

    from tunesmith.pipeline import export_run

    manifest = export_run(project, run, format_ or None, gguf_type or None, list(set_))
    table = Table(title=f"Exported from {manifest['adapter'] or manifest['base']}")
    for col in ("format", "file", "size"):
        table.add_column(col)
    for fmt, info in manifest["exports"].items():
        for name, f in info["files"].items():
            table.add_row(fmt, str(Path(info["path"]) / name), f"{f['bytes'] / 1e6:,.1f} MB")
    _console().print(table)


@app.command()
def serve(model: str = typer.Argument(..., help="A finished train run of --project (name, unique part or path), "
                                      "an export directory, a .gguf file, or any model reference."),
          project: Path = typer.Option(Path("."), help="Project directory (to find a train run)."),
          adapter: Optional[Path] = typer.Option(None, help="A PEFT adapter applied on top of MODEL."),
          name: Optional[str] = typer.Option(None, help="The model id clients send (default: from MODEL)."),
          host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
          port: int = typer.Option(8000, help="Port."),
          api_key_env: Optional[str] = typer.Option(None, help="Environment variable holding the API key "
                                                    "clients must send as a Bearer token."),
          max_context: Optional[int] = typer.Option(None, help="Context length (default: the model's)."),
          precision: str = typer.Option("auto", help="auto (bf16 where supported), bf16 or fp32.")) -> None:
    """Serve a model (a trained run, an export, a base with an adapter) as an OpenAI-compatible API:
    /v1/chat/completions (streaming too), /v1/models, /health."""
    import os

    from tunesmith.errors import Problem, TunesmithError
    from tunesmith.pipeline import serve_target
    from tunesmith.serve import ServedModel
    from tunesmith.serve import serve as run_server

    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise TunesmithError("No API key", [Problem(f"--api-key-env {api_key_env}", "that variable is not set",
                                                        f"export {api_key_env}=<a secret>, or drop the option")])
    ref, run_adapter, default_name = serve_target(project, model)
    served = ServedModel(ref, adapter or run_adapter, name=name or default_name, max_context=max_context,
                         precision=precision)
    run_server(served, host=host, port=port, api_key=api_key)


@app.command()
def init(directory: Path = typer.Argument(..., help="Directory to create the starter project in."),
         target: Optional[float] = typer.Option(None, help="The task accuracy you need to ship (0-1), e.g. 0.85: "
                                                "eval.gate.min_value. Asked for on a terminal when not given."),
         force: bool = typer.Option(False, help="Overwrite an existing tunesmith.yaml.")) -> None:
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
        _console().print(f"wrote {path}")
    _console().print(f"Next: put conversations in {directory}/data/*.jsonl, then `tunesmith run {directory}`.")


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of tunesmith.yaml (for editor autocompletion)."""
    from tunesmith.config import config_schema as schema

    typer.echo(json.dumps(schema(), indent=2))


@config_app.command("show")
def config_show(project: Path = typer.Argument(..., help="Project directory or tunesmith.yaml."),
                set_: list[str] = typer.Option([], "--set", help=SET_HELP)) -> None:
    """Print a project's config with every default filled in and overrides applied."""
    import yaml

    from tunesmith.config import load_config

    cfg, _ = load_config(project, set_)
    typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


@data_app.command("convert")
def data_convert(source: Path = typer.Argument(..., help="Input file: JSONL, JSON array, CSV, Parquet, Arrow, "
                                                         "or a saved `datasets` directory."),
                 out: Path = typer.Argument(..., help="Output JSONL of `messages` records."),
                 from_: str = typer.Option("auto", "--from", help="auto, messages, openai, sharegpt, alpaca, "
                                                                  "prompt_completion, csv or labeled (labeled JSONL)."),
                 text_column: Optional[str] = typer.Option(None, help="csv/labeled: the column with the input text "
                                                                      "(default: text)."),
                 label_column: Optional[str] = typer.Option(None, help="The column with the label (csv/labeled "
                                                                       "default: label); with --prompt-column, the "
                                                                       "label is the reply."),
                 system: Optional[str] = typer.Option(None, help="System prompt to put first in every conversation."),
                 json_key: Optional[str] = typer.Option(None, help="Answer as JSON {KEY: label}."),
                 prompt_column: Optional[str] = typer.Option(None, help="Column mapping (as data.columns): the field "
                                                                        "with the user's turn."),
                 reply_column: Optional[str] = typer.Option(None, help="Column mapping: the field with the reply."),
                 system_column: Optional[str] = typer.Option(None, help="Column mapping: the field with a per-row "
                                                                        "system prompt."),
                 chosen_column: Optional[str] = typer.Option(None, help="Column mapping: the preferred reply of a "
                                                                        "preference pair."),
                 rejected_column: Optional[str] = typer.Option(None, help="Column mapping: the dispreferred reply.")
                 ) -> None:
    """Convert a data file to canonical `messages` JSONL (provenance kept under `meta`)."""
    from tunesmith.data.convert import columns_from_options, convert_file

    columns = columns_from_options(prompt=prompt_column, reply=reply_column, system=system_column,
                                   label=label_column, json_key=json_key, chosen=chosen_column,
                                   rejected=rejected_column)
    n = convert_file(source, out, from_, text_column=text_column or "text", label_column=label_column or "label",
                     system=system, json_key=json_key, columns=columns)
    _console().print(f"wrote {n} conversation(s) to {out}")


NEAR_DUP_HELP = "MinHash Jaccard for near-duplicates (files; a project uses its config)."
MODEL_HELP = "Also render with this model's chat template and tokenizer (default for a project: its model)."


WORKERS_HELP = "Processes checking records in parallel (default: one a core)."


def _audit(paths: list[Path], near_dup_threshold: float, model: Optional[str], max_seq_len: int,
           workers: Optional[int]):
    """Stream every record of the files (or a project's data) through every check, with a progress bar."""
    from tunesmith.data.audit import check_files, default_workers
    from tunesmith.data.convert import check_progress, resolve_data_paths

    files, fmt, base, columns = resolve_data_paths(paths)
    if base is not None:  # a project: check it exactly as `tunesmith run` does
        from tunesmith.config import load_config
        from tunesmith.eval.evaluate import load_schema
        from tunesmith.models import resolve_model
        from tunesmith.pipeline import check_options

        cfg, _ = load_config(base)
        ref = resolve_model(model or cfg.model.base, cfg.model.trust_remote_code)
        options = check_options(cfg, ref, load_schema(cfg, base))
    elif model:
        from tunesmith.models import load_tokenizer, resolve_model

        options = {"near_dup_threshold": near_dup_threshold, "tokenizer": load_tokenizer(resolve_model(model)),
                   "max_seq_len": max_seq_len}
    else:
        options = {"near_dup_threshold": near_dup_threshold}
    with check_progress(files, _console(stderr=True)) as progress:
        return check_files(files, fmt, base, workers or default_workers(), progress, columns, keep=False, **options)


@data_app.command("check")
def data_check(paths: list[Path] = typer.Argument(..., help="Data files, or a project directory."),
               as_json: bool = typer.Option(False, "--json", help="Print every finding as JSON."),
               show: int = typer.Option(3, help="Findings shown per code."),
               near_dup_threshold: float = typer.Option(0.8, help=NEAR_DUP_HELP),
               model: Optional[str] = typer.Option(None, help=MODEL_HELP),
               max_seq_len: int = typer.Option(1024, help="With --model on files: the training length limit."),
               workers: Optional[int] = typer.Option(None, help=WORKERS_HELP)) -> None:
    """Check records: a table of finding codes, then examples with file:line and a fix. Exit 1 on errors."""
    from tunesmith.data.convert import print_report

    report = _audit(paths, near_dup_threshold, model, max_seq_len, workers)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        print_report(report, _console(), show)
    raise typer.Exit(1 if report.has_errors else 0)


@data_app.command("stats")
def data_stats(paths: list[Path] = typer.Argument(..., help="Data files, or a project directory."),
               as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
               model: Optional[str] = typer.Option(None, help="Also count tokens with this model's chat template "
                                                              "(default for a project: its model)."),
               max_seq_len: int = typer.Option(1024, help="With --model on files: the training length limit."),
               workers: Optional[int] = typer.Option(None, help=WORKERS_HELP)) -> None:
    """Describe the data: files and formats, turns, reply lengths, tokens, behaviours, labels and tags."""
    from tunesmith.data.convert import print_stats

    report = _audit(paths, 0.8, model, max_seq_len, workers)
    if as_json:
        typer.echo(json.dumps({**report.stats, "findings": {f"{c}/{s}": n for (c, s), n in
                                                            sorted(report.counts().items())}}, indent=2))
    else:
        print_stats(report, _console())


@data_app.command("split")
def data_split(paths: list[Path] = typer.Argument(..., help="Data files, or a project directory."),
               out: Path = typer.Option(..., help="Directory for train.jsonl and heldout.jsonl."),
               fraction: float = typer.Option(0.2, help="Held-out share."),
               seed: int = typer.Option(42, help="Split seed."),
               stratify_by: Optional[str] = typer.Option(None, help="JSON reply field, or `label`, to stratify by."),
               near_dup_threshold: float = typer.Option(0.8, help="MinHash Jaccard for near-duplicates.")) -> None:
    """Split off a leakage-free, stratified held-out set (near-duplicate clusters never straddle the split)."""
    from tunesmith.data.convert import resolve_data_paths
    from tunesmith.data.formats import load_records
    from tunesmith.data.io import atomic_write_jsonl
    from tunesmith.data.dedup import near_duplicate_clusters
    from tunesmith.data.split import leakage, reply_label, split_records
    from tunesmith.errors import fail

    if not 0 < fraction < 0.9:
        raise fail("Bad --fraction", "--fraction", f"{fraction} is outside (0, 0.9)", "e.g. --fraction 0.2")
    files, fmt, base, columns = resolve_data_paths(paths)
    records = load_records(files, fmt, base, columns)
    train, heldout = split_records(records, fraction, seed, lambda r: reply_label(r, stratify_by),
                                   near_duplicate_clusters(records, near_dup_threshold))
    leaks = leakage(train, heldout, near_dup_threshold)
    atomic_write_jsonl(out / "train.jsonl", (r.to_json() for r in train))
    atomic_write_jsonl(out / "heldout.jsonl", (r.to_json() for r in heldout))
    _console().print(f"train: {len(train)}  held-out: {len(heldout)}  leaks: {len(leaks)}  -> {out}")


@data_app.command("dedup")
def data_dedup(paths: list[Path] = typer.Argument(..., help="Data files, or a project directory."),
               out: Path = typer.Option(..., help="Output JSONL: the records kept."),
               near: bool = typer.Option(True, help="Also drop near-duplicate inputs (keeps the first of each)."),
               near_dup_threshold: float = typer.Option(0.8, help="MinHash Jaccard for near-duplicates.")) -> None:
    """Write a copy without exact duplicates (input and output together) and, by default, near-duplicate inputs."""
    from tunesmith.data.convert import resolve_data_paths
    from tunesmith.data.dedup import dedup_records
    from tunesmith.data.formats import load_records
    from tunesmith.data.io import atomic_write_jsonl

    files, fmt, base, columns = resolve_data_paths(paths)
    kept, dropped = dedup_records(load_records(files, fmt, base, columns), near, near_dup_threshold)
    atomic_write_jsonl(out, (r.to_json() for r in kept))
    con = _console()
    con.print(f"kept {len(kept)}, dropped {len(dropped)} -> {out}")
    for rec, reason in dropped[:10]:
        con.print(f"  {rec.where}: {reason}")


@data_app.command("distill")
def data_distill(paths: list[Path] = typer.Argument(..., help="Data files, or a project directory."),
                 out: Path = typer.Option(..., help="Output JSONL: the same prompts with the teacher's replies."),
                 teacher: Optional[str] = typer.Option(None, help="Teacher model reference (default: the "
                                                       "project's base model, i.e. self-distillation)."),
                 adapter: Optional[Path] = typer.Option(None, help="A PEFT adapter applied on the teacher."),
                 endpoint: Optional[str] = typer.Option(None, help="OpenAI-compatible base URL of a teacher."),
                 endpoint_model: Optional[str] = typer.Option(None, help="Model name on the endpoint."),
                 api_key_env: Optional[str] = typer.Option(None, help="Environment variable with the key."),
                 teacher_system: Optional[str] = typer.Option(None, help="A system prompt only the teacher sees "
                                                              "(context distillation)."),
                 max_new_tokens: int = typer.Option(256, help="Longest reply."),
                 project: Optional[Path] = typer.Option(None, help="Project whose base model is the default "
                                                        "teacher (default: PATHS when it is a project).")) -> None:
    """Regenerate the replies with a teacher: self-distillation, a larger model, or an endpoint."""
    from tunesmith.data.convert import resolve_data_paths
    from tunesmith.data.distill import distill_records
    from tunesmith.data.formats import load_records
    from tunesmith.data.io import atomic_write_jsonl

    files, fmt, base, columns = resolve_data_paths(paths)
    records = load_records(files, fmt, base, columns)
    be = _teacher_backend(paths, project, teacher, adapter, endpoint, endpoint_model, api_key_env)
    distilled, errors = distill_records(records, be, teacher_system, max_new_tokens)
    atomic_write_jsonl(out, (r.to_json() for r in distilled))
    con = _console()
    con.print(f"{len(distilled)} of {len(records)} record(s) distilled -> {out}")
    for err in errors[:10]:
        con.print(f"  [yellow]{err}[/yellow]")
    if errors and not distilled:
        raise typer.Exit(1)


def _project_of(paths: list[Path], project: Optional[Path]) -> Optional[Path]:
    """The project a data command belongs to: --project, else PATHS when it is one project directory."""
    return project or (paths[0] if len(paths) == 1 and (paths[0] / "tunesmith.yaml").exists() else None)


def _teacher_backend(paths: list[Path], project: Optional[Path], teacher: Optional[str], adapter: Optional[Path],
                     endpoint: Optional[str], endpoint_model: Optional[str], api_key_env: Optional[str],
                     concurrency: int = 4, prices: tuple[Optional[float], Optional[float]] = (None, None)):
    """The teacher of `data distill` and `data synth`: an OpenAI-compatible endpoint, or a local model (default:
    the project's base model)."""
    from tunesmith.config import load_config
    from tunesmith.errors import Problem, TunesmithError
    from tunesmith.generate import backends
    from tunesmith.models import resolve_model

    if endpoint:
        if not endpoint_model:
            raise TunesmithError("Missing endpoint model", [Problem("--endpoint-model", "required with --endpoint",
                                                                    "the model name the server serves")])
        return backends.EndpointBackend(endpoint, endpoint_model, api_key_env, concurrency=concurrency,
                                        input_usd_per_mtok=prices[0], output_usd_per_mtok=prices[1])
    home = _project_of(paths, project)
    ref = teacher or (load_config(home)[0].model.base if home else "builtin:smollm2-135m-instruct")
    return backends.TransformersBackend(resolve_model(ref), adapter=adapter)


@data_app.command("synth")
def data_synth(paths: list[Path] = typer.Argument(..., help="Real records to grow from: files, or a project."),
               out: Path = typer.Option(..., help="Output JSONL of the kept synthetic records."),
               n: int = typer.Option(..., help="How many synthetic records to generate."),
               operators: str = typer.Option("paraphrase,typos,tone,edge_case,multi_issue,refuse,escalate",
                                             help="Variation operators, comma-separated, taken in turn; or "
                                             "weighted: paraphrase=3,refuse=1."),
               endpoint: Optional[str] = typer.Option(None, help="OpenAI-compatible base URL of the teacher "
                                                      "(OpenAI, vLLM, Ollama, llama.cpp, tunesmith serve)."),
               endpoint_model: Optional[str] = typer.Option(None, help="Model name on the endpoint."),
               api_key_env: Optional[str] = typer.Option(None, help="Environment variable with the key."),
               teacher: Optional[str] = typer.Option(None, help="A local teacher model instead of an endpoint "
                                                     "(default: the project's base model)."),
               adapter: Optional[Path] = typer.Option(None, help="A PEFT adapter applied on the local teacher."),
               concurrency: int = typer.Option(4, help="Requests in flight to the endpoint."),
               input_usd_per_mtok: Optional[float] = typer.Option(None, help="Price per million input tokens."),
               output_usd_per_mtok: Optional[float] = typer.Option(None, help="Price per million output tokens."),
               seed: int = typer.Option(0, help="Seed of the plan (which record, operator and examples per job)."),
               few_shot: int = typer.Option(3, help="Real examples shown to the teacher per reply."),
               max_new_tokens: int = typer.Option(256, help="Longest teacher reply."),
               rejected: Optional[Path] = typer.Option(None, help="Also write the dropped jobs with reasons."),
               project: Optional[Path] = typer.Option(None, help="Project whose task, JSON Schema and generation "
                                                      "cache apply (default: PATHS when it is a project).")) -> None:
    """Grow real examples into more with a teacher (variation operators), each reply held to the task's format,
    checked by the data doctor and deduplicated; an interrupted run resumes without repeating paid calls."""
    from tunesmith.config import Config, load_config
    from tunesmith.data.convert import resolve_data_paths
    from tunesmith.data.formats import load_records
    from tunesmith.data.synth import synthesize
    from tunesmith.generate.cache import GenerationCache
    from tunesmith.eval.evaluate import load_schema
    from tunesmith.models import cache_home

    files, fmt, base, columns = resolve_data_paths(paths)
    records = load_records(files, fmt, base, columns)
    home = _project_of(paths, project)
    cfg = load_config(home)[0] if home else Config()
    schema = load_schema(cfg, home) if home else None
    cache_dir = (home / ".tunesmith" / "cache") if home else cache_home() / "cache"
    be = _teacher_backend(paths, project, teacher, adapter, endpoint, endpoint_model, api_key_env, concurrency,
                          (input_usd_per_mtok, output_usd_per_mtok))
    weights = {k.strip(): float(v) for k, v in (o.split("=", 1) for o in operators.split(",") if "=" in o)}
    ops = weights if weights else operators
    try:
        summary = synthesize(records, be, n, ops, out, task=cfg.task, schema=schema, seed=seed,
                             cache=GenerationCache(cache_dir / "generations.sqlite"), few_shot=few_shot,
                             max_new_tokens=max_new_tokens, rejected_out=rejected)
    except KeyboardInterrupt:
        print("interrupted; finished teacher calls are cached: re-run the same command to resume", file=sys.stderr)
        raise typer.Exit(130)
    con = _console()
    cost = f", ${summary['cost_usd']:.4f}" if summary.get("cost_usd") is not None else ""
    con.print(f"{summary['kept']} of {summary['requested']} synthetic record(s) kept -> {out} "
              f"({summary['teacher_calls']} teacher calls, {summary['cache_hits']} cached, "
              f"{summary['tokens_in']:,} tokens in, {summary['tokens_out']:,} out{cost}, "
              f"{summary['wall_s']:.0f} s)")
    for reason, count in sorted(summary["dropped"].items(), key=lambda kv: -kv[1]):
        con.print(f"  dropped {count}: {reason}")
    con.print("Next: a person scores a sample before mixing: "
              f"tunesmith review sample {out} --review-dir <dir>")
    if not summary["kept"]:
        raise typer.Exit(1)


@data_app.command("scrub")
def data_scrub(paths: list[Path] = typer.Argument(..., help="Data files, or a project directory."),
               out: Path = typer.Option(..., help="Output JSONL: a redacted copy.")) -> None:
    """Write a redacted copy: personal data and secrets become typed placeholders ([EMAIL_1], the same entity
    getting the same placeholder within a record). The input is never changed."""
    from collections import Counter

    from tunesmith.data.convert import resolve_data_paths
    from tunesmith.data.formats import load_records
    from tunesmith.data.io import atomic_write_jsonl
    from tunesmith.data.pii import scrub_record

    files, fmt, base, columns = resolve_data_paths(paths)
    if any(out.resolve() == f.resolve() for f in files):
        from tunesmith.errors import fail

        raise fail("Refusing to overwrite the input", str(out), "output and input are the same file",
                   "write to a new file")
    scrubbed, kinds = [], Counter()
    for rec in load_records(files, fmt, base, columns):
        clean, mapping = scrub_record(rec)
        scrubbed.append(clean)
        kinds.update(kind for kind, _ in mapping)
    atomic_write_jsonl(out, (r.to_json() for r in scrubbed))
    summary = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "nothing found"
    _console().print(f"wrote {len(scrubbed)} record(s) to {out}")
    _console().print(f"redacted entities: {summary}")


@runs_app.command("list")
def runs_list(project: Path = typer.Argument(Path("."), help="Project directory.")) -> None:
    """List a project's run directories, oldest first."""
    from rich.table import Table

    from tunesmith.runs import list_runs

    table = Table()
    for col in ("run", "stage", "status", "wall time"):
        table.add_column(col)
    for r in list_runs(project):
        wall = (r["result"] or {}).get("stage_wall_s")
        table.add_row(r["name"], r["stage"], r["status"], f"{wall:.1f} s" if wall is not None else "-")
    _console().print(table)


@runs_app.command("show")
def runs_show(name: str = typer.Argument(..., help="Run name (or a unique part of it) or path."),
              project: Path = typer.Option(Path("."), help="Project directory.")) -> None:
    """Show one run: its inputs, files and result."""
    from tunesmith.runs import is_complete, resolve_run

    run_dir = resolve_run(project, name)
    con = _console()
    con.print(f"[bold]{run_dir}[/bold]  ({'completed' if is_complete(run_dir) else 'incomplete'})")
    con.print("files: " + ", ".join(sorted(p.name for p in run_dir.iterdir())))
    for fname in ("inputs.json", "result.json"):
        if (run_dir / fname).exists():
            con.print(f"[bold]{fname}[/bold]")
            con.print_json((run_dir / fname).read_text())


@model_app.command("prepare")
def model_prepare(ref: str = typer.Argument("builtin:smollm2-135m-instruct", help="Model reference."),
                  trust_remote_code: bool = typer.Option(False, help="Allow the model's own code to run.")) -> None:
    """Resolve a model reference (converting a GGUF once) and print where it is cached."""
    from tunesmith.models import resolve_model

    ref_ = resolve_model(ref, trust_remote_code)
    _console().print(f"{ref_.ref} -> {ref_.path}\nidentity {ref_.identity}")


@eval_app.command("score")
def eval_score(suite: Path = typer.Option(..., help="Suite JSONL (cases with `id`, `messages`, `expected`)."),
               responses: Path = typer.Option(..., help="Recorded outputs: JSONL lines with `id` and `output`."),
               project: Path = typer.Option(Path("."), help="Project whose task (type, fields, schema) scores."),
               out: Optional[Path] = typer.Option(None, help="Also write per-case results (JSONL) here."),
               as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON.")) -> None:
    """Score recorded outputs against a suite without generating (e.g. an API model's golden outputs)."""
    from rich.table import Table

    from tunesmith.config import load_config
    from tunesmith.data.io import atomic_write_jsonl
    from tunesmith.eval.evaluate import load_schema, score_responses
    from tunesmith.eval.suite import load_suite

    cfg, base = load_config(project)
    schema = load_schema(cfg, base)
    rows, metrics = score_responses(suite.stem, load_suite(suite, cfg.task), responses, cfg, schema)
    if out is not None:
        atomic_write_jsonl(out, rows)
    missing = sum(1 for r in rows if r.get("error"))
    if as_json:
        typer.echo(json.dumps({"suite": suite.stem, "metrics": metrics, "missing": missing}, indent=2))
        return
    table = Table(title=f"{suite.stem}: {len(rows)} case(s), {missing} without a response")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value))
    _console().print(table)


def _metrics_table(title: str, metrics: dict[str, dict]):
    """Suites (and slices) as columns, metrics as rows."""
    from rich.table import Table

    from tunesmith.eval.evaluate import SLICE

    names = list(metrics)
    table = Table(title=title)
    table.add_column("metric")
    for n in names:
        table.add_column(n.replace(SLICE, " · "), justify="right")
    keys = list(dict.fromkeys(k for m in metrics.values() for k in m))
    for key in keys:
        cells = []
        for n in names:
            v = metrics[n].get(key)
            cells.append("-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v))
        table.add_row(key, *cells)
    return table


@eval_app.command("run")
def eval_run(project: Path = typer.Argument(Path("."), help="Project directory."),
             model: Optional[str] = typer.Option(None, help="Model reference (default: the project's base)."),
             adapter: Optional[Path] = typer.Option(None, help="A PEFT adapter directory applied on the model."),
             endpoint: Optional[str] = typer.Option(None, help="OpenAI-compatible base URL to evaluate instead "
                                                    "of a local model, e.g. http://127.0.0.1:8000/v1."),
             endpoint_model: Optional[str] = typer.Option(None, help="Model name on the endpoint."),
             api_key_env: Optional[str] = typer.Option(None, help="Environment variable with the endpoint's key."),
             concurrency: int = typer.Option(4, help="Endpoint requests in flight at once."),
             backend: str = typer.Option("transformers", help="Local backend: transformers, vllm, or llamacpp "
                                         "(a .gguf --model run by llama.cpp, as Ollama runs it)."),
             no_cache: bool = typer.Option(False, "--no-cache", help="Generate every case again."),
             set_: list[str] = typer.Option([], "--set", help="Config override, e.g. eval.limit=20."),
             as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON.")) -> None:
    """Evaluate one model (local, with an adapter, or behind an endpoint) on the project's suites."""
    from tunesmith.config import EndpointConfig
    from tunesmith.errors import Problem, TunesmithError
    from tunesmith.eval.evaluate import SLICE
    from tunesmith.pipeline import evaluate_model

    if backend not in ("transformers", "vllm", "llamacpp"):
        raise TunesmithError("Unknown backend", [Problem("--backend", repr(backend),
                                                         "transformers, vllm or llamacpp")])
    ep = None
    if endpoint:
        if not endpoint_model:
            raise TunesmithError("Missing endpoint model", [Problem("--endpoint-model", "required with --endpoint",
                                                                    "the model name the server serves")])
        ep = EndpointConfig(base_url=endpoint, model=endpoint_model, api_key_env=api_key_env,
                            concurrency=concurrency)
    st = evaluate_model(project, model, adapter, ep, backend, set_, use_cache=not no_cache)
    metrics = st.result["metrics"]
    if as_json:
        typer.echo(json.dumps({"run": str(st.run_dir), "metrics": metrics}, indent=2))
        return
    con = _console()
    con.print(_metrics_table(f"{st.result['model']}: {st.run_dir.name}", metrics))
    errors = sum(m.get("errors") or 0 for n, m in metrics.items() if SLICE not in n)
    if errors:
        con.print(f"[yellow]{errors} case(s) have an error[/yellow]; see `error` in {st.run_dir / 'results.jsonl'}")


def _results_of(ref: str, project: Path) -> tuple[str, list[dict]]:
    """(name, rows) of an evaluation: a results.jsonl file, a run directory, or a unique part of a run's name."""
    from tunesmith.data.io import read_jsonl
    from tunesmith.errors import Problem, TunesmithError
    from tunesmith.runs import runs_root

    path = Path(ref)
    if path.is_dir():
        path = path / "results.jsonl"
    elif not path.exists():
        root = runs_root(project)
        found = [d for d in sorted(root.iterdir()) if ref in d.name and (d / "results.jsonl").exists()] \
            if root.exists() else []
        if len(found) != 1:
            raise TunesmithError("Unknown evaluation", [Problem(ref, f"{len(found)} evaluation runs match",
                                                                "give a results.jsonl, a run directory, or a "
                                                                "unique part of a run name (tunesmith runs list)")])
        path = found[0] / "results.jsonl"
    if not path.exists():
        raise TunesmithError("Unknown evaluation", [Problem(str(path), "no results.jsonl here",
                                                            "point to an eval run directory")])
    name = path.parent.name if path.name == "results.jsonl" else path.stem
    return name, [o for _, o in read_jsonl(path)]


@eval_app.command("compare")
def eval_compare(runs: list[str] = typer.Argument(..., help="Two or more evaluations (results.jsonl, run "
                                                 "directories or run names); the first is the baseline."),
                 project: Path = typer.Option(Path("."), help="Project whose gates and statistics apply."),
                 judge: bool = typer.Option(False, help="Also ask the project's LLM judge (eval.judge) for blind "
                                            "pairwise preference on the held-out cases."),
                 judge_limit: Optional[int] = typer.Option(None, help="Judge only the first N cases."),
                 human_preference: list[Path] = typer.Option([], help="A blind A/B review (`tunesmith review ab`: "
                                                             "its directory or preference.json) of the first "
                                                             "evaluation against a later one (repeatable)."),
                 out: Optional[Path] = typer.Option(None, help="Write the comparison (JSON) here."),
                 as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON.")) -> None:
    """Paired comparison of evaluations: deltas with intervals, McNemar's p, verdicts, gates (exit 1 on a fail)."""
    from tunesmith.config import Config, load_config
    from tunesmith.data.io import atomic_write_json
    from tunesmith.errors import Problem, TunesmithError
    from tunesmith.eval.compare import compare_many, print_comparison, print_gates

    if len(runs) < 2:
        raise TunesmithError("Nothing to compare", [Problem("RUNS", "give at least two evaluations", "")])
    cfg = load_config(project)[0] if (project / "tunesmith.yaml").exists() else Config()
    loaded = [_results_of(r, project) for r in runs]
    comparisons = compare_many(loaded, cfg)
    if judge:
        if cfg.eval.judge is None:
            raise TunesmithError("No judge configured", [Problem("eval.judge", "not set in tunesmith.yaml",
                                                                 "eval.judge: {base_url: ..., model: ...}")])
        from tunesmith.eval.judge import PairwiseJudge

        pj = PairwiseJudge(cfg.eval.judge)
        base_rows = {(r["suite"], r["id"]): r for r in loaded[0][1]}
        for comp, (_, rows) in zip(comparisons, loaded[1:]):
            pairs = [(base_rows[(r["suite"], r["id"])], r) for r in rows if r["suite"] == "heldout"
                     and (r["suite"], r["id"]) in base_rows and r.get("output") is not None
                     and base_rows[(r["suite"], r["id"])].get("output") is not None][:judge_limit]
            comp["preference"] = pj.compare([t.get("prompt") or "" for _, t in pairs], [b["output"] for b, _ in pairs],
                                            [t["output"] for _, t in pairs], cfg.eval.confidence)
    for path in human_preference:
        pref = _human_preference(path)
        b = Path(pref["results"]["b"])
        b_name = b.parent.name if b.name == "results.jsonl" else b.stem  # as _results_of names it
        comp = next((c for c in comparisons if c["candidate"] == b_name),
                    comparisons[0] if len(comparisons) == 1 else None)
        if comp is None:
            raise TunesmithError("The A/B review matches no comparison", [Problem(
                str(path), f"it compared {pref['results']['a']} with {pref['results']['b']}",
                "give the same evaluations to eval compare")])
        comp["preference_human"] = pref
    if out is not None:
        atomic_write_json(out, comparisons)
    if as_json:
        typer.echo(json.dumps(comparisons, indent=2))
    else:
        con = _console()
        for comp in comparisons:
            print_comparison(comp["metrics"], comp["confidence"], f"{comp['baseline']} vs {comp['candidate']}",
                             con, names=("A", "B"))
            print_gates(comp["gates"], con)
            for key in ("preference", "preference_human"):
                pref = comp.get(key)
                if pref and pref.get("judged"):
                    con.print(f"Judge {pref['judge']}: B wins {pref['wins']}, loses {pref['losses']}, ties "
                              f"{pref['ties']} of {pref['judged']}; win rate {pref['win_rate']:.3f} "
                              f"[{pref['ci_low']:.3f} .. {pref['ci_high']:.3f}] ({pref['verdict']})"
                              + (f"; {len(pref['errors'])} not judged" if pref["errors"] else "")
                              + (f"; {pref['undecided']} undecided" if pref.get("undecided") else ""))
    if not all(c["gate"]["passed"] for c in comparisons):
        raise typer.Exit(1)


def main() -> None:
    """Console entry point: user errors become a short message and exit code 2, never a traceback."""
    import warnings

    from tunesmith.errors import TunesmithError

    # Library deprecation notices are for tunesmith's developers (the tests show them), not its users.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import logging

    # bitsandbytes announces an optional CPU kernel package it did not find on every import; it works without it.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    try:
        app()
    except TunesmithError as err:
        from rich.console import Console
        from rich.markup import escape

        con = Console(stderr=True)
        con.print(f"[bold red]error:[/bold red] {escape(err.title)}")
        for p in err.problems:
            where = f"[bold]{escape(p.where)}[/bold]: " if p.where else ""
            con.print(f"  {where}{escape(p.message)}")
            if p.hint:
                con.print(f"    [cyan]hint:[/cyan] {escape(p.hint)}")
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; completed stages are kept and the next run resumes", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - a bug in tunesmith or a library: short message, full trace on disk
        import os
        import traceback

        if os.environ.get("TUNESMITH_DEBUG"):
            raise
        from tunesmith.models import cache_home

        log = cache_home() / "last-error.txt"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc())
        print(f"internal error: {type(exc).__name__}: {exc}\n  the full traceback is in {log} "
              "(set TUNESMITH_DEBUG=1 to print it); please report it", file=sys.stderr)
        sys.exit(3)
