"""`tunesmith cost` and `tunesmith advise`: planning before training.

    tunesmith cost examples/support-triage                     # memory per method, time and dollars per GPU class
    tunesmith cost examples/support-triage --probe             # + time 3 real training steps here and extrapolate
    tunesmith cost --model-size 7B --method qlora --gpu 4090 --examples 2000 --tokens-per-example 400
    tunesmith advise examples/support-triage                   # prompting, RAG, fine-tuning, or both, and why
    tunesmith advise --need format --examples 20 --json
    tunesmith advise --interactive

The reports are built by `tunesmith.pipeline.planning.cost_report` and `tunesmith.advise.advise`, printed by
`tunesmith.cli.render`.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tunesmith.cli.options import console

PRICES_HELP = (
    "A YAML or JSON file of GPUs merged over the built-in table by name: `gpus: {RTX 4090: {hourly_usd: "
    "0.39}, My A6000: {memory_gib: 48, tokens_per_s_per_b: 5000, hourly_usd: [0.45, 0.8]}}`."
)
PROBE_HELP = "Also time real training steps of the project's recipe on this machine and extrapolate to its token count."
HOURLY_HELP = (
    "This machine's price per hour, for the probe and the cost per successful task (default: budget.hourly_usd)."
)
# The Recipe fields `tunesmith cost`'s options set (None: the project's or the default), in the order of `cost`.
RECIPE_OPTIONS = ("method", "seq_len", "batch_size", "grad_accum", "lora_r", "epochs", "gradient_checkpointing")


def register(app: typer.Typer) -> None:
    """Add `cost` and `advise` to the main app."""
    app.command("cost")(cost)
    app.command("advise")(advise)


def cost(
    project: Path | None = typer.Argument(None, help="Project directory (its model, recipe and data)."),
    model_size: str | None = typer.Option(
        None, "--model-size", help="Plan for a named llama-shaped size instead: 135M, 1B, 3B, 7B, 8B, 13B, 34B, 70B."
    ),
    model: str | None = typer.Option(
        None, help="Size this model instead (directory, builtin:, .gguf, or a hub id: only its config.json is read)."
    ),
    method: str | None = typer.Option(None, help="lora, qlora or full (default: the project's)."),
    gpu: list[str] = typer.Option(
        [], "--gpu", help="Only these GPU classes, e.g. --gpu 4090 (repeatable; default: the whole table)."
    ),
    seq_len: int | None = typer.Option(None, help="Sequence length (default: data.max_seq_len)."),
    batch_size: int | None = typer.Option(None, help="Micro-batch (default: train.batch_size)."),
    grad_accum: int | None = typer.Option(None, help="Accumulation steps (default: train.grad_accum)."),
    lora_r: int | None = typer.Option(None, help="LoRA rank (default: train.lora.r)."),
    epochs: float | None = typer.Option(None, help="Epochs (default: train.epochs)."),
    checkpointing: bool | None = typer.Option(
        None, "--checkpointing/--no-checkpointing", help="Gradient checkpointing (default: the project's)."
    ),
    tokens: int | None = typer.Option(
        None, help="Training tokens per epoch (default for a project: counted from its training split)."
    ),
    examples: int | None = typer.Option(None, help="Training examples (with --tokens-per-example)."),
    tokens_per_example: int | None = typer.Option(None, help="Mean tokens per example."),
    prices: Path | None = typer.Option(None, "--prices", help=PRICES_HELP),
    probe: bool = typer.Option(False, "--probe", help=PROBE_HELP),
    probe_steps: int = typer.Option(3, help="Optimizer steps the probe runs (the first is not timed)."),
    hourly: float | None = typer.Option(None, help=HOURLY_HELP),
    set_: list[str] = typer.Option([], "--set", help="Override a config field, e.g. --set train.lora.r=8."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON."),
) -> None:
    """Memory per method (full, LoRA, QLoRA), training time and dollars per GPU class, and after an evaluation the
    cost per successful task."""
    from tunesmith.cli.render import print_cost
    from tunesmith.pipeline.planning import Pricing, TokenCount, cost_report

    settings = dict(zip(RECIPE_OPTIONS, (method, seq_len, batch_size, grad_accum, lora_r, epochs, checkpointing)))
    report = cost_report(
        project,
        model_size,
        model,
        settings,
        overrides=list(set_),
        count=TokenCount(tokens, examples, tokens_per_example),
        pricing=Pricing(tuple(gpu), prices, hourly),
        probe_steps=probe_steps if probe else None,
    )
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        print_cost(report, console(highlight=False))


def advise(
    project: Path | None = typer.Argument(
        None, help="Project directory: its data and eval results answer what they can."
    ),
    need: list[str] = typer.Option(
        [],
        "--need",
        help="What the model must get right (repeatable): format, style, classification, tools, behavior, facts.",
    ),
    facts_change: bool | None = typer.Option(
        None, "--facts-change/--stable-facts", help="Does it need facts that change?"
    ),
    citations: bool | None = typer.Option(
        None, "--citations/--no-citations", help="Must answers cite current sources?"
    ),
    volume: str | None = typer.Option(None, help="one-off, low or high."),
    experimenting: bool | None = typer.Option(
        None, "--experimenting/--settled", help="Still exploring what the task is?"
    ),
    task: str | None = typer.Option(
        None, help="style, classification, structured or complex (sets how many examples it needs)."
    ),
    examples: int | None = typer.Option(None, help="Good examples you have."),
    gpu: str | None = typer.Option(None, help="Your GPU by name (see `tunesmith cost`)."),
    vram: float | None = typer.Option(None, help="Or its memory in GiB."),
    interactive: bool = typer.Option(False, "--interactive", "-i", help="Answer a short questionnaire."),
    set_: list[str] = typer.Option([], "--set", help="Override a config field of the project."),
    as_json: bool = typer.Option(False, "--json", help="Print the advice as JSON."),
) -> None:
    """Prompting, RAG, fine-tuning, or fine-tuning plus RAG, with the reasons; the method and model size that fit
    your GPU; how many examples the task needs and how many it has."""
    from tunesmith.advise import Answers, answers_from_project, local_gpu, questionnaire
    from tunesmith.advise import advise as decide
    from tunesmith.cli.render import print_advice

    a = answers_from_project(project, list(set_)) if project is not None else Answers()
    a.needs = list(dict.fromkeys([*a.needs, *need]))
    for name, value in (
        ("facts_change", facts_change),
        ("citations", citations),
        ("volume", volume),
        ("experimenting", experimenting),
        ("task", task),
        ("examples", examples),
        ("gpu", gpu),
        ("gpu_memory_gib", vram),
    ):
        if value is not None:
            setattr(a, name, value)
    if a.gpu is None and a.gpu_memory_gib is None:
        local_gpu(a)
    if interactive:
        a = questionnaire(a, typer.prompt, typer.confirm)
    advice = decide(a)
    if as_json:
        typer.echo(json.dumps(advice.to_json(), indent=2, default=str))
    else:
        print_advice(advice, console(highlight=False))
