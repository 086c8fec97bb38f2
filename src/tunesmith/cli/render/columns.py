"""Models side by side in the terminal: one column per model (base | tuned | each baseline, or the evaluations of
`tunesmith eval compare A B C`), what a recorded baseline could not answer, and each model's cost per success.

    print_side_by_side(summary["side_by_side"], "On the same held-out cases", console)
    print_baseline_notes(summary["baselines"], console)
"""

from __future__ import annotations

from typing import Any

from tunesmith.eval.compare import LOWER_IS_BETTER

SHOWN = 10  # missing case ids listed before "… and N more"


def _best(values: dict[str, float | None], metric: str) -> float | None:
    known = [v for v in values.values() if v is not None]
    if not known:
        return None
    return min(known) if metric in LOWER_IS_BETTER else max(known)


def _cell(value: float | None, best: float | None, verdict: dict | None) -> str:
    """A value (bold when it is the row's best), with its delta against the first column when it has one."""
    if value is None:
        return "-"
    text = f"[bold]{value:.3f}[/bold]" if value == best else f"{value:.3f}"
    if verdict:
        color = {"better": "green", "worse": "red"}.get(verdict["verdict"], "yellow")
        text += f" [{color}]({verdict['delta']:+.3f})[/{color}]"
    return text


def print_side_by_side(table: dict[str, Any], title: str, console) -> None:
    """`tunesmith.eval.compare.side_by_side`'s table: suite and metric, then one column per model (the best value
    of each row in bold; a later column's delta against the first, colored by its verdict, where it has one)."""
    from rich.table import Table

    columns = table.get("columns") or []
    if not table.get("rows") or len(columns) < 2:
        return
    out = Table(title=title)
    out.add_column("suite")
    out.add_column("metric")
    out.add_column("n", justify="right")
    for name in columns:
        out.add_column(name, justify="right")
    for r in table["rows"]:
        values, verdicts = r.get("values") or {}, r.get("verdicts") or {}
        best = _best(values, r["metric"]) if len(values) > 1 else None
        sizes = sorted({n for n in (r.get("n") or {}).values() if n is not None})
        out.add_row(
            r["suite"],
            r["metric"],
            "/".join(str(n) for n in sizes) or "-",
            *(_cell(values.get(name), best, verdicts.get(name)) for name in columns),
        )
    console.print(out)


def print_baseline_notes(baselines: dict[str, dict] | None, console) -> None:
    """For each recorded baseline: the held-out cases without a reply (left out of its comparison), the reply
    lines that match no case, and how many answer training or validation cases instead; for one stopped early
    (`eval.few_shot_stop`), where and why."""
    from rich.markup import escape

    from tunesmith.eval.sequential import stopped_line

    for name, entry in (baselines or {}).items():
        if entry.get("stopped"):
            console.print(f"{escape(name)}: {escape(stopped_line(entry['stopped']))}; its values are on those cases")
        missing = entry.get("missing") or []
        if missing:
            more = f" … and {len(missing) - SHOWN} more" if len(missing) > SHOWN else ""
            console.print(
                f"[yellow]{escape(name)}[/yellow]: {len(missing)} held-out case(s) have no recorded reply (left out "
                f"of its comparison): {escape(', '.join(map(str, missing[:SHOWN])))}{more}"
            )
        if entry.get("unmatched"):
            console.print(f"[yellow]{escape(name)}[/yellow]: {entry['unmatched']} recorded repl(ies) match no case")
        if entry.get("outside"):
            console.print(
                f"{escape(name)}: {entry['outside']} recorded repl(ies) answer training or validation cases (not held "
                "out: not scored)"
            )


def print_cost_per_success(rows: list[dict] | None, console) -> None:
    """Each model's cost per successful held-out task (`summary["cost_per_success"]`), when any one is priced."""
    from tunesmith.cli.render.plan import print_success_cost

    if rows and any(r.get("cost_usd") is not None for r in rows):
        print_success_cost({"evaluations": rows}, console)


def comparison_columns(comparisons: list[dict]) -> list[tuple[str, list[dict], str]]:
    """`eval compare`'s comparisons as `side_by_side` columns: the first evaluation, then each candidate (names made
    unique: two `results.jsonl` files in different folders go by the same name)."""
    first = comparisons[0]
    names: list[str] = []
    for name in [first["baseline"], *(c["candidate"] for c in comparisons)]:
        names.append(name if name not in names else f"{name} ({len(names) + 1})")
    columns = [(names[0], first["metrics"], "base")]
    return columns + [(n, c["metrics"], "tuned") for n, c in zip(names[1:], comparisons)]
