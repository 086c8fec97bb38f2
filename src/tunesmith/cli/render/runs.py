"""Runs, training, export, review and errors in the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def invariants_table(results: list):
    """`train --check`: one row per training invariant, pass or FAIL, with its detail."""
    from rich.table import Table

    table = Table(title="Training invariants")
    for col in ("invariant", "result", "detail"):
        table.add_column(col)
    for r in results:
        table.add_row(r.name, "[green]pass[/green]" if r.passed else "[red]FAIL[/red]", r.detail)
    return table


def train_line(st) -> str:
    """`train`: steps, loss, speed and parameters of the train stage `st` (its `TrainResult`), and where its
    weights are."""
    r = st.result
    return (
        f"{r.recipe}: {r.steps} steps, loss {r.train_loss:.3f}, "
        f"{r.tokens_per_s or 0:.0f} tokens/s, {r.trainable_params:,} trainable of "
        f"{r.total_params:,} parameters ({r.precision})"
        + (" [cached]" if st.cached else "")
        + f"\n{st.run_dir / (r.weights or '')}"
    )


def export_table(manifest: dict[str, Any]):
    """`export`: every file written, per format, with its size (README.md: the model card); where it was pushed."""
    from rich.table import Table

    hub = manifest.get("hub")
    caption = f"pushed to {hub['url']} ({'private' if hub['private'] else 'public'})" if hub else None
    table = Table(title=f"Exported from {manifest['adapter'] or manifest['base']}", caption=caption)
    for col in ("format", "file", "size"):
        table.add_column(col)
    for fmt, info in manifest["exports"].items():
        for name, f in info["files"].items():
            table.add_row(fmt, str(Path(info["path"]) / name), f"{f['bytes'] / 1e6:,.1f} MB")
    return table


def runs_table(runs: list[dict[str, Any]]):
    """`runs list`: name, stage, status and wall time of each run."""
    from rich.table import Table

    table = Table()
    for col in ("run", "stage", "status", "wall time"):
        table.add_column(col)
    for r in runs:
        wall = (r["result"] or {}).get("stage_wall_s")
        table.add_row(r["name"], r["stage"], r["status"], f"{wall:.1f} s" if wall is not None else "-")
    return table


def print_run(run_dir: Path, complete: bool, console) -> None:
    """`runs show`: a run's files, inputs and result."""
    console.print(f"[bold]{run_dir}[/bold]  ({'completed' if complete else 'incomplete'})")
    console.print("files: " + ", ".join(sorted(p.name for p in run_dir.iterdir())))
    for fname in ("inputs.json", "result.json"):
        if (run_dir / fname).exists():
            console.print(f"[bold]{fname}[/bold]")
            console.print_json((run_dir / fname).read_text())


def print_synth(summary: dict[str, Any], out: Path, console) -> None:
    """`data synth`: what was kept, what it cost, why the rest was dropped, and the next step."""
    cost = f", ${summary['cost_usd']:.4f}" if summary.get("cost_usd") is not None else ""
    console.print(
        f"{summary['kept']} of {summary['requested']} synthetic record(s) kept -> {out} "
        f"({summary['teacher_calls']} teacher calls, {summary['cache_hits']} cached, "
        f"{summary['tokens_in']:,} tokens in, {summary['tokens_out']:,} out{cost}, "
        f"{summary['wall_s']:.0f} s)"
    )
    for reason, count in sorted(summary["dropped"].items(), key=lambda kv: -kv[1]):
        console.print(f"  dropped {count}: {reason}")
    console.print(f"Next: a person scores a sample before mixing: tunesmith review sample {out} --review-dir <dir>")


def print_review_summary(summary: dict[str, Any], console) -> None:
    """A review's state: the sample's estimated pass rate, or the blind A/B win rate, with its interval."""
    if summary.get("kind") == "preference" or "win_rate" in summary:
        judged = summary.get("judged") or 0
        rate = summary.get("win_rate")
        console.print(
            f"Blind A/B ({summary.get('baseline')} vs {summary.get('candidate')}): {judged} judged, "
            f"B wins {summary.get('wins')}, loses {summary.get('losses')}, ties {summary.get('ties')}"
            + (
                f"; win rate {rate:.3f} [{summary['ci_low']:.3f} .. {summary['ci_high']:.3f}] "
                f"({summary.get('verdict')})"
                if judged and rate is not None
                else ""
            )
        )
        return
    est = summary.get("pass_rate")
    console.print(
        f"Sample of {summary.get('sampled')} from {summary.get('population')} records: "
        f"{summary.get('decided')} decided"
        + (
            f"; estimated pass rate {est:.3f} [{summary['ci_low']:.3f} .. {summary['ci_high']:.3f}], "
            f"verdict {summary.get('verdict')}"
            if est is not None
            else ""
        )
    )


def mix_line(s: dict[str, Any]) -> str:
    """`review mix`: what the training file holds."""
    return (
        f"{s['records']} records -> {s['out']}: {s['real']} real, {s['synthetic']} synthetic "
        f"({s['synthetic_share']:.0%}, cap {s['max_synthetic_share']:.0%}); {s['edited']} edited, "
        f"{sum(s['dropped'].values())} dropped by the review, "
        f"{s['capped']} left out by the cap"
    )


def print_error(err, console) -> None:
    """A user error (`TunesmithError`): its title, then each problem with where it is and a hint."""
    from rich.markup import escape

    console.print(f"[bold red]error:[/bold red] {escape(err.title)}")
    for p in err.problems:
        where = f"[bold]{escape(p.where)}[/bold]: " if p.where else ""
        console.print(f"  {where}{escape(p.message)}")
        if p.hint:
            console.print(f"    [cyan]hint:[/cyan] {escape(p.hint)}")


def print_warning(problem, console) -> None:
    """A `TunesmithWarning`'s problem (a moved config key): where, what, and the hint, in yellow; the run goes on."""
    from rich.markup import escape

    where = f"[bold]{escape(problem.where)}[/bold]: " if problem.where else ""
    console.print(f"[yellow]warning:[/yellow] {where}{escape(problem.message)}")
    if problem.hint:
        console.print(f"    [cyan]hint:[/cyan] {escape(problem.hint)}")


def print_recipe(sources: list[tuple[str, Any, str]], console, searched: bool = False) -> None:
    """The recipe a run resolved and where each value came from (`lr 0.001 (tunesmith.yaml)`), before it starts."""
    from rich.markup import escape

    parts = [f"{name} {escape(str(value))} [dim]({where})[/dim]" for name, value, where in sources]
    note = " [dim]— the search varies some of these[/dim]" if searched else ""
    console.print("[bold]Recipe[/bold]: " + ", ".join(parts) + note)


def print_allocator(console) -> None:
    """One line before training: the memory allocator this process runs under, and how to get jemalloc where the
    system's malloc is in use (`tunesmith.allocator`)."""
    from tunesmith import allocator

    name = allocator.in_use()
    if name != "system":
        console.print(f"[dim]Memory allocator: {name}[/dim]")
    elif allocator.find_jemalloc() is None:
        console.print(
            "[dim]Memory allocator: the system's malloc; install jemalloc (apt install libjemalloc2) and tunesmith "
            "runs under it: training here ran faster under it and kept its speed (benchmarks/allocator.py)[/dim]"
        )
    else:
        console.print(f"[dim]Memory allocator: the system's malloc ({allocator.SWITCH}=system or LD_PRELOAD)[/dim]")
