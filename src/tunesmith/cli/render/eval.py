"""Evaluations in the terminal: metric tables, paired comparisons and gates, the verdict, export parity, the
recipe search's trials, and the summary of `tunesmith run`."""

from __future__ import annotations

from typing import Any


def print_comparison(rows: list[dict], confidence: float, title: str, console, names=("base", "tuned")) -> None:
    """The paired table per suite (suite, metric, n, both rates, delta, interval, McNemar's p, verdict), then a
    compact table of task accuracy per tag slice (every slice metric is in the JSON)."""
    from rich.table import Table

    from tunesmith.eval.evaluate import SLICE

    conf = int(confidence * 100)
    colors = {"better": "green", "worse": "red"}

    def verdict(r: dict) -> str:
        color = colors.get(r["verdict"], "yellow")
        text = "no sig. diff." if r["verdict"] == "no significant difference" else r["verdict"]
        return f"[{color}]{text}[/{color}]"

    def numbers(r: dict) -> list[str]:
        return [
            str(r["n"]),
            f"{r['base']:.3f}",
            f"{r['tuned']:.3f}",
            f"{r['delta']:+.3f}",
            f"{r['ci_low']:+.3f} .. {r['ci_high']:+.3f}",
        ]

    def table(title: str, first: tuple[str, ...]) -> Table:
        t = Table(title=title)
        for col in (*first, "n", *names, "delta", f"{conf}% CI", *(("p",) if len(first) > 1 else ()), "verdict"):
            t.add_column(
                col,
                no_wrap=True,
                justify="left" if col in ("suite", "metric", "slice", "verdict") or "CI" in col else "right",
            )
        return t

    main = table(title, ("suite", "metric"))
    for r in rows:
        if SLICE not in r["suite"]:
            main.add_row(r["suite"], r["metric"], *numbers(r), f"{r['p_mcnemar']:.3g}", verdict(r))
    console.print(main)
    sliced = [r for r in rows if SLICE in r["suite"] and r["metric"] in ("task_accuracy", "prompt_strict_accuracy")]
    if sliced:
        slices = table("Accuracy per tag slice (prompt-level strict for instruction suites)", ("slice",))
        for r in sliced:
            slices.add_row(r["suite"].replace(SLICE, " · "), *numbers(r), verdict(r))
        console.print(slices)


def print_gates(gates: list[dict], console) -> None:
    """One line per gate: PASS or FAIL, and why."""
    for g in gates:
        mark = "[bold green]PASS[/bold green]" if g["passed"] else "[bold red]FAIL[/bold red]"
        console.print(f"Gate on {g['metric']}: {mark} ({g['reason']})")


def print_verdict(verdict: dict, console) -> None:
    """The verdict in the terminal: the headline, what ships instead, and the alternatives against the tuned
    model (value, tuned, delta with its interval, the tuned model's verdict)."""
    from rich.table import Table

    color = "green" if verdict["ship"] else "red"
    console.print(f"[bold {color}]{verdict['headline']}[/bold {color}]", highlight=False)
    if verdict.get("instead"):
        console.print(f"Instead: {verdict['instead']}", highlight=False)
    alts = [a for a in verdict.get("alternatives") or [] if a.get("value") is not None]
    if not alts:
        return
    table = Table(title="Alternatives on the same cases (delta = tuned minus the alternative)")
    for col in ("alternative", "metric", "its value", "tuned", "delta", "CI", "tuned vs it"):
        table.add_column(col, no_wrap=col not in ("alternative", "metric", "tuned vs it"))
    for a in alts:
        table.add_row(
            a["label"],
            a["metric"],
            f"{a['value']:.3f}",
            f"{a['tuned']:.3f}",
            f"{a['delta']:+.3f}",
            f"{a['ci_low']:+.3f} .. {a['ci_high']:+.3f}",
            a["verdict"],
        )
    console.print(table)


def print_parity(reports: list[dict[str, Any]], console) -> None:
    """One row per exported artifact: agreement, task accuracy against the checkpoint, verdict, cause."""
    from rich.table import Table

    table = Table(title="Export parity (held-out, against the checkpoint)")
    for col in (
        "artifact",
        "runtime",
        "cases",
        "identical replies",
        "task accuracy (ckpt -> export)",
        "delta [CI]",
        "target",
        "result",
    ):
        table.add_column(col)
    for r in reports:
        acc = r["task_accuracy"]
        table.add_row(
            r["kind"],
            r.get("runtime", "transformers"),
            str(r["n"]),
            f"{r['identical']:.1%}",
            "-" if acc is None else f"{acc['base']:.3f} -> {acc['tuned']:.3f}",
            "-" if acc is None else f"{acc['delta']:+.3f} [{acc['ci_low']:+.3f}, {acc['ci_high']:+.3f}]",
            r["target"],
            "[green]pass[/green]" if r["passed"] else "[red]FAIL[/red]",
        )
    console.print(table)
    for r in reports:
        if r["cause"]:
            console.print(
                f"[yellow]parity finding[/yellow] {r['kind']} ({r.get('runtime', 'transformers')}): "
                f"likely cause: {r['cause']}"
            )


def metrics_table(title: str, metrics: dict[str, dict]):
    """Suites (and slices) as columns, metrics as rows."""
    from rich.table import Table

    from tunesmith.eval.evaluate import SLICE

    names = list(metrics)
    keys = list(dict.fromkeys(k for m in metrics.values() for k in m))
    table = Table(title=title)
    table.add_column("metric", no_wrap=True)
    for n in names:
        table.add_column(n.replace(SLICE, " · "), justify="right")
    for key in keys:
        table.add_row(key, *(_cell(metrics[n].get(key)) for n in names))
    return table


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def metrics_tables(title: str, metrics: dict[str, dict], width: int) -> list:
    """`metrics_table` in as many tables as a terminal `width` needs, each with the whole metric names and as many
    whole suite columns as fit: cut to fit, `prompt_loose_accuracy` and `prompt_strict_accuracy` both read
    `promp…` and were taken one for the other."""
    first = max((len(k) for m in metrics.values() for k in m), default=6) + 4  # metric column, padding, borders
    used, chunks = first, [{}]
    for name, values in metrics.items():
        need = max([min(len(name), 16), *(len(_cell(v)) for v in values.values())]) + 3
        if chunks[-1] and used + need > width:
            chunks.append({})
            used = first
        chunks[-1][name] = values
        used += need
    return [metrics_table(title if i == 0 else f"{title} (continued)", c) for i, c in enumerate(chunks)]


def print_eval_run(label: str, run_dir, metrics: dict[str, dict], console) -> None:
    """`eval run`: the metrics of every suite (in several tables on a narrow terminal), and how many cases have an
    error."""
    from tunesmith.eval.evaluate import SLICE

    for table in metrics_tables(f"{label}: {run_dir.name}", metrics, console.width):
        console.print(table)
    errors = sum(m.get("errors") or 0 for n, m in metrics.items() if SLICE not in n)
    if errors:
        console.print(f"[yellow]{errors} case(s) have an error[/yellow]; see `error` in {run_dir / 'results.jsonl'}")


def score_table(suite: str, rows: list[dict], metrics: dict[str, Any], missing: int):
    """`eval score`: one suite's metrics."""
    from rich.table import Table

    table = Table(title=f"{suite}: {len(rows)} case(s), {missing} without a response")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        if value is not None:  # a metric that does not apply here (no timing recorded, no such behaviour): no row
            table.add_row(name, f"{value:.3f}" if isinstance(value, float) else str(value))
    return table


def print_preference(pref: dict[str, Any], console) -> None:
    """A pairwise preference (the LLM judge's or a blind A/B review's): B's wins, losses, ties, win rate."""
    console.print(
        f"Judge {pref['judge']}: B wins {pref['wins']}, loses {pref['losses']}, ties "
        f"{pref['ties']} of {pref['judged']}; win rate {pref['win_rate']:.3f} "
        f"[{pref['ci_low']:.3f} .. {pref['ci_high']:.3f}] ({pref['verdict']})"
        + (f"; {len(pref['errors'])} not judged" if pref["errors"] else "")
        + (f"; {pref['undecided']} undecided" if pref.get("undecided") else "")
    )


def print_comparisons(comparisons: list[dict], console) -> None:
    """`eval compare`: two evaluations as the paired table with intervals; three or more side by side, one column
    each (each later one's delta against the first, colored by its verdict; intervals are in --json); per
    comparison the gates and the preferences that decided cases."""
    from tunesmith.cli.render.columns import comparison_columns, print_side_by_side
    from tunesmith.eval.compare import side_by_side

    if not comparisons:
        return
    table = side_by_side(comparison_columns(comparisons))
    if len(comparisons) > 1:
        print_side_by_side(table, f"Side by side (delta against {comparisons[0]['baseline']})", console)
    for comp in comparisons:
        if len(comparisons) == 1:
            print_comparison(
                comp["metrics"],
                comp["confidence"],
                f"{comp['baseline']} vs {comp['candidate']}",
                console,
                names=("A", "B"),
            )
        else:
            console.print(f"[bold]{comp['baseline']} vs {comp['candidate']}[/bold]:", highlight=False)
        print_gates(comp["gates"], console)
        for key in ("preference", "preference_human"):
            pref = comp.get(key)
            if pref and pref.get("judged"):
                print_preference(pref, console)


def trials_table(summary: dict):
    """`tunesmith tune`: one row per trial of the recipe search, the best marked."""
    from rich.table import Table

    table = Table(title=f"Trials ({summary['study']}; validation {summary['metric']})")
    for col in ("trial", "state", "value", "params", "minutes", "general probe"):
        table.add_column(col, justify="right" if col in ("trial", "value", "minutes") else "left")
    best = summary["best"]["number"]
    for t in summary["trials"]:
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["params"].items())
        forget = t.get("forgetting") or {}
        mark = "*" if t["number"] == best else ""
        table.add_row(
            f"{mark}{t['number']}"
            + (" (default, reused)" if t.get("reused") else " (default)" if t["default"] else ""),
            t["state"],
            "-" if t["value"] is None else f"{t['value']:.3f}",
            params,
            "-" if t["wall_s"] is None else f"{t['wall_s'] / 60:.1f}",
            f"{forget['delta']:+.3f}" + ("" if forget.get("ok") else " breaks gate") if forget else "-",
        )
    return table


def print_summary(summary: dict[str, Any], console) -> None:
    """`tunesmith run`: the base-vs-tuned table, the gates, the verdict, export parity, the diagnosis's flags,
    per-stage wall time and the training run."""
    print_comparison(summary["metrics"], summary["confidence"], f"Base vs tuned: {summary['model']}", console)
    print_gates(summary.get("gates") or [summary["gate"]], console)
    if summary.get("verdict"):
        print_verdict(summary["verdict"], console)
    print_beside(summary, console)
    if summary.get("parity"):
        print_parity(summary["parity"], console)
    if summary.get("diagnosis"):
        counts = summary["diagnosis"].get("counts") or {}
        flagged = [f for f in summary["diagnosis"].get("findings", []) if f.get("severity") in ("warning", "error")]
        console.print(
            "Diagnosis: "
            + (", ".join(f"{f['severity']}: {f['title']}" for f in flagged[:6]) if flagged else "nothing flagged")
            + (f" ({counts})" if counts and not flagged else "")
            + " — `tunesmith diagnose` for evidence"
        )
    stage_times = [f"{s['stage']} " + ("cached" if s["cached"] else f"{s['wall_s']:.0f}s") for s in summary["stages"]]
    stages = "  ".join(stage_times)
    console.print(f"Stages: {stages}")
    tr = summary["train"]
    if tr.get("steps") is not None:
        cost = summary.get("train_cost_usd")
        held = f" (held-out {tr['eval_loss']:.3f})" if tr.get("eval_loss") is not None else ""
        console.print(
            f"Training: {tr['steps']} steps, loss {tr['train_loss']:.3f}{held}, {tr['wall_s']:.0f} s"
            + (f", ${cost:.4f}" if cost is not None else "")
            + f" ({tr['trainable_params']:,} trainable parameters, {tr['precision']})"
            + "".join(f"; {label} shown {k}x a pass" for label, k in (tr.get("oversampled") or {}).items())
        )
    if summary.get("report"):
        console.print(f"Report: {summary['report']}")


def print_beside(summary: dict[str, Any], console) -> None:
    """`tunesmith run`'s models side by side on the held-out cases (base | tuned | each baseline), what a recorded
    baseline could not answer, and each model's cost per successful task."""
    from tunesmith.cli.render.columns import print_baseline_notes, print_cost_per_success, print_side_by_side

    table = summary.get("side_by_side") or {}
    if len(table.get("columns") or []) > 2:
        print_side_by_side(table, "On the same held-out cases (delta: tuned vs base)", console)
    print_baseline_notes(summary.get("baselines"), console)
    print_cost_per_success(summary.get("cost_per_success"), console)
