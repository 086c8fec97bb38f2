"""The planning verbs, `tunesmith cost` and `tunesmith advise`, added to the main app by `register(app)`.

    tunesmith cost examples/support-triage                     # memory per method, time and dollars per GPU class
    tunesmith cost examples/support-triage --probe             # + time 3 real training steps here and extrapolate
    tunesmith cost --model-size 7B --method qlora --gpu 4090 --examples 2000 --tokens-per-example 400
    tunesmith advise examples/support-triage                   # prompting, RAG, fine-tuning, or both, and why
    tunesmith advise --need format --examples 20 --json
    tunesmith advise --interactive

Heavy imports live inside the commands, as in `tunesmith.cli`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

PRICES_HELP = ("A YAML or JSON file of GPUs merged over the built-in table by name: `gpus: {RTX 4090: {hourly_usd: "
               "0.39}, My A6000: {memory_gib: 48, tokens_per_s_per_b: 5000, hourly_usd: [0.45, 0.8]}}`.")


def _console():
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 120
    return console


def _gib(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}" if x < 10 else f"{x:.1f}"


def cost(project: Optional[Path] = typer.Argument(None, help="Project directory (its model, recipe and data)."),
         model_size: Optional[str] = typer.Option(None, "--model-size", help="Plan for a named llama-shaped size "
                                                  "instead: 135M, 1B, 3B, 7B, 8B, 13B, 34B, 70B."),
         model: Optional[str] = typer.Option(None, help="Size this model instead (directory, builtin:, .gguf, or a "
                                             "hub id: only its config.json is read)."),
         method: Optional[str] = typer.Option(None, help="lora, qlora or full (default: the project's)."),
         gpu: list[str] = typer.Option([], "--gpu", help="Only these GPU classes, e.g. --gpu 4090 (repeatable; "
                                       "default: the whole table)."),
         seq_len: Optional[int] = typer.Option(None, help="Sequence length (default: data.max_seq_len)."),
         batch_size: Optional[int] = typer.Option(None, help="Micro-batch (default: train.batch_size)."),
         grad_accum: Optional[int] = typer.Option(None, help="Accumulation steps (default: train.grad_accum)."),
         lora_r: Optional[int] = typer.Option(None, help="LoRA rank (default: train.lora_r)."),
         epochs: Optional[float] = typer.Option(None, help="Epochs (default: train.epochs)."),
         checkpointing: Optional[bool] = typer.Option(None, "--checkpointing/--no-checkpointing",
                                                      help="Gradient checkpointing (default: the project's)."),
         tokens: Optional[int] = typer.Option(None, help="Training tokens per epoch (default for a project: "
                                              "counted from its training split)."),
         examples: Optional[int] = typer.Option(None, help="Training examples (with --tokens-per-example)."),
         tokens_per_example: Optional[int] = typer.Option(None, help="Mean tokens per example."),
         prices: Optional[Path] = typer.Option(None, "--prices", help=PRICES_HELP),
         probe: bool = typer.Option(False, "--probe", help="Also time real training steps of the project's recipe "
                                    "on this machine and extrapolate to its token count."),
         probe_steps: int = typer.Option(3, help="Optimizer steps the probe runs (the first is not timed)."),
         hourly: Optional[float] = typer.Option(None, help="This machine's price per hour, for the probe and the "
                                                "cost per successful task (default: budget.hourly_usd)."),
         set_: list[str] = typer.Option([], "--set", help="Override a config field, e.g. --set train.lora_r=8."),
         as_json: bool = typer.Option(False, "--json", help="Print everything as JSON.")) -> None:
    """Memory per method (full, LoRA, QLoRA), training time and dollars per GPU class, and after an evaluation the
    cost per successful task."""
    report = cost_report(project, model_size, model, method, gpu, seq_len, batch_size, grad_accum, lora_r, epochs,
                         checkpointing, tokens, examples, tokens_per_example, prices, probe, probe_steps, hourly,
                         list(set_))
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        print_cost(report, _console())


def cost_report(project, model_size, model, method, gpu, seq_len, batch_size, grad_accum, lora_r, epochs,
                checkpointing, tokens, examples, tokens_per_example, prices, probe, probe_steps, hourly,
                overrides) -> dict[str, Any]:
    """Everything `tunesmith cost` prints, as one JSON-ready dict."""
    from dataclasses import asdict

    from tunesmith import cost as c
    from tunesmith.errors import Problem, TunesmithError

    values = {"method": method, "seq_len": seq_len, "batch_size": batch_size, "grad_accum": grad_accum,
              "lora_r": lora_r, "epochs": epochs, "gradient_checkpointing": checkpointing}
    table = c.gpus(prices)
    if gpu:
        table = {g.name: g for g in (c.find_gpu(table, name) for name in gpu)}
    if probe and project is None:
        raise TunesmithError("--probe needs a project", [Problem("--probe", "it trains the project's recipe on its "
                                                                 "data", "pass a project directory")])
    cfg, root, recipe = _plan_recipe(project, {k: v for k, v in values.items() if v is not None}, overrides)
    shape = _shape(cfg, model_size, model)
    notes: list[str] = []
    if examples is not None and tokens_per_example is not None:
        tokens = examples * tokens_per_example
    elif (examples is None) != (tokens_per_example is None) and tokens is None:
        raise TunesmithError("Incomplete token count", [Problem("--examples / --tokens-per-example",
                                                                "pass both (or --tokens)")])
    counted = None
    if cfg is not None and (tokens is None or probe):
        counted = _count(cfg, root, recipe)
        if tokens is None:
            tokens, examples = counted.tokens_per_epoch, counted.examples
            if model_size or model:
                notes.append(f"tokens counted with {cfg.model.base}'s tokenizer")
    if shape.params < c.SMALL_MODEL_PARAMS:
        notes.append(f"below {c.SMALL_MODEL_PARAMS / 1e9:g}B parameters the table's speeds are optimistic (a small "
                     "model does not keep a GPU busy): --probe measures")
    trained = None
    if tokens is not None:
        trained = c.trained_tokens(tokens, examples, recipe) if examples else tokens * c.epochs_of(recipe, None)
    rate_hourly = hourly if hourly is not None else (cfg.budget.hourly_usd if cfg is not None else None)
    report: dict[str, Any] = {
        "model": {"name": shape.name, "size": shape.label, "params": shape.params, "layers": shape.layers,
                  "hidden": shape.hidden, "vocab": shape.vocab},
        "recipe": asdict(recipe),
        "tokens": {"examples": examples, "per_epoch": tokens, "trained": trained},
        "memory": {m: c.estimate_memory(shape, recipe, m).to_json() for m in ("full", "lora", "qlora")},
        "gpus": c.gpu_rows(shape, recipe, trained, table),
        "notes": notes,
    }
    if probe:
        measured = c.measure(cfg, counted.model_ref, counted.records, probe_steps)
        measured.update(c.extrapolate(measured, trained, recipe.nproc, rate_hourly), trained_tokens=trained,
                        hourly_usd=rate_hourly, estimated_gib=c.estimate_memory(
                            c.model_shape(cfg.model.base, cfg.model.trust_remote_code), recipe).total)
        report["probe"] = measured
        if cfg.train.objective != "sft":
            notes.append(f"the probe times the SFT recipe; {cfg.train.objective} steps cost more")
        if recipe.nproc > 1:
            notes.append(f"the probe runs one process; the time assumes {recipe.nproc} scale linearly")
        if model_size or model:
            notes.append(f"the probe trains the project's model ({cfg.model.base}), not {model_size or model}")
    if root is not None:
        spent = c.eval_costs(root, rate_hourly)
        if spent["evaluations"] or spent["train_cost_usd"] is not None:
            report["success_cost"] = spent
    return report


def _plan_recipe(project, values: dict[str, Any], overrides: list[str]):
    """(config, project dir, recipe): a project's, with the flags as config overrides (so a probe trains exactly
    what is planned), or tunesmith's defaults with the flags."""
    from dataclasses import replace

    from tunesmith import cost as c
    from tunesmith.errors import Problem, TunesmithError

    if project is not None:
        from tunesmith.config import load_config

        paths = {"seq_len": "data.max_seq_len"}
        flags = [f"{paths.get(k, 'train.' + k)}={str(v).lower() if isinstance(v, bool) else v}"
                 for k, v in values.items()]
        cfg, root = load_config(project, overrides + flags)
        return cfg, root, c.Recipe.from_config(cfg)
    recipe = replace(c.Recipe(), **values)
    if recipe.method not in c.FLOPS_PER_TOKEN:
        raise TunesmithError("Unknown method", [Problem(f"--method {recipe.method}", "not lora, qlora or full")])
    return None, None, recipe


def _shape(cfg, model_size: str | None, model: str | None):
    from tunesmith import cost as c
    from tunesmith.errors import Problem, TunesmithError

    if model_size:
        return c.named_shape(model_size)
    if model:
        return c.model_shape(model)
    if cfg is not None:
        return c.model_shape(cfg.model.base, cfg.model.trust_remote_code)
    raise TunesmithError("Nothing to size", [Problem("cost", "no project, --model-size or --model",
                                                     "e.g. tunesmith cost --model-size 7B --method qlora")])


def _count(cfg, root, recipe):
    """The project's training split, tokenized (its model resolved once for the count and the probe)."""
    from tunesmith.models import resolve_model
    from tunesmith.pipeline import project_tokens

    return project_tokens(cfg, root, resolve_model(cfg.model.base, cfg.model.trust_remote_code), recipe)


def print_cost(report: dict[str, Any], console) -> None:
    """The cost report as rich tables."""
    from rich.table import Table

    from tunesmith.cost import METHOD_NAMES, hours_text, money, usd_text

    m, r, t = report["model"], report["recipe"], report["tokens"]
    console.print(f"[bold]{m['name']}[/bold]: {m['params']:,} parameters ({m['size']}); "
                  f"{METHOD_NAMES[r['method']]}" + (f" r={r['lora_r']}" if r["method"] != "full" else "")
                  + f", batch {r['batch_size']} x accumulation {r['grad_accum']}, sequence length {r['seq_len']}, "
                  f"gradient checkpointing {'on' if r['gradient_checkpointing'] else 'off'}")
    if t["per_epoch"] is not None:
        console.print((f"{t['examples']:,} examples, " if t["examples"] else "") + f"{t['per_epoch']:,} tokens per "
                      f"epoch -> {t['trained']:,.0f} tokens trained")
    table = Table(title="GPU memory per training process (GiB; micro-batches padded to the full length)")
    table.add_column("component")
    for method in ("full", "lora", "qlora"):
        table.add_column(METHOD_NAMES[method] + (" *" if method == r["method"] else ""), justify="right")
    mem = report["memory"]
    rows = [("weights", "weights"), ("adapter", "adapter"), ("gradients", "gradients"), ("optimizer (AdamW)",
            "optimizer"), ("activations, stored", "activations_stored"), ("activations, checkpointed",
            "activations_checkpointed"), ("loss tile", "logits"), ("CUDA overhead", "overhead"),
            ("total without checkpointing", "total_stored"), ("total with checkpointing", "total_checkpointed")]
    for label, key in rows:
        bold = label.startswith("total")
        table.add_row(f"[bold]{label}[/bold]" if bold else label,
                      *[f"[bold]{_gib(mem[x][key])}[/bold]" if bold else _gib(mem[x][key])
                        for x in ("full", "lora", "qlora")])
    console.print(table)
    gt = Table(title=f"{METHOD_NAMES[r['method']]} per GPU class (one GPU; time at 40% to 20% of peak bf16)")
    for col, just in (("GPU", "left"), ("GiB needed / card", "right"), ("fits", "left"), ("needs", "left"), ("time", "right"),
                      ("cost", "right")):
        gt.add_column(col, justify=just)
    for row in report["gpus"]:
        gt.add_row(row["gpu"], f"{_gib(row['total_gib'])} / {row['memory_gib']:g}",
                   "[green]yes[/green]" if row["fits"] else "[red]no[/red]", row["change"] or "",
                   hours_text(tuple(row["hours"])) if row.get("hours") else "-",
                   usd_text(tuple(row["usd"]) if row.get("usd") else None) if row.get("hours") else "-")
    console.print(gt)
    for row in report["gpus"]:
        if row.get("line"):
            console.print(f"  {row['line']}")
    p = report.get("probe")
    if p:
        when = hours_text((p["hours"], p["hours"])) if p.get("hours") is not None else "?"
        price = f", ${money(p['usd'])} at ${p['hourly_usd']:g}/h" if p.get("usd") is not None else ""
        peak = (f"; peak memory {p['peak_memory_gib']:.2f} GiB measured vs {p['estimated_gib']:.2f} estimated"
                if p.get("peak_memory_gib") is not None else "")
        console.print(f"Probe on {p['device']} ({p['precision']}): {p['steps']} steps, "
                      f"{p['tokens_per_s'] or 0:,.0f} tokens/s measured over {p['measured_steps'] or p['steps']} -> "
                      f"{p['trained_tokens']:,.0f} tokens in about {when} on this machine{price}{peak}")
    if report.get("success_cost"):
        print_success_cost(report["success_cost"], console)
    for note in report.get("notes", []):
        console.print(f"[dim]note: {note}[/dim]")


def print_success_cost(s: dict[str, Any], console) -> None:
    """Inference cost per successful task of each evaluation, and the training cost."""
    from rich.table import Table

    from tunesmith.cost import money

    if s:
        st = Table(title="Cost per successful task (inference on the held-out set)")
        for col in ("model", "cases", "successes", "cost", "per success", "basis"):
            st.add_column(col, justify="left" if col in ("model", "basis") else "right")
        for e in s["evaluations"]:
            st.add_row(e["model"], str(e.get("cases") or "-"), str(e.get("successes") if e.get("successes")
                                                                    is not None else "-"),
                       f"${money(e['cost_usd'])}" if e.get("cost_usd") is not None else "-",
                       f"${money(e['cost_per_success_usd'])}" if e.get("cost_per_success_usd") is not None
                       else "no successes" if e.get("successes") == 0 else "-",
                       e.get("basis") or "no price: --hourly or budget.hourly_usd")
        console.print(st)
        if s.get("train_cost_usd") is not None:
            console.print(f"Training cost of the last run: ${money(s['train_cost_usd'])}")


def advise(project: Optional[Path] = typer.Argument(None, help="Project directory: its data and eval results "
                                                    "answer what they can."),
           need: list[str] = typer.Option([], "--need", help="What the model must get right (repeatable): format, "
                                          "style, classification, tools, behavior, facts."),
           facts_change: Optional[bool] = typer.Option(None, "--facts-change/--stable-facts",
                                                       help="Does it need facts that change?"),
           citations: Optional[bool] = typer.Option(None, "--citations/--no-citations",
                                                    help="Must answers cite current sources?"),
           volume: Optional[str] = typer.Option(None, help="one-off, low or high."),
           experimenting: Optional[bool] = typer.Option(None, "--experimenting/--settled",
                                                        help="Still exploring what the task is?"),
           task: Optional[str] = typer.Option(None, help="style, classification, structured or complex (sets how "
                                              "many examples it needs)."),
           examples: Optional[int] = typer.Option(None, help="Good examples you have."),
           gpu: Optional[str] = typer.Option(None, help="Your GPU by name (see `tunesmith cost`)."),
           vram: Optional[float] = typer.Option(None, help="Or its memory in GiB."),
           interactive: bool = typer.Option(False, "--interactive", "-i", help="Answer a short questionnaire."),
           set_: list[str] = typer.Option([], "--set", help="Override a config field of the project."),
           as_json: bool = typer.Option(False, "--json", help="Print the advice as JSON.")) -> None:
    """Prompting, RAG, fine-tuning, or fine-tuning plus RAG, with the reasons; the method and model size that fit
    your GPU; how many examples the task needs and how many it has."""
    from tunesmith.advise import Answers, advise as decide, answers_from_project, questionnaire

    a = answers_from_project(project, list(set_)) if project is not None else Answers()
    a.needs = list(dict.fromkeys([*a.needs, *need]))
    for name, value in (("facts_change", facts_change), ("citations", citations), ("volume", volume),
                        ("experimenting", experimenting), ("task", task), ("examples", examples), ("gpu", gpu),
                        ("gpu_memory_gib", vram)):
        if value is not None:
            setattr(a, name, value)
    if a.gpu is None and a.gpu_memory_gib is None:
        _local_gpu(a)
    if interactive:
        a = questionnaire(a, typer.prompt, typer.confirm)
    advice = decide(a)
    if as_json:
        typer.echo(json.dumps(advice.to_json(), indent=2, default=str))
    else:
        print_advice(advice, _console())


def _local_gpu(a) -> None:
    """This machine's GPU, when it has one (the card the user will most likely train on)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        a.gpu, a.gpu_memory_gib = f"{props.name} (this machine)", props.total_memory / 1024 ** 3


def print_advice(advice, console) -> None:
    from rich.table import Table

    from tunesmith.cost import METHOD_NAMES

    names = {"prompting": "PROMPTING", "rag": "RAG", "fine-tune": "FINE-TUNING", "fine-tune+rag":
             "FINE-TUNING + RAG"}
    console.print(f"Recommendation: [bold]{names[advice.recommendation]}[/bold]")
    table = Table(show_header=True)
    for col in ("points to", "reason", "source"):
        table.add_column(col)
    for r in advice.reasons:
        table.add_row(r.points_to, r.text, r.source)
    console.print(table)
    low, high = advice.examples_needed
    need = f"{low:,}-{high:,}" if high else f"{low:,}+"
    have = "unknown" if advice.examples_have is None else f"{advice.examples_have:,}"
    console.print(f"Examples: a {advice.task} task starts at {need} (the guide); you have {have}")
    prefix = "" if advice.recommendation.startswith("fine-tune") else "If you fine-tune: "
    if advice.model_size:
        console.print(f"{prefix}on {advice.gpu} ({advice.gpu_memory_gib:g} GiB): up to {advice.model_size} with "
                      f"{METHOD_NAMES[advice.method]}" + (f" ({advice.fit_change})" if advice.fit_change else ""))
    else:
        console.print(f"{prefix}no model size of the table trains on {advice.gpu} ({advice.gpu_memory_gib:g} GiB)")
    pm = advice.project_model
    if pm:
        console.print(f"Your model {pm['model']} ({pm['size']}) with {METHOD_NAMES[pm['method']]}: "
                      + (f"fits ({pm['total_gib']:.1f} GiB)" if pm["fits"] else "does not fit")
                      + (f", with {pm['change']}" if pm["fits"] and pm["change"] else ""))
    for step in advice.next_steps:
        console.print(f"  - {step}")
    for note in advice.notes:
        console.print(f"[dim]note: {note}[/dim]")


def register(app: typer.Typer) -> None:
    """Add `cost` and `advise` to the main app."""
    app.command("cost")(cost)
    app.command("advise")(advise)
