"""`tunesmith import`: what was written, how each setting of the job was mapped, what to do next."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunesmith.migrate import ImportResult, MappedValue


def _shown(value: Any) -> str:
    return "(none)" if value is None else str(value)


def mapping_table(mapping: list[MappedValue]):
    """One row per job setting: where it is in the job, its value, the tunesmith.yaml key and value, and how."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="The job's settings -> tunesmith.yaml")
    table.add_column("in the job", overflow="fold")
    for col in ("value", "tunesmith.yaml", "value", "how"):
        table.add_column(col)
    for m in mapping:
        mapped = m.config_key is not None
        table.add_row(
            escape(m.source),
            escape(_shown(m.given)),
            m.config_key if mapped else "-",
            escape(_shown(m.value)) if mapped else "-",
            escape(m.how),
        )
    return table


def print_import(result: ImportResult, console) -> None:
    """The job imported, the files written, the mapping table, warnings, notes and the next step."""
    from rich.markup import escape

    job, train = result.job, result.config["train"]
    console.print(
        f"Imported {escape(job.id)}: {job.method_type} -> train.objective: {train['objective']} "
        f"(hosted base {escape(job.model)}; local base {escape(result.config['model']['base'])})"
    )
    for path in result.files:
        console.print(f"wrote {escape(str(path))}")
    console.print(mapping_table(result.mapping))
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    for note in result.notes:
        console.print(f"[cyan]note:[/cyan] {escape(note)}", soft_wrap=True)  # YAML to copy: never wrapped
    console.print(f"Next: `tunesmith data check {result.out}`, then `tunesmith run {result.out}`.")
