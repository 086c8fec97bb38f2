"""How the model was trained: the loss curves, the checkpoint kept on validation and why, the run's numbers, and
the recipe search's trials.
"""

from __future__ import annotations

from typing import Any

from tunesmith.report import plots
from tunesmith.report.frame import not_measured, section
from tunesmith.report.markup import Html, duration, kv, num, signed, table, tag


def training(summary: dict, log: list[dict]) -> Html:
    tr = {k: v for k, v in (summary.get("train") or {}).items() if v is not None}
    if not tr and not log:
        return section("training", "Training", not_measured("no training run"))
    kl = tr.get("general_kl")
    chart = plots.loss_chart(log, kl)
    if chart:
        fig = tag(
            "figure",
            Html(f'<img alt="Training and held-out loss per step" src="{chart}">')
            + tag(
                "figcaption",
                "Training loss per logged step (of the task's rows and of the general rows apart, when general "
                "data were mixed in"
                + (f"; the general rows' is {kl:g} x their KL divergence from the base" if kl else "")
                + "); held-out loss where it was evaluated.",
            ),
        )
    elif log:
        fig = not_measured("the loss curve", "install matplotlib (pip install matplotlib) to draw it")
    else:
        fig = not_measured("the loss curve", "no metrics.jsonl was found in the train run")
    names = {
        "wall_s": "wall time",
        "step_s": "of which in training steps (the rest: validation, checkpoints)",
        "tokens_per_s": "tokens/s (in training steps)",
        "train_loss": "train loss",
        "eval_loss": "validation loss",
        "trainable_params": "trainable parameters",
        "stopped_by_budget": "stopped by budget",
        "planned_epochs": "planned epochs",
        "oversampled": "labels repeated a pass (train.oversample)",
        "general_kl": "general rows' KL weight (train.general_kl; 0: not applied)",
    }
    selection = tr.pop("selection", None)
    general = general_mix(tr.pop("general_examples", None), tr.pop("general_wanted", None))
    shown = [
        (
            names.get(k, k),
            duration(v)
            if k in ("wall_s", "step_s")
            else num(v, ",.0f")
            if k in ("tokens_per_s", "trainable_params")
            else num(v, ".4f")
            if isinstance(v, float)
            else ", ".join(f"{label} {times}x" for label, times in v.items())
            if k == "oversampled"
            else v,
        )
        for k, v in tr.items()
    ]
    return section("training", "Training", fig + chosen_checkpoint(selection) + kv(shown + general))


def general_mix(examples: int | None, wanted: int | None) -> list[tuple[str, str]]:
    """The general data's row: how many examples were mixed in, and the share's ask where the data held fewer (a
    long run forgets more with less: on 9,095 Banking77 queries the 200 built-in replies of earlier versions were 2%
    of the mix)."""
    if not examples:
        return []
    shown = f"{examples:,} examples"
    if wanted and examples < wanted:
        shown += f"; train.general_share asked for {wanted:,}, more than the general data holds"
    return [("general data mixed in (train.general_data)", shown)]


def chosen_checkpoint(sel: Any) -> Html:
    """Which checkpoint was kept and why: the validation metric of the generated answers at each evaluation."""
    if not isinstance(sel, dict) or sel.get("best_step") is None:
        return not_measured(
            "a checkpoint chosen on validation",
            "give the project a validation split (data.validation_fraction, or data.validation files)",
        )
    curve = ", ".join(f"{step}: {num(value)}" for step, value in sel.get("curve") or [])
    why = (
        "stopped early: no improvement for the patience"
        if sel.get("stopped_early")
        else "pruned by the recipe search"
        if sel.get("pruned")
        else "trained to the end"
    )
    return tag(
        "p",
        f"Checkpoint kept: step {sel['best_step']}, validation {sel.get('metric')} "
        f"{num(sel.get('best_value'))} (last {num(sel.get('last_value'))}; {why}). "
        f"Validation {sel.get('metric')} by step: {curve}.",
    )


def search(summary: dict) -> Html:
    """The recipe search: every trial (its recipe, validation value, state, time, forgetting check), the recipe
    chosen and why, and how it compares with the project's own recipe on the same validation cases."""
    sr = summary.get("search")
    if not isinstance(sr, dict) or not sr.get("trials"):
        return section(
            "search",
            "Recipe search",
            not_measured(
                "no recipe search",
                f"`tunesmith run {summary.get('project', 'PROJECT')} --tune --budget 30m` searches "
                "the learning rate, epochs and LoRA rank on the validation split",
            ),
        )
    best = (sr.get("best") or {}).get("number")
    rows = []
    for t in sr["trials"]:
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["params"].items())
        forget = t.get("forgetting") or {}
        rows.append(
            [
                ("★ " if t["number"] == best else "")
                + str(t["number"])
                + (" (yours, trained before)" if t.get("reused") else " (yours)" if t["default"] else ""),
                params,
                t["state"],
                num(t.get("value")),
                duration(t.get("wall_s")),
                signed(forget["delta"]) + ("" if forget.get("ok") else " (breaks the gate)") if forget else "-",
            ]
        )
    head = tag(
        "p",
        f"Chosen: {sr.get('why', '')}. Validation {sr.get('metric')}; {len(sr['trials'])} trial(s), "
        f"{duration(sr.get('spent_s'))} of a {duration(sr.get('budget_s'))} budget ({sr.get('stopped')}).",
    )
    constraint = tag("p", f"Constraint: {sr['constraint']}.", cls="note") if sr.get("constraint") else Html("")
    body = (
        head
        + table(["trial", "recipe", "state", f"validation {sr.get('metric')}", "time", "general probe"], rows)
        + constraint
    )
    return section("search", "Recipe search", body)
