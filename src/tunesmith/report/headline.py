"""The top of the page: the verdict banner, the cheaper alternatives weighed against the tuned model, and the
three boxes of what was paid, what improved and what broke.
"""

from __future__ import annotations

from typing import Any

from tunesmith.eval.baselines import NAMES  # the built-in, far cheaper alternatives
from tunesmith.eval.evaluate import SLICE  # "heldout#edge_case": the edge_case slice of the held-out suite
from tunesmith.report.after_training import preference_results, preference_text
from tunesmith.report.costs import paid
from tunesmith.report.frame import not_measured, section
from tunesmith.report.markup import (
    Html,
    duration,
    esc,
    interval,
    join,
    kv,
    num,
    pass_badge,
    percent,
    signed,
    table,
    tag,
    verdict_badge,
)
from tunesmith.report.side_by_side import models_table

SHOWN = 8  # items per "improved" / "broke" list before "… and N more"


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


def alternatives(summary: dict) -> Html:
    """The alternatives (a TF-IDF classifier, few-shot prompting, an endpoint, recorded replies) against the tuned
    model on the same cases: every model side by side, then each alternative's value, the tuned value, the delta
    (tuned minus it) with its interval, and the verdict."""
    alts = alternative_rows(summary)
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
        "alternative with a higher value wins even without significance (a classifier or few-shot prompt is far "
        "cheaper to run), unless a `vs:` gate names it: then that gate decides.",
        cls="note",
    )
    return section(
        "alternatives",
        "Alternatives on the same cases",
        models_table(summary)
        + table(
            ["alternative", "metric", "its value", "tuned", "delta", f"{percent(conf)} CI", "tuned vs it", "training"],
            rows,
            numeric=["its value", "tuned", "delta", "training"],
        )
        + note,
    )


def alternative_rows(summary: dict) -> list[dict]:
    v = summary.get("verdict")
    alts = v.get("alternatives") if isinstance(v, dict) else None
    return [a for a in alts if isinstance(a, dict)] if isinstance(alts, list) else []


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
    for a in alternative_rows(summary):
        if a.get("beats_tuned"):
            broke.append(
                tag(
                    "li",
                    tag("b", str(a.get("label") or a.get("name")))
                    + esc(
                        f" scores {num(a.get('value'))} vs the tuned {num(a.get('tuned'))} on "
                        f"{a.get('metric')}" + (", far cheaper" if a.get("name") in NAMES else "")
                    ),
                )
            )
    for p in preference_results(preference):
        line = tag("li", tag("b", f"{p.get('judge', 'human')} preference") + esc(": " + preference_text(p)))
        (improved if p.get("verdict") == "better" else broke if p.get("verdict") == "worse" else []).append(line)
    boxes = [
        tag("div", tag("h3", "What was paid") + kv(paid(summary, cost)), cls="box"),
        tag(
            "div",
            tag("h3", "What improved")
            + _capped_list(improved, f"Nothing significantly better at {percent(conf)} confidence."),
            cls="box good",
        ),
        tag(
            "div",
            tag("h3", "What broke")
            + _capped_list(broke, f"Nothing significantly worse at {percent(conf)} confidence."),
            cls="box bad",
        ),
    ]
    return tag("section", join(boxes), id="glance", cls="glance")


def _metric_line(r: dict, confidence: float) -> Html:
    name = str(r.get("suite", "")).replace(SLICE, " · ") + " · " + str(r.get("metric", ""))
    return tag(
        "li",
        tag("b", name)
        + esc(
            f": {num(r.get('base'))} → {num(r.get('tuned'))} "
            f"({signed(r.get('delta'))}, {percent(confidence)} CI "
            f"{interval(r.get('ci_low'), r.get('ci_high'))}, n={r.get('n', '-')})"
        ),
    )


def _capped_list(items: list[Html], empty: str) -> Html:
    if not items:
        return tag("p", empty, cls="note")
    more = tag("li", f"… and {len(items) - SHOWN} more below", cls="note") if len(items) > SHOWN else Html("")
    return tag("ul", join(items[:SHOWN]) + more)
