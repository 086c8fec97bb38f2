"""Data in the terminal: the check's progress bar, `data check`'s findings, `data stats`' tables."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunesmith.data.audit import CheckReport


@contextmanager
def check_progress(files: list[Path], console):
    """A progress bar (records, rate, ETA) for a check over `files`; yields the callback `run_checks` takes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from tunesmith.data.convert import count_lines

    columns = (
        TextColumn("checking"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.speed} rec/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("check", total=count_lines(files))
        yield lambda n: bar.update(task, completed=n)


def print_report(report: CheckReport, console, show: int = 3) -> None:
    """A table of finding codes with counts and severities, then the first findings of each code."""
    from rich.markup import escape
    from rich.table import Table

    console.print(f"{report.records} record(s): {report.n_kept} kept, {report.n_rejected} rejected")
    if not report.findings:
        console.print("[green]no findings[/green]")
        return
    table = Table(title="Findings")
    for col in ("code", "severity", "count"):
        table.add_column(col)
    for (code, sev), n in sorted(report.counts().items()):
        table.add_row(code, sev, str(n))
    console.print(table)
    by_code: dict[str, list] = {}
    for f in report.findings:
        by_code.setdefault(f.code.value, []).append(f)
    for code, items in by_code.items():
        console.print(f"[bold]{code}[/bold]")
        for f in items[:show]:
            field = escape(f"[{f.field}] ") if f.field else ""  # "[messages]" alone would read as markup
            console.print(f"  {escape(f.where)} {field}{escape(f.message)}")
            if f.hint:
                console.print(f"    [cyan]hint:[/cyan] {escape(f.hint)}")
        if len(items) > show:
            console.print(f"  ... and {len(items) - show} more")


def print_stats(report: CheckReport, console) -> None:
    """`data stats`: what the data is made of, as tables."""
    from rich.table import Table

    st = report.stats
    files = Table(title="Files and formats")
    for col in ("file", "records", "formats"):
        files.add_column(col)
    for name, formats in st["files"].items():
        files.add_row(name, str(sum(formats.values())), ", ".join(f"{k} {v}" for k, v in formats.items()))
    console.print(files)
    sizes = Table(title=f"{st['read']} conversations, {st['system_prompts']} distinct system prompt(s)")
    for col in ("measure", "min", "p50", "p90", "p99", "max", "mean"):
        sizes.add_column(col, justify="left" if col == "measure" else "right")
    for label, spread in (("reply chars", st["reply_chars"]), ("tokens (chat template)", st["tokens"])):
        if spread:
            sizes.add_row(label, *(f"{spread[k]:,.0f}" for k in ("min", "p50", "p90", "p99", "max", "mean")))
    console.print(sizes)
    console.print("turns per conversation: " + ", ".join(f"{k}: {v}" for k, v in st["turns"].items()))
    for title, counts in (("Reply behaviour", st["behaviors"]), ("Labels", st["labels"]), ("Tags", st["tags"])):
        if not counts:
            continue
        table = Table(title=title)
        for col in ("value", "records", "share"):
            table.add_column(col, justify="left" if col == "value" else "right")
        for value, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            table.add_row(str(value), str(n), f"{n / max(st['read'], 1):.1%}")
        console.print(table)
    errors = sum(n for (_, sev), n in report.counts().items() if sev == "error")
    console.print(f"findings: {len(report.findings)} ({errors} error(s)); `tunesmith data check` lists them")
