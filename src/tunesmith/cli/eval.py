"""`tunesmith eval ...`: score recorded outputs, evaluate one model, compare evaluations.

tunesmith eval run my-project --endpoint http://127.0.0.1:8000/v1 --endpoint-model tuned
tunesmith eval compare eval-base eval-tuned --project my-project --judge
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tunesmith.cli.options import console, endpoint_config

eval_app = typer.Typer(help="Evaluation: score suites.", no_args_is_help=True)


@eval_app.command("score")
def eval_score(
    suite: Path = typer.Option(..., help="Suite JSONL (cases with `id`, `messages`, `expected`)."),
    responses: Path = typer.Option(..., help="Recorded outputs: JSONL lines with `id` and `output`."),
    project: Path = typer.Option(Path("."), help="Project whose task (type, fields, schema) scores."),
    out: Path | None = typer.Option(None, help="Also write per-case results (JSONL) here."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Score recorded outputs against a suite without generating (e.g. an API model's golden outputs)."""
    from tunesmith.cli.render import score_table
    from tunesmith.config import CONFIG_NAME, Config, load_config
    from tunesmith.data.project import load_schema
    from tunesmith.eval.evaluate import score_responses
    from tunesmith.eval.suite import load_suite
    from tunesmith.files import atomic_write_jsonl

    # A suite in IFEval's format, or with its own expected replies, needs no project: the defaults score it.
    has_project = (project / CONFIG_NAME).exists()
    cfg, base = load_config(project) if has_project else (Config(), project)
    schema = load_schema(cfg, base)
    rows, metrics, unmatched = score_responses(suite.stem, load_suite(suite, cfg.task), responses, cfg, schema)
    if out is not None:
        atomic_write_jsonl(out, rows)
    missing = sum(1 for r in rows if r.get("error"))
    left_out = [f"{p.where}: {p.message}" for p in unmatched]
    if as_json:
        report = {"suite": suite.stem, "metrics": metrics, "missing": missing, "unmatched": left_out}
        typer.echo(json.dumps(report, indent=2))
        return
    console().print(score_table(suite.stem, rows, metrics, missing))
    for line in left_out:
        console().print(f"[yellow]left out[/yellow] {line}")


@eval_app.command("run")
def eval_run(
    project: Path = typer.Argument(Path("."), help="Project directory."),
    model: str | None = typer.Option(None, help="Model reference (default: the project's base)."),
    adapter: Path | None = typer.Option(None, help="A PEFT adapter directory applied on the model."),
    endpoint: str | None = typer.Option(
        None, help="OpenAI-compatible base URL to evaluate instead of a local model, e.g. http://127.0.0.1:8000/v1."
    ),
    endpoint_model: str | None = typer.Option(None, help="Model name on the endpoint."),
    api_key_env: str | None = typer.Option(None, help="Environment variable with the endpoint's key."),
    concurrency: int = typer.Option(4, min=1, max=256, help="Endpoint requests in flight at once."),
    backend: str = typer.Option(
        "transformers",
        help="Local backend: transformers, vllm, or llamacpp (a .gguf --model run by llama.cpp, as Ollama runs it).",
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Generate every case again."),
    set_: list[str] = typer.Option([], "--set", help="Config override, e.g. eval.limit=20."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Evaluate one model (local, with an adapter, or behind an endpoint) on the project's suites."""
    from tunesmith.cli.render import print_eval_run
    from tunesmith.errors import Problem, TunesmithError
    from tunesmith.pipeline import evaluate_model

    if backend not in ("transformers", "vllm", "llamacpp"):
        raise TunesmithError("Unknown backend", [Problem("--backend", repr(backend), "transformers, vllm or llamacpp")])
    ep = endpoint_config(endpoint, endpoint_model, api_key_env, concurrency)
    if adapter is not None:
        from tunesmith.models import check_adapter_dir

        check_adapter_dir(adapter)  # before any stage starts, not after the base model is loaded
    st = evaluate_model(project, model, adapter, ep, backend, set_, use_cache=not no_cache)
    metrics = st.result.metrics
    if as_json:
        typer.echo(json.dumps({"run": str(st.run_dir), "metrics": metrics}, indent=2))
        return
    print_eval_run(st.result.model, st.run_dir, metrics, console())


@eval_app.command("compare")
def eval_compare(
    runs: list[str] = typer.Argument(
        ..., help="Two or more evaluations (results.jsonl, run directories or run names); the first is the baseline."
    ),
    project: Path = typer.Option(Path("."), help="Project whose gates and statistics apply."),
    judge: bool = typer.Option(
        False, help="Also ask the project's LLM judge (eval.judge) for blind pairwise preference on the held-out cases."
    ),
    judge_limit: int | None = typer.Option(None, min=1, help="Judge only the first N cases."),
    human_preference: list[Path] = typer.Option(
        [],
        help="A blind A/B review (`tunesmith review ab`: "
        "its directory or preference.json) of the first "
        "evaluation against a later one (repeatable).",
    ),
    out: Path | None = typer.Option(None, help="Write the comparison (JSON) here."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Paired comparison of evaluations: deltas with intervals, McNemar's p, verdicts, gates (exit 1 on a fail)."""
    from tunesmith.cli.render import print_comparisons
    from tunesmith.config import Config, load_config
    from tunesmith.errors import Problem, TunesmithError
    from tunesmith.eval.compare import compare_many
    from tunesmith.eval.pairing import judge_comparisons, load_evaluation
    from tunesmith.files import atomic_write_json
    from tunesmith.review.preference import attach_human_preference

    if len(runs) < 2:
        raise TunesmithError("Nothing to compare", [Problem("RUNS", "give at least two evaluations", "")])
    cfg = load_config(project)[0] if (project / "tunesmith.yaml").exists() else Config()
    loaded = [load_evaluation(r, project) for r in runs]
    comparisons = compare_many(loaded, cfg)
    if judge:
        judge_comparisons(comparisons, loaded, cfg, judge_limit)
    for path in human_preference:
        attach_human_preference(comparisons, path)
    if out is not None:
        atomic_write_json(out, comparisons)
    if as_json:
        typer.echo(json.dumps(comparisons, indent=2))
    else:
        print_comparisons(comparisons, console())
    if not all(c["gate"]["passed"] for c in comparisons):
        raise typer.Exit(1)
