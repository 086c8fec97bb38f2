"""The report's sections, each a function from what was measured to escaped HTML.

Every section renders with what it is given and says "not measured" (and how to measure it) when given nothing;
shapes it does not know (a diagnosis or cost dict from a newer module) fall back to `markup.generic` tables.
"""

from __future__ import annotations

from typing import Any

from tunesmith.eval.evaluate import SLICE  # "heldout#edge_case": the edge_case slice of the held-out suite
from tunesmith.report import plots
from tunesmith.report.markup import (
    Html,
    esc,
    generic,
    interval,
    join,
    kv,
    num,
    pass_badge,
    signed,
    table,
    tag,
    verdict_badge,
)

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2, "ok": 3}
SHOWN = 8  # items per "improved" / "broke" list before "… and N more"
FINDINGS_SHOWN = 100


def section(id_: str, title: str, body: Any) -> Html:
    return tag("section", tag("h2", title) + esc(body), id=id_)


def not_measured(what: str, how: str = "") -> Html:
    """The line a section shows instead of data: what is missing, and how to measure it."""
    if how:
        how = " " + how[0].upper() + how[1:] + ("" if how.endswith(".") else ".")
    return tag("p", f"Not measured: {what}.{how}", cls="not-measured")


def duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {seconds % 60:.0f} s"
    return f"{int(seconds // 3600)} h {seconds % 3600 / 60:.0f} min"


def usd(x: Any) -> str:
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return "-"
    if x == 0 or x >= 1:
        return f"${x:,.2f}"
    return f"${x:.4f}" if x >= 0.01 else f"${x:.3g}"  # a fraction of a cent keeps its significant digits


def _metric_line(r: dict, confidence: float) -> Html:
    name = str(r.get("suite", "")).replace(SLICE, " · ") + " · " + str(r.get("metric", ""))
    return tag(
        "li",
        tag("b", name)
        + esc(
            f": {num(r.get('base'))} → {num(r.get('tuned'))} "
            f"({signed(r.get('delta'))}, {confidence:.0%} CI "
            f"{interval(r.get('ci_low'), r.get('ci_high'))}, n={r.get('n', '-')})"
        ),
    )


def _capped_list(items: list[Html], empty: str) -> Html:
    if not items:
        return tag("p", empty, cls="note")
    more = tag("li", f"… and {len(items) - SHOWN} more below", cls="note") if len(items) > SHOWN else Html("")
    return tag("ul", join(items[:SHOWN]) + more)


def _gate_rows(gates: list[dict]) -> Html:
    return tag(
        "ul",
        join(
            tag(
                "li",
                pass_badge(g.get("passed"))
                + esc(" ")
                + tag("b", g.get("metric", "?"))
                + esc(
                    ": "
                    + str(g.get("reason", ""))
                    + (
                        f" (delta {signed(g['delta'])}, CI {interval(g.get('ci_low'), g.get('ci_high'))})"
                        if g.get("delta") is not None
                        else ""
                    )
                ),
            )
            for g in gates
        ),
    )


def verdict(summary: dict) -> Html:
    """The banner: the ship verdict (headline, reasons, what would ship instead) when the run weighed the cheap
    alternatives; else whether the gates passed, with each gate's reason."""
    gates = summary.get("gates") or ([summary["gate"]] if summary.get("gate") else [])
    v = summary.get("verdict")
    if isinstance(v, dict) and v.get("headline"):
        ship = bool(v.get("ship"))
        body = tag("h2", v["headline"]) + tag("ul", join(tag("li", r) for r in v.get("reasons") or []))
        if v.get("instead"):
            body += tag("p", tag("b", "Instead: ") + esc(v["instead"]), cls="lead")
        if gates:
            body += tag("details", tag("summary", "gates") + _gate_rows(gates))
        return tag("section", body, id="verdict", cls="verdict " + ("pass" if ship else "fail"))
    if not gates:
        return section("verdict", "Verdict", not_measured("no gate result", "run `tunesmith run` to compare"))
    passed = (summary.get("gate") or {}).get("passed", all(g.get("passed") for g in gates))
    head = tag("h2", "Verdict: " + ("ship it: the gates pass" if passed else "do not ship: a gate fails"))
    return tag("section", head + _gate_rows(gates), id="verdict", cls="verdict " + ("pass" if passed else "fail"))


def _alternatives(summary: dict) -> list[dict]:
    v = summary.get("verdict")
    alts = v.get("alternatives") if isinstance(v, dict) else None
    return [a for a in alts if isinstance(a, dict)] if isinstance(alts, list) else []


def alternatives(summary: dict) -> Html:
    """The cheapest alternatives (a TF-IDF classifier, few-shot prompting) against the tuned model on the same
    cases: each one's value, the tuned value, the delta (tuned minus it) with its interval, and the verdict."""
    alts = _alternatives(summary)
    if not alts:
        return section(
            "alternatives",
            "Cheaper alternatives",
            not_measured(
                "no cheaper alternative was evaluated on the same cases",
                "set eval.baselines (`auto` runs a TF-IDF "
                "classifier and few-shot prompting for label tasks) and run `tunesmith run`",
            ),
        )
    conf = summary.get("confidence") or 0.95
    rows = [
        [
            a.get("label") or a.get("name"),
            a.get("metric"),
            num(a.get("value")),
            num(a.get("tuned")),
            signed(a.get("delta")),
            interval(a.get("ci_low"), a.get("ci_high")),
            verdict_badge(a.get("verdict")) if a.get("value") is not None else "not measured",
            duration(a.get("train_s"))
            if a.get("train_s") is not None
            else "none"
            if a.get("name") == "few_shot"
            else "-",
        ]
        for a in alts
    ]
    note = tag(
        "p",
        "delta = tuned minus the alternative; the verdict is the tuned model's against it. An "
        "alternative with a higher value wins even without significance: it is far cheaper to run.",
        cls="note",
    )
    return section(
        "alternatives",
        "Cheaper alternatives",
        table(
            ["alternative", "metric", "its value", "tuned", "delta", f"{conf:.0%} CI", "tuned vs it", "training"],
            rows,
            numeric=["its value", "tuned", "delta", "training"],
        )
        + note,
    )


def labels(view: dict | None) -> Html:
    """A label task's most confused (expected, predicted) pairs and the cases both models still get wrong."""
    title = "Labels: most confused, still wrong"
    if view is None:
        return section("labels", title, not_measured("no tuned evaluation results to read", "run `tunesmith run`"))
    if not view.get("fields"):
        return section(
            "labels",
            title,
            not_measured(
                f"not a label task ({view.get('why') or 'no label-like reply field'})",
                "it applies to classification tasks and JSON replies whose fields are labels",
            ),
        )
    parts = [tag("h3", "Most confused labels")]
    pairs = view.get("confused") or []
    if pairs:
        parts.append(
            table(
                ["field", "expected", "predicted", "cases"],
                ([p.get("field") or "label", p.get("expected"), p.get("predicted"), p.get("count")] for p in pairs),
                numeric=["cases"],
            )
        )
    else:
        parts.append(tag("p", "No wrong label: the tuned model got every case's labels right.", cls="note"))
    parts.append(tag("h3", "Still wrong (base and tuned both wrong)"))
    wrong = view.get("still_wrong")
    if wrong is None:
        parts.append(not_measured("no base evaluation to pair", "run `tunesmith run`"))
    elif not wrong.get("n"):
        parts.append(tag("p", "No case is wrong for both models.", cls="note"))
    else:
        shown = wrong.get("cases") or []
        parts.append(
            tag(
                "p",
                f"{wrong['n']} {wrong.get('suite', '')} case(s) are wrong for both"
                + (f"; the first {len(shown)}:" if len(shown) < wrong["n"] else ":"),
                cls="note",
            )
        )
        parts.append(join(_case(c) for c in shown))
    return section("labels", title, join(parts))


def paid(summary: dict, cost: dict | None) -> list[tuple[str, str]]:
    """What the run cost: training wall time, dollars and throughput, the pipeline's time, cost per success."""
    tr = summary.get("train") or {}
    out = []
    if tr.get("wall_s") is not None:
        out.append(("training wall time", duration(tr.get("wall_s"))))
    out.append(
        (
            "training cost",
            usd(summary.get("train_cost_usd"))
            if summary.get("train_cost_usd") is not None
            else "not priced (set budget.hourly_usd)",
        )
    )
    if tr.get("tokens_per_s") is not None:
        out.append(("training throughput", f"{num(tr['tokens_per_s'], ',.0f')} tokens/s"))
    if tr.get("steps") is not None:
        out.append(
            ("steps", f"{tr['steps']}" + (" (stopped by the time budget)" if tr.get("stopped_by_budget") else ""))
        )
    ran = [s.get("wall_s") or 0 for s in summary.get("stages") or [] if not s.get("cached")]
    if ran:
        out.append(("pipeline wall time (this run)", duration(sum(ran))))
    if isinstance(cost, dict) and cost.get("line"):
        out.append(("cost", str(cost["line"])))
    evaluations = cost.get("evaluations") if isinstance(cost, dict) else None
    for ev in evaluations if _is_rows(evaluations) else []:
        if ev.get("model") in ("base", "tuned") and ev.get("cost_per_success_usd") is not None:
            out.append((f"{ev['model']}: cost per successful task", usd(ev["cost_per_success_usd"])))
    return out


def glance(summary: dict, cost: dict | None, preference: Any, parity: list | None) -> Html:
    """Three boxes: what was paid, what improved, what broke (metrics, export parity, preference)."""
    conf = summary.get("confidence") or 0.95
    rows = summary.get("metrics") or []
    rows = sorted(rows, key=lambda r: SLICE in str(r.get("suite")))  # whole suites first, then their slices
    improved = [_metric_line(r, conf) for r in rows if r.get("verdict") == "better"]
    broke = [_metric_line(r, conf) for r in rows if r.get("verdict") == "worse"]
    for r in parity or []:
        if isinstance(r, dict) and r.get("passed") is False:
            broke.append(
                tag(
                    "li",
                    tag("b", f"export {r.get('kind')} ({r.get('runtime', 'transformers')})")
                    + esc(
                        f": misses its parity target ({r.get('target')})"
                        + (f"; likely cause: {r['cause']}" if r.get("cause") else "")
                    ),
                )
            )
    for a in _alternatives(summary):
        if a.get("beats_tuned"):
            broke.append(
                tag(
                    "li",
                    tag("b", str(a.get("label") or a.get("name")))
                    + esc(
                        f" scores {num(a.get('value'))} vs the tuned {num(a.get('tuned'))} on "
                        f"{a.get('metric')}, far cheaper"
                    ),
                )
            )
    for p in _preferences(preference):
        line = tag("li", tag("b", f"{p.get('judge', 'human')} preference") + esc(": " + preference_text(p)))
        (improved if p.get("verdict") == "better" else broke if p.get("verdict") == "worse" else []).append(line)
    boxes = [
        tag("div", tag("h3", "What was paid") + kv(paid(summary, cost)), cls="box"),
        tag(
            "div",
            tag("h3", "What improved")
            + _capped_list(improved, f"Nothing significantly better at {conf:.0%} confidence."),
            cls="box good",
        ),
        tag(
            "div",
            tag("h3", "What broke") + _capped_list(broke, f"Nothing significantly worse at {conf:.0%} confidence."),
            cls="box bad",
        ),
    ]
    return tag("section", join(boxes), id="glance", cls="glance")


def data(report: dict | None, split: dict | None) -> Html:
    """The data check's findings (counts per code, then each finding) and the split."""
    if report is None:
        return section(
            "data",
            "Data findings",
            not_measured("no data check run found", "run `tunesmith run` (or `tunesmith data check`)"),
        )
    parts = [
        tag(
            "p",
            f"{report.get('records', '-')} records: {report.get('kept', '-')} kept, "
            f"{report.get('rejected', '-')} rejected (rejected.jsonl in the check run, with reasons).",
        )
    ]
    if split:
        parts.append(
            tag(
                "p",
                f"Split: {split.get('train', '-')} for training, {split.get('heldout', '-')} held out"
                + (f", stratified by {split['stratified_by']}" if split.get("stratified_by") else "")
                + f"; {split.get('leaks', 0)} near-duplicate leak(s) between them.",
            )
        )
    counts = sorted(
        report.get("counts") or [], key=lambda c: (SEVERITY_ORDER.get(c.get("severity"), 3), str(c.get("code")))
    )
    if counts:
        parts.append(
            table(
                ["severity", "code", "count"],
                ([_severity(c.get("severity")), c.get("code"), c.get("count")] for c in counts),
                numeric=["count"],
            )
        )
    findings = sorted(report.get("findings") or [], key=lambda f: SEVERITY_ORDER.get(f.get("severity"), 3))
    if findings:
        parts.append(tag("h3", "Findings"))
        parts.append(
            table(
                ["severity", "code", "where", "field", "message", "fix"],
                (
                    [
                        _severity(f.get("severity")),
                        f.get("code"),
                        f.get("where"),
                        f.get("field"),
                        f.get("message"),
                        f.get("hint"),
                    ]
                    for f in findings[:FINDINGS_SHOWN]
                ),
                cls="findings",
            )
        )
        if len(findings) > FINDINGS_SHOWN:
            parts.append(tag("p", f"… and {len(findings) - FINDINGS_SHOWN} more in report.json", cls="note"))
    else:
        parts.append(tag("p", "No finding: every check passed.", cls="note"))
    return section("data", "Data findings", join(parts))


def _severity(s: Any) -> Html:
    return tag("span", s or "-", cls=f"sev {s}" if s in SEVERITY_ORDER else "sev")


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
            Html(f'<img alt="Base vs tuned per metric with {int(conf * 100)}% intervals" src="{chart}">')
            + tag(
                "figcaption",
                f"Bars: base and tuned rate; the whisker on the tuned bar and the dots on the "
                f"right are the paired bootstrap {conf:.0%} interval of the delta.",
            ),
        )
        if chart
        else not_measured("the chart", "install matplotlib (pip install matplotlib) to draw it")
    )
    headers = ["suite", "metric", "n", "base", "tuned", "delta", f"{conf:.0%} CI", "McNemar p", "verdict"]
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
    headers = ["slice", "metric", "n", "base", "tuned", "delta", f"{conf:.0%} CI", "McNemar p", "verdict"]
    return section(
        "slices",
        "Per slice",
        table(headers, _metric_rows(rows, slice_names=True), numeric=["n", "base", "tuned", "delta", "McNemar p"]),
    )


def _text(value: Any) -> str:
    import json

    if value is None:
        return "(none)"
    if isinstance(value, str) and not value.strip():  # an empty or blank reply would show as nothing at all
        return "(empty reply)" if not value else f"(only whitespace: {value!r})"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _case(c: dict) -> Html:
    head = tag("div", f"{c.get('id')}" + (f" ({c['where']})" if c.get("where") else ""), cls="case-id")
    cells = [
        tag("div", tag("h4", name) + tag("pre", _text(c.get(key))), cls="cell")
        for name, key in (("prompt", "prompt"), ("expected", "expected"), ("base", "base"), ("tuned", "tuned"))
    ]
    note = tag("p", f"tuned error: {c['error']}", cls="note") if c.get("error") else Html("")
    return tag("div", head + tag("div", join(cells), cls="case-grid") + note, cls="case")


def cases(changed: dict | None) -> Html:
    """Held-out cases whose task result flipped: what broke first, then what was fixed."""
    if changed is None:
        return section("cases", "Cases that changed", not_measured("no base and tuned results to pair"))
    parts = [
        tag(
            "p",
            f"Of {changed['n']} {changed['suite']} cases, {changed['n_broke']} went from right to wrong "
            f"and {changed['n_fixed']} from wrong to right.",
        )
    ]
    for key, title, n in (
        ("broke", "Broke (base right, tuned wrong)", changed["n_broke"]),
        ("fixed", "Fixed (base wrong, tuned right)", changed["n_fixed"]),
    ):
        if changed[key]:
            shown = f" (first {len(changed[key])} of {n})" if n > len(changed[key]) else ""
            parts.append(tag("h3", title + shown) + join(_case(c) for c in changed[key]))
    if changed["samples"]:
        parts.append(
            tag("h3", "No case flipped; the first cases as answered") + join(_case(c) for c in changed["samples"])
        )
    return section("cases", "Cases that changed", join(parts))


def training(summary: dict, log: list[dict]) -> Html:
    tr = {k: v for k, v in (summary.get("train") or {}).items() if v is not None}
    if not tr and not log:
        return section("training", "Training", not_measured("no training run"))
    chart = plots.loss_chart(log)
    if chart:
        fig = tag(
            "figure",
            Html(f'<img alt="Training and held-out loss per step" src="{chart}">')
            + tag("figcaption", "Training loss per logged step; held-out loss where it was evaluated."),
        )
    elif log:
        fig = not_measured("the loss curve", "install matplotlib (pip install matplotlib) to draw it")
    else:
        fig = not_measured("the loss curve", "no metrics.jsonl was found in the train run")
    names = {
        "wall_s": "wall time",
        "tokens_per_s": "tokens/s",
        "train_loss": "train loss",
        "eval_loss": "validation loss",
        "trainable_params": "trainable parameters",
        "stopped_by_budget": "stopped by budget",
        "planned_epochs": "planned epochs",
    }
    selection = tr.pop("selection", None)
    shown = [
        (
            names.get(k, k),
            duration(v)
            if k == "wall_s"
            else num(v, ",.0f")
            if k in ("tokens_per_s", "trainable_params")
            else num(v, ".4f")
            if isinstance(v, float)
            else v,
        )
        for k, v in tr.items()
    ]
    return section("training", "Training", fig + chosen_checkpoint(selection) + kv(shown))


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
                ("★ " if t["number"] == best else "") + str(t["number"]) + (" (yours)" if t["default"] else ""),
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


def diagnosis(d: Any) -> Html:
    """A diagnosis: findings (severity, code, title, evidence, remedy), a label-mask preview, the loss verdict,
    and anything else as key/value tables."""
    if not d:
        return section(
            "diagnosis", "Diagnosis", not_measured("no diagnosis", "`tunesmith diagnose` explains a failed gate")
        )
    if not isinstance(d, dict):
        return section("diagnosis", "Diagnosis", generic(d))
    parts = []
    counts = d.get("counts")
    if isinstance(counts, dict) and counts:
        parts.append(tag("p", ", ".join(f"{n} {k}" for k, n in counts.items()), cls="lead"))
    if "findings" in d:
        findings = d.get("findings") or []
        if isinstance(findings, list) and all(isinstance(f, dict) for f in findings):
            findings = sorted(findings, key=lambda f: SEVERITY_ORDER.get(f.get("severity"), 3))
            parts.append(
                join(finding_card(f) for f in findings) if findings else tag("p", "No problem found.", cls="note")
            )
        else:
            parts.append(generic(findings))
    if d.get("masking_preview"):
        parts.append(
            tag("h3", "What the loss trains on")
            + tag(
                "p",
                Html('<span class="trained">highlighted</span> tokens are trained; the rest is context.'),
                cls="note",
            )
            + masking(d["masking_preview"])
        )
    if d.get("loss"):
        parts.append(tag("h3", "Loss") + loss_summary(d["loss"]))
    rest = {k: v for k, v in d.items() if k not in ("counts", "findings", "masking_preview", "loss")}
    if rest:
        parts.append(tag("h3", "More") + generic(rest))
    return section("diagnosis", "Diagnosis", join(parts))


def finding_card(f: dict) -> Html:
    """One diagnosis finding: severity, code and title on a line, the remedy under it, the evidence folded."""
    sev = f.get("severity")
    head = tag(
        "div",
        _severity(sev)
        + esc(" ")
        + tag("code", f.get("code", ""))
        + esc(" ")
        + tag("b", f.get("title") or f.get("message") or ""),
    )
    remedy = f.get("remedy") or f.get("hint")
    body = tag("p", tag("b", "Remedy: ") + generic(remedy), cls="remedy") if remedy else Html("")
    if f.get("evidence"):
        body += tag("details", tag("summary", "evidence") + generic(f["evidence"]))
    return tag("div", head + body, cls=f"finding {sev}" if sev in SEVERITY_ORDER else "finding")


def loss_summary(loss: Any) -> Html:
    """The diagnosis' loss part: its flags as a table, each logged series as its length and ends (the curve itself
    is the Training plot), anything else as it is."""
    if not isinstance(loss, dict):
        return generic(loss)
    pairs = []
    for k, v in loss.items():
        if isinstance(v, list) and v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            pairs.append((k, f"{len(v)} points, {num(v[0], '.4g')} … {num(v[-1], '.4g')}"))
        elif k != "flags":
            pairs.append((k, generic(v, 1)))
    flags = loss.get("flags")
    out = kv(pairs) if pairs else Html("")
    if flags:
        out += tag("h4", "flags") + generic(flags)
    elif "flags" in loss:
        out += tag("p", "No flag raised on the loss curve.", cls="note")
    return out


def masking(previews: Any) -> Html:
    if not isinstance(previews, list):
        return generic(previews)
    out = []
    for p in previews:
        segs = p.get("segments") if isinstance(p, dict) else None
        if not isinstance(segs, list):
            out.append(generic(p))
            continue
        spans = join(
            tag("span", s.get("text", ""), cls="trained" if s.get("loss") else "context")
            for s in segs
            if isinstance(s, dict)
        )
        counts = (
            f" ({p['loss_tokens']} of {p['tokens']} tokens carry loss)"
            if p.get("tokens") is not None and p.get("loss_tokens") is not None
            else ""
        )
        body = tag("p", p["error"], cls="sev error") if p.get("error") else tag("pre", spans)
        out.append(tag("div", tag("div", f"{p.get('where', '')}{counts}", cls="case-id") + body, cls="mask"))
    return join(out)


def cost(c: Any, summary: dict) -> Html:
    """Training cost, the inference cost module's result (line, rows, or any shape), and measured latency."""
    parts = []
    if summary.get("train_cost_usd") is not None:
        wall = (summary.get("train") or {}).get("wall_s")
        parts.append(
            tag(
                "p",
                f"Training: {usd(summary['train_cost_usd'])} ({duration(wall)} of wall time at the "
                "configured hourly price).",
            )
        )
    if isinstance(c, dict):
        if c.get("line"):
            parts.append(tag("p", c["line"], cls="lead"))
        if c.get("rows"):
            parts.append(generic(c["rows"]))
        if _is_rows(c.get("evaluations")):
            parts.append(tag("h3", "Cost per successful task") + success_table(c["evaluations"]))
        shown = ("line", "rows", "evaluations", "train_cost_usd", "train_wall_s")  # the training cost is above
        rest = {k: v for k, v in c.items() if k not in shown and v is not None}
        if rest:
            parts.append(generic(rest))
    elif c:
        parts.append(generic(c))
    inference = _inference_rows(summary)
    if inference:
        parts.append(
            tag("h3", "Inference, as measured by the evaluations")
            + table(
                ["model", "suite", "cases", "mean latency", "p95 latency", "tokens/s"],
                inference,
                numeric=["cases", "mean latency", "p95 latency", "tokens/s"],
            )
        )
    if not parts:
        return section("cost", "Cost", not_measured("no price", "set budget.hourly_usd (or per-token prices)"))
    if not c and summary.get("train_cost_usd") is None:
        parts.insert(0, not_measured("the price", "set budget.hourly_usd for cost in USD"))
    return section("cost", "Cost", join(parts))


def _is_rows(x: Any) -> bool:
    return isinstance(x, list) and bool(x) and all(isinstance(r, dict) for r in x)


SUCCESS_COLUMNS = {
    "model": "model",
    "suite": "suite",
    "cases": "cases",
    "successes": "successes",
    "success_rate": "success rate",
    "cost_usd": "cost",
    "cost_per_success_usd": "per success",
    "basis": "basis",
}


def success_table(rows: list[dict]) -> Html:
    """`tunesmith.cost.eval_costs` evaluations: cost per successful task of each evaluation (other keys kept)."""
    extra = [k for r in rows for k in r if k not in SUCCESS_COLUMNS and k not in ("run", "seconds")]
    cols = list(SUCCESS_COLUMNS) + list(dict.fromkeys(extra))

    def cell(r: dict, k: str) -> Any:
        v = r.get(k)
        if k in ("cost_usd", "cost_per_success_usd"):
            return usd(v)
        return num(v, ".1%") if k == "success_rate" else generic(v, 2) if k in extra else v

    return table(
        [SUCCESS_COLUMNS.get(k, k) for k in cols],
        ([cell(r, k) for k in cols] for r in rows),
        numeric=["cases", "successes", "success rate", "cost", "per success"],
    )


def _inference_rows(summary: dict) -> list[list[Any]]:
    rows = []
    for who in ("base", "tuned"):
        for suite, m in (summary.get(f"{who}_metrics") or {}).items():
            if isinstance(m, dict) and m.get("latency_s") is not None:
                rows.append(
                    [
                        who,
                        suite,
                        m.get("cases"),
                        num(m.get("latency_s"), ".3f") + " s",
                        num(m.get("latency_p95_s"), ".3f") + " s",
                        num(m.get("tokens_per_s"), ",.1f"),
                    ]
                )
    return rows


def parity(reports: Any) -> Html:
    if not reports:
        return section(
            "parity",
            "Export parity",
            not_measured(
                "no exported model was compared with the checkpoint", "set export.formats (e.g. [merged, gguf])"
            ),
        )
    if not isinstance(reports, list) or not all(isinstance(r, dict) for r in reports):
        return section("parity", "Export parity", generic(reports))
    rows = []
    for r in reports:
        acc = r.get("task_accuracy") or {}
        rows.append(
            [
                r.get("kind"),
                r.get("runtime", "transformers"),
                r.get("n"),
                num(r.get("identical"), ".1%"),
                f"{num(acc.get('base'))} → {num(acc.get('tuned'))}" if acc else "-",
                f"{signed(acc.get('delta'))} [{interval(acc.get('ci_low'), acc.get('ci_high'))}]" if acc else "-",
                r.get("target"),
                pass_badge(r.get("passed")),
                r.get("cause") or "",
            ]
        )
    return section(
        "parity",
        "Export parity (held-out, against the checkpoint)",
        table(
            [
                "artifact",
                "runtime",
                "cases",
                "identical replies",
                "task accuracy (ckpt → export)",
                "delta [CI]",
                "target",
                "result",
                "likely cause",
            ],
            rows,
            numeric=["cases", "identical replies"],
        ),
    )


def _preferences(p: Any) -> list[dict]:
    if isinstance(p, dict):
        return [p]
    return [x for x in p if isinstance(x, dict)] if isinstance(p, list) else []


def preference_text(p: dict) -> str:
    """One line: who judged, B's wins/losses/ties against A, the win rate with its interval, the verdict."""
    judged = p.get("judged", (p.get("wins") or 0) + (p.get("losses") or 0) + (p.get("ties") or 0))
    text = (
        f"{judged} judged: {p.get('candidate', 'tuned')} wins {p.get('wins', '-')}, loses {p.get('losses', '-')}, "
        f"ties {p.get('ties', '-')} against {p.get('baseline', 'base')}"
    )
    if p.get("win_rate") is not None:
        text += (
            f"; win rate {num(p['win_rate'])} ({num(p.get('ci_low'))} .. {num(p.get('ci_high'))})"
            f", {p.get('verdict', '-')}"
        )
    if p.get("undecided"):
        text += f"; {p['undecided']} undecided"
    return text


def preference(p: Any) -> Html:
    prefs = _preferences(p)
    if not prefs:
        return section(
            "preference",
            "Preference",
            not_measured("no blind A/B review", "`tunesmith review ab` for a person's preference"),
        )
    lines = [
        tag(
            "p",
            tag("b", f"{x.get('judge', 'human')}: ")
            + esc(preference_text(x))
            + esc(" ")
            + verdict_badge(x.get("verdict")),
            cls="lead",
        )
        for x in prefs
    ]
    return section("preference", "Preference", join(lines))


def stages(summary: dict) -> Html:
    rows = [
        [
            s.get("stage"),
            str(s.get("run", "")).rsplit("/", 1)[-1],
            "cached" if s.get("cached") else "ran",
            "-" if s.get("cached") else duration(s.get("wall_s")),
        ]
        for s in summary.get("stages") or []
    ]
    if not rows:
        return section("stages", "Stages", not_measured("no stage record"))
    return section(
        "stages", "Stages", table(["stage", "run directory", "status", "wall time"], rows, numeric=["wall time"])
    )
