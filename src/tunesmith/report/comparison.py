"""Base vs tuned: each metric with its paired interval (chart and table), and the same per tag slice."""

from __future__ import annotations

from typing import Any

from tunesmith.eval.evaluate import SLICE  # "heldout#edge_case": the edge_case slice of the held-out suite
from tunesmith.report import plots
from tunesmith.report.frame import not_measured, section
from tunesmith.report.markup import Html, interval, num, percent, signed, table, tag, verdict_badge


def metrics(summary: dict) -> Html:
    """Base vs tuned per metric: the chart (held-out suite) and the table of every suite."""
    conf = summary.get("confidence") or 0.95
    rows = [r for r in summary.get("metrics") or [] if SLICE not in str(r.get("suite"))]
    if not rows:
        return section("metrics", "Base vs tuned", not_measured("no paired comparison", "run `tunesmith run`"))
    chart = plots.metric_chart(rows, conf)
    fig = (
        tag(
            "figure",
            Html(f'<img alt="Base vs tuned per metric with {percent(conf)} intervals" src="{chart}">')
            + tag(
                "figcaption",
                f"Bars: base and tuned rate; the whisker on the tuned bar and the dots on the "
                f"right are the paired bootstrap {percent(conf)} interval of the delta.",
            ),
        )
        if chart
        else not_measured("the chart", "install matplotlib (pip install matplotlib) to draw it")
    )
    headers = ["suite", "metric", "n", "base", "tuned", "delta", f"{percent(conf)} CI", "McNemar p", "verdict"]
    body = fig + table(headers, _metric_rows(rows), numeric=["n", "base", "tuned", "delta", "McNemar p"])
    return section("metrics", f"Base vs tuned: {summary.get('model', '')}", body)


def slices(summary: dict) -> Html:
    conf = summary.get("confidence") or 0.95
    rows = [r for r in summary.get("metrics") or [] if SLICE in str(r.get("suite"))]
    if not rows:
        return section(
            "slices",
            "Per slice",
            not_measured(
                "no tag slice with enough cases", "tag eval cases (tags: [edge_case]); a slice needs at least 5"
            ),
        )
    headers = ["slice", "metric", "n", "base", "tuned", "delta", f"{percent(conf)} CI", "McNemar p", "verdict"]
    return section(
        "slices",
        "Per slice",
        table(headers, _metric_rows(rows, slice_names=True), numeric=["n", "base", "tuned", "delta", "McNemar p"]),
    )


def _metric_rows(rows: list[dict], slice_names: bool = False) -> list[list[Any]]:
    out = []
    for r in rows:
        where = str(r.get("suite", "")).replace(SLICE, " · ") if slice_names else r.get("suite")
        out.append(
            [
                where,
                r.get("metric"),
                r.get("n"),
                num(r.get("base")),
                num(r.get("tuned")),
                signed(r.get("delta")),
                interval(r.get("ci_low"), r.get("ci_high")),
                num(r.get("p_mcnemar"), ".3g"),
                verdict_badge(r.get("verdict")),
            ]
        )
    return out
