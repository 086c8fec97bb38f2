"""Planning in the terminal: `tunesmith cost` (memory, time and dollars per GPU class, the probe, the cost per
successful task) and `tunesmith advise`."""

from __future__ import annotations

from typing import Any


def _gib(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}" if x < 10 else f"{x:.1f}"


# The memory table's rows: (label, key of MemoryEstimate.to_json()).
MEMORY_ROWS = (
    ("weights", "weights"),
    ("adapter", "adapter"),
    ("gradients", "gradients"),
    ("optimizer (AdamW)", "optimizer"),
    ("activations, stored", "activations_stored"),
    ("activations, checkpointed", "activations_checkpointed"),
    ("loss tile", "logits"),
    ("CUDA overhead", "overhead"),
    ("total without checkpointing", "total_stored"),
    ("total with checkpointing", "total_checkpointed"),
)
GPU_COLUMNS = (
    ("GPU", "left"),
    ("GiB needed / card", "right"),
    ("fits", "left"),
    ("needs", "left"),
    ("time", "right"),
    ("cost", "right"),
)


def print_cost(report: dict[str, Any], console) -> None:
    """The cost report as rich tables: the model and recipe, the tokens, memory per method, the GPU classes, the
    probe, the cost per successful task, the notes."""
    _print_plan(report, console)
    console.print(_memory_table(report))
    console.print(_gpu_table(report))
    for row in report["gpus"]:
        if row.get("line"):
            console.print(f"  {row['line']}")
    if report.get("probe"):
        _print_probe(report["probe"], console)
    if report.get("success_cost"):
        print_success_cost(report["success_cost"], console)
    for note in report.get("notes", []):
        console.print(f"[dim]note: {note}[/dim]")


def _print_plan(report: dict[str, Any], console) -> None:
    """The model and the recipe in one line, then the tokens when they are known."""
    from tunesmith.cost import METHOD_NAMES

    m, r, t = report["model"], report["recipe"], report["tokens"]
    console.print(
        f"[bold]{m['name']}[/bold]: {m['params']:,} parameters ({m['size']}); "
        f"{METHOD_NAMES[r['method']]}"
        + (f" r={r['lora_r']}" if r["method"] != "full" else "")
        + f", batch {r['batch_size']} x accumulation {r['grad_accum']}, sequence length {r['seq_len']}, "
        f"gradient checkpointing {'on' if r['gradient_checkpointing'] else 'off'}"
    )
    if t["per_epoch"] is not None:
        console.print(
            (f"{t['examples']:,} examples, " if t["examples"] else "") + f"{t['per_epoch']:,} tokens per "
            f"epoch -> {t['trained']:,.0f} tokens trained"
        )


def _memory_table(report: dict[str, Any]):
    """GiB per component for each method, the planned method starred and the totals in bold."""
    from rich.table import Table

    from tunesmith.cost import METHOD_NAMES

    table = Table(title="GPU memory per training process (GiB; micro-batches padded to the full length)")
    table.add_column("component")
    for method in ("full", "lora", "qlora"):
        table.add_column(METHOD_NAMES[method] + (" *" if method == report["recipe"]["method"] else ""), justify="right")
    mem = report["memory"]
    for label, key in MEMORY_ROWS:
        bold = label.startswith("total")
        table.add_row(
            f"[bold]{label}[/bold]" if bold else label,
            *[f"[bold]{_gib(mem[x][key])}[/bold]" if bold else _gib(mem[x][key]) for x in ("full", "lora", "qlora")],
        )
    return table


def _gpu_table(report: dict[str, Any]):
    """One row per GPU class: memory needed against the card's, whether it fits and with what change, time, cost."""
    from rich.table import Table

    from tunesmith.cost import METHOD_NAMES, hours_text, usd_text

    method = METHOD_NAMES[report["recipe"]["method"]]
    table = Table(title=f"{method} per GPU class (one GPU; time at 40% to 20% of peak bf16)")
    for col, just in GPU_COLUMNS:
        table.add_column(col, justify=just)
    for row in report["gpus"]:
        table.add_row(
            row["gpu"],
            f"{_gib(row['total_gib'])} / {row['memory_gib']:g}",
            "[green]yes[/green]" if row["fits"] else "[red]no[/red]",
            row["change"] or "",
            hours_text(tuple(row["hours"])) if row.get("hours") else "-",
            usd_text(tuple(row["usd"]) if row.get("usd") else None) if row.get("hours") else "-",
        )
    return table


def _print_probe(p: dict[str, Any], console) -> None:
    """The probe's measured rate, the time (and dollars) it extrapolates to, and its peak memory against the plan."""
    from tunesmith.cost import hours_text, money

    when = hours_text((p["hours"], p["hours"])) if p.get("hours") is not None else "?"
    price = f", ${money(p['usd'])} at ${p['hourly_usd']:g}/h" if p.get("usd") is not None else ""
    peak = (
        f"; peak memory {p['peak_memory_gib']:.2f} GiB measured vs {p['estimated_gib']:.2f} estimated"
        if p.get("peak_memory_gib") is not None
        else ""
    )
    console.print(
        f"Probe on {p['device']} ({p['precision']}): {p['steps']} steps, "
        f"{p['tokens_per_s'] or 0:,.0f} tokens/s measured over {p['measured_steps'] or p['steps']} -> "
        f"{p['trained_tokens']:,.0f} tokens in about {when} on this machine{price}{peak}"
    )


def print_success_cost(s: dict[str, Any], console) -> None:
    """Inference cost per successful task of each evaluation, and the training cost."""
    from rich.table import Table

    from tunesmith.cost import money

    if s:
        st = Table(title="Cost per successful task (inference on the held-out set)")
        for col in ("model", "cases", "successes", "cost", "per success", "basis"):
            st.add_column(col, justify="left" if col in ("model", "basis") else "right")
        for e in s["evaluations"]:
            st.add_row(
                e["model"],
                str(e.get("cases") or "-"),
                str(e.get("successes") if e.get("successes") is not None else "-"),
                f"${money(e['cost_usd'])}" if e.get("cost_usd") is not None else "-",
                f"${money(e['cost_per_success_usd'])}"
                if e.get("cost_per_success_usd") is not None
                else "no successes"
                if e.get("successes") == 0
                else "-",
                e.get("basis") or "no price: --hourly or budget.hourly_usd",
            )
        console.print(st)
        if s.get("train_cost_usd") is not None:
            console.print(f"Training cost of the last run: ${money(s['train_cost_usd'])}")


def print_advice(advice, console) -> None:
    """`tunesmith advise`: the recommendation, its reasons, the examples needed, the method and size that fit."""
    from rich.table import Table

    from tunesmith.cost import METHOD_NAMES

    names = {"prompting": "PROMPTING", "rag": "RAG", "fine-tune": "FINE-TUNING", "fine-tune+rag": "FINE-TUNING + RAG"}
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
        console.print(
            f"{prefix}on {advice.gpu} ({advice.gpu_memory_gib:g} GiB): up to {advice.model_size} with "
            f"{METHOD_NAMES[advice.method]}" + (f" ({advice.fit_change})" if advice.fit_change else "")
        )
    else:
        console.print(f"{prefix}no model size of the table trains on {advice.gpu} ({advice.gpu_memory_gib:g} GiB)")
    pm = advice.project_model
    if pm:
        console.print(
            f"Your model {pm['model']} ({pm['size']}) with {METHOD_NAMES[pm['method']]}: "
            + (f"fits ({pm['total_gib']:.1f} GiB)" if pm["fits"] else "does not fit")
            + (f", with {pm['change']}" if pm["fits"] and pm["change"] else "")
        )
    for step in advice.next_steps:
        console.print(f"  - {step}")
    for note in advice.notes:
        console.print(f"[dim]note: {note}[/dim]")
