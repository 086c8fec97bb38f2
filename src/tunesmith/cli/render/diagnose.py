"""`tunesmith diagnose` in the terminal (rich): the findings table, then each problem's evidence and remedy, the loss
curve's flags, and the masking preview with the tokens that carry loss highlighted."""

from __future__ import annotations

import json
from typing import Any

# by tunesmith.diagnose.evidence's severities
COLORS = {"error": "red", "warning": "yellow", "info": "dim", "ok": "green"}
LOSS_STYLE = "black on green3"  # the tokens that carry loss in the masking preview
PREVIEW_CHARS = 600  # the masking preview shows at most this much of each example
EVIDENCE_CHARS = 300  # an evidence value longer than this (as JSON) is cut


def _evidence_lines(evidence: dict[str, Any]) -> list[str]:
    out = []
    for key, value in evidence.items():
        if key == "examples" or value in (None, [], {}):
            continue
        text = (
            f"{value:.3g}"
            if isinstance(value, float)
            else (value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
        )
        out.append(f"{key}: {text if len(text) <= EVIDENCE_CHARS else text[: EVIDENCE_CHARS - 1] + '…'}")
    return out


def _example_line(ex: dict[str, Any]) -> str:
    place = ex.get("id") or ex.get("where") or ""
    rest = {k: v for k, v in ex.items() if k not in ("id", "where", "suite")}
    return (
        f"{ex.get('suite', '')}:{place}".strip(":")
        + "  "
        + "  ".join(f'{k}="{v}"' if isinstance(v, str) else f"{k}={v}" for k, v in rest.items())
    )


def print_diagnosis(result: dict[str, Any], console) -> None:
    """Print a diagnosis (`diagnose` / `diagnose_runs`) to a rich console."""
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from tunesmith.diagnose.evidence import OK

    table = Table(title="Diagnosis")
    for col in ("severity", "check", "finding"):
        table.add_column(col, no_wrap=col != "finding")
    for f in result["findings"]:
        color = COLORS.get(f["severity"], "white")
        table.add_row(f"[{color}]{f['severity']}[/{color}]", f["code"], escape(f["title"]))
    console.print(table)
    for f in result["findings"]:
        if f["severity"] == OK:
            continue
        color = COLORS.get(f["severity"], "white")
        console.print(f"\n[bold {color}]{escape(f['code'])}[/bold {color}]: {escape(f['title'])}")
        for line in _evidence_lines(f["evidence"]):
            console.print(f"  {escape(line)}", highlight=False)
        for ex in f["evidence"].get("examples") or []:
            console.print(f"  · {escape(_example_line(ex))}", highlight=False)
        if f.get("remedy"):
            console.print(f"  [cyan]remedy:[/cyan] {escape(f['remedy'])}")
    loss = result.get("loss") or {}
    if loss.get("steps"):
        train = [x for x in loss["train"] if x is not None]
        held = [x for x in loss.get("eval") or [] if x is not None]
        console.print(
            f"\nLoss: {len(loss['steps'])} logged steps"
            + (f", {train[0]:.3f} -> {train[-1]:.3f}" if train else "")
            + (f"; held-out {held[-1]:.3f}" if held else "")
            + (f"; flags: {', '.join(fl['code'] for fl in loss['flags'])}" if loss.get("flags") else "")
        )
    preview = result.get("masking_preview") or []
    if preview:
        console.print("\n[bold]Masking preview[/bold] (highlighted: the tokens that carry loss)")
    for item in preview:
        if item.get("error"):
            console.print(f"[bold]{escape(item['where'])}[/bold]: [red]{escape(item['error'])}[/red]")
            continue
        console.print(
            f"[bold]{escape(item['where'])}[/bold] ({item['loss_tokens']} of {item['tokens']} tokens carry "
            "loss" + (f", {item['truncated_tokens']} cut off" if item.get("truncated_tokens") else "") + ")"
        )
        text, shown = Text(), 0
        for seg in item["segments"]:
            piece = seg["text"][: max(0, PREVIEW_CHARS - shown)]
            shown += len(piece)
            text.append(piece, style=LOSS_STYLE if seg["loss"] else "dim")
        if shown >= PREVIEW_CHARS:
            text.append(" …")
        console.print(text)
