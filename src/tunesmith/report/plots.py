"""The report's figures, drawn with matplotlib's Agg canvas (no pyplot, no display) into inline PNG data URIs.

    metric_chart(summary["metrics"], confidence=0.95)   # "data:image/png;base64,..." or None
    loss_chart(train_log(run_dir))

Each function returns None when there is nothing to draw or matplotlib is not installed; the page then says so and
keeps its tables. `Figure` objects are used directly rather than pyplot, so nothing global (backend, open figures)
is touched and a report can be built from any thread.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import math
from typing import Any

from tunesmith.report.markup import percent

COLORS = {
    "base": "#9aa5b1",
    "tuned": "#2f6fb3",
    "better": "#1a7f37",
    "worse": "#c62828",
    "no significant difference": "#6b7280",
    "train": "#2f6fb3",
    "eval": "#d97706",
    "lr": "#6b7280",
}


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    fig.set_layout_engine("constrained")
    return fig


def _png(fig) -> str:
    buf = io.BytesIO()
    # No Software/date metadata: the same run gives the same bytes.
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _finite(*xs: Any) -> bool:
    return all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in xs)


def metric_chart(rows: list[dict], confidence: float = 0.95) -> str | None:
    """Base vs tuned per metric of one suite (held-out when there is one) as paired horizontal bars, the tuned bar
    carrying the delta's interval (base + [low, high]); beside it the delta itself with its interval, colored by
    verdict."""
    if not available():
        return None
    suite, rows = _chart_suite(rows)
    if not rows:
        return None
    rows = rows[::-1]  # barh draws bottom-up: first metric on top
    fig = _figure(9.5, 1.2 + 0.5 * len(rows))
    bars, deltas = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    _draw_bars(bars, rows, suite)
    _draw_deltas(deltas, rows, confidence)
    for ax in (bars, deltas):
        ax.grid(axis="x", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def _chart_suite(rows: list[dict]) -> tuple[str, list[dict]]:
    """The suite the chart shows (held-out when there is one) and its drawable rows: whole suites only, every
    number finite."""
    from tunesmith.eval.evaluate import SLICE

    rows = [
        r
        for r in rows
        if SLICE not in str(r.get("suite"))
        and _finite(r.get("base"), r.get("tuned"), r.get("delta"), r.get("ci_low"), r.get("ci_high"))
    ]
    suites = [r["suite"] for r in rows]
    if not rows:
        return "", []
    suite = "heldout" if "heldout" in suites else suites[0]
    return suite, [r for r in rows if r["suite"] == suite]


def _draw_bars(bars, rows: list[dict], suite: str) -> None:
    """Base and tuned bars per metric, the tuned bar's whisker the delta's interval around the base."""
    ys = list(range(len(rows)))
    h = 0.38
    bars.barh([y + h / 2 for y in ys], [r["base"] for r in rows], h, color=COLORS["base"], label="base")
    lo = [max(0.0, r["tuned"] - (r["base"] + r["ci_low"])) for r in rows]
    hi = [max(0.0, (r["base"] + r["ci_high"]) - r["tuned"]) for r in rows]
    bars.barh(
        [y - h / 2 for y in ys],
        [r["tuned"] for r in rows],
        h,
        color=COLORS["tuned"],
        label="tuned",
        xerr=[lo, hi],
        error_kw={"ecolor": "#1f2933", "capsize": 3, "elinewidth": 1},
    )
    bars.set_yticks(ys, [str(r["metric"]) for r in rows])
    top = max([1.0] + [r["base"] + r["ci_high"] for r in rows] + [r["tuned"] for r in rows])
    bars.set_xlim(0, top * 1.02)
    bars.set_xlabel("rate")
    bars.set_title(f"{suite}: base vs tuned", fontsize=10, loc="right")
    bars.legend(loc="lower left", bbox_to_anchor=(0, 1.06), ncols=2, fontsize=8, frameon=False)


def _draw_deltas(deltas, rows: list[dict], confidence: float) -> None:
    """Each metric's delta with its interval around zero, colored by verdict."""
    for y, r in enumerate(rows):
        color = COLORS.get(r.get("verdict"), COLORS["no significant difference"])
        deltas.errorbar(
            [r["delta"]],
            [y],
            xerr=[[r["delta"] - r["ci_low"]], [r["ci_high"] - r["delta"]]],
            fmt="o",
            color=color,
            capsize=4,
            markersize=5,
        )
    deltas.axvline(0, color="#1f2933", linewidth=0.8)
    span = max([0.05] + [abs(r["ci_low"]) for r in rows] + [abs(r["ci_high"]) for r in rows]) * 1.15
    deltas.set_xlim(-span, span)
    deltas.set_xlabel(f"tuned - base, {percent(confidence)} interval")
    deltas.set_title("delta (green better, red worse)", fontsize=10)


def loss_chart(log: list[dict], general_kl: float | None = None) -> str | None:
    """Training loss and held-out (eval) loss per step; the learning rate below when it was logged. `general_kl`:
    the general rows' loss is that weight times their KL from the base (train.general_kl), and says so."""
    if not available():
        return None
    series = _loss_series(log)
    if not series["train"] and not series["evals"]:
        return None
    lrs = series["lrs"]
    fig = _figure(9.5, 4.2 if lrs else 3.2)
    if lrs:
        loss_ax, lr_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    else:
        loss_ax, lr_ax = fig.subplots(1, 1), None
    _plot_losses(loss_ax, series, general_label(general_kl))
    if lr_ax is not None:
        lr_ax.plot(*zip(*lrs), color=COLORS["lr"], linewidth=1.2)
        lr_ax.set_ylabel("learning rate", fontsize=8)
        lr_ax.grid(alpha=0.3)
        lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    (lr_ax or loss_ax).set_xlabel("step")
    for ax in (loss_ax, lr_ax):
        if ax is not None:
            ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def _loss_series(log: list[dict]) -> dict[str, Any]:
    """The (step, value) points of the log: train loss, validation loss, the selection metric (`chosen`, with its
    name as `metric`) when it is not the loss, and the learning rate."""
    metric = next((r["selection_metric"] for r in log if r.get("selection_metric")), None)
    # a run with general data logs its task and general rows' loss apart: the task's is the train curve then
    apart = any("loss_task" in r for r in log)
    train_key = "loss_task" if apart else "loss"
    return {
        "train": [(r["step"], r[train_key]) for r in log if _finite(r.get("step"), r.get(train_key))],
        "general": [(r["step"], r["loss_general"]) for r in log if _finite(r.get("step"), r.get("loss_general"))],
        "evals": [
            (r["step"], r.get("val_loss", r.get("eval_loss")))
            for r in log
            if _finite(r.get("step"), r.get("val_loss", r.get("eval_loss")))
        ],
        "metric": metric,
        "chosen": [
            (r["step"], r[f"val_{metric}"])
            for r in log
            if metric and metric != "loss" and _finite(r.get("step"), r.get(f"val_{metric}"))
        ],
        "lrs": [(r["step"], r["learning_rate"]) for r in log if _finite(r.get("step"), r.get("learning_rate"))],
    }


def general_label(general_kl: float | None) -> str:
    """The general rows' curve's name: their cross-entropy, or their weighted KL from the base."""
    return f"general rows: {general_kl:g} x KL from the base" if general_kl else "train loss (general rows)"


def _plot_losses(loss_ax, series: dict[str, Any], general: str) -> None:
    """Train and validation loss on the loss axis (`general`: the general rows' curve's name); the selection metric
    on a twin axis beside it."""
    train, evals, metric, chosen = series["train"], series["evals"], series["metric"], series["chosen"]
    if train:
        loss_ax.plot(
            *zip(*train),
            color=COLORS["train"],
            marker="o" if len(train) < 40 else None,
            markersize=3,
            linewidth=1.4,
            label="train loss (task rows)" if series["general"] else "train loss",
        )
    if series["general"]:
        loss_ax.plot(
            *zip(*series["general"]),
            color=COLORS["train"],
            linestyle=":",
            linewidth=1.2,
            label=general,
        )
    if evals:
        loss_ax.plot(
            *zip(*evals), color=COLORS["eval"], marker="s", markersize=4, linewidth=1.4, label="validation loss"
        )
    loss_ax.set_ylabel("loss")
    loss_ax.set_title(
        "Loss per optimizer step" + (f"; validation {metric} (generated answers)" if chosen else ""), fontsize=10
    )
    handles, labels = loss_ax.get_legend_handles_labels()
    if chosen:
        val_ax = loss_ax.twinx()
        line = val_ax.plot(
            *zip(*chosen), color="#2a9d8f", marker="D", markersize=4, linewidth=1.6, label=f"validation {metric}"
        )
        val_ax.set_ylabel(metric, fontsize=8)
        val_ax.spines[["top"]].set_visible(False)
        handles, labels = handles + line, labels + [f"validation {metric}"]
    loss_ax.legend(handles, labels, fontsize=8, frameon=False)
    loss_ax.grid(alpha=0.3)
