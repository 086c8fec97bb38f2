"""The `data convert` and `data check` verbs' file handling: any supported format in, `messages` JSONL out.

    n = convert_file("tickets.csv", "data/tickets.jsonl", "csv", text_column="text", label_column="category")
"""

from __future__ import annotations

from pathlib import Path

from tunesmith.data.checks import CheckReport
from tunesmith.data.formats import FORMATS, load_records, read_labeled
from tunesmith.data.io import atomic_write_jsonl
from tunesmith.errors import Problem, TunesmithError, fail

SOURCES = ("auto", *FORMATS, "csv", "labeled")


def convert_file(source: Path, out: Path, from_: str = "auto", *, text_column: str = "text",
                 label_column: str = "label", system: str | None = None, json_key: str | None = None) -> int:
    """Convert `source` into `out` (written atomically; the source is never touched). Returns the record count."""
    if from_ not in SOURCES:
        raise fail("Unknown --from", "--from", f"{from_!r} is not a known format", f"use one of {', '.join(SOURCES)}")
    if Path(out).resolve() == Path(source).resolve():
        raise fail("Refusing to overwrite the input", str(out), "output and input are the same file",
                   "write to a new file")
    if from_ in ("csv", "labeled") or (from_ == "auto" and source.suffix.lower() == ".csv"):
        records = read_labeled(source, text_column, label_column, system=system, json_key=json_key)
    else:
        records = load_records([source], from_)
        if system:
            for rec in records:
                if rec.messages[0]["role"] != "system":
                    rec.messages.insert(0, {"role": "system", "content": system})
    atomic_write_jsonl(out, (r.to_json() for r in records))
    return len(records)


def resolve_data_paths(paths: list[Path]) -> tuple[list[Path], str, Path | None]:
    """Files to read: the given files, or a project's data.train files (and its data.format) for a directory."""
    if len(paths) == 1 and paths[0].is_dir():
        from tunesmith.config import load_config
        from tunesmith.pipeline import data_files

        cfg, project = load_config(paths[0])
        return data_files(cfg, project), cfg.data.format, project
    missing = [Problem(str(p), "no such file", "check the path") for p in paths if not p.is_file()]
    if missing:
        raise TunesmithError("Data file not found", missing)
    return list(paths), "auto", None


def print_report(report: CheckReport, console, show: int = 3) -> None:
    """A table of finding codes with counts and severities, then the first findings of each code."""
    from rich.markup import escape
    from rich.table import Table

    console.print(f"{len(report.kept) + len(report.rejected)} record(s): {len(report.kept)} kept, "
                  f"{len(report.rejected)} rejected")
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
            console.print(f"  {escape(f.where)} [{escape(f.field)}] {escape(f.message)}")
            if f.hint:
                console.print(f"    [cyan]hint:[/cyan] {escape(f.hint)}")
        if len(items) > show:
            console.print(f"  ... and {len(items) - show} more")
