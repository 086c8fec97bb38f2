"""Single cases side by side: the held-out cases that flipped between base and tuned, and for a label task the
most confused labels and the cases both models still get wrong.
"""

from __future__ import annotations

from typing import Any

from tunesmith.report.frame import not_measured, section
from tunesmith.report.markup import Html, join, table, tag


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


def _case(c: dict) -> Html:
    head = tag("div", f"{c.get('id')}" + (f" ({c['where']})" if c.get("where") else ""), cls="case-id")
    cells = [
        tag("div", tag("h4", name) + tag("pre", _text(c.get(key))), cls="cell")
        for name, key in (("prompt", "prompt"), ("expected", "expected"), ("base", "base"), ("tuned", "tuned"))
    ]
    note = tag("p", f"tuned error: {c['error']}", cls="note") if c.get("error") else Html("")
    return tag("div", head + tag("div", join(cells), cls="case-grid") + note, cls="case")


def _text(value: Any) -> str:
    import json

    if value is None:
        return "(none)"
    if isinstance(value, str) and not value.strip():  # an empty or blank reply would show as nothing at all
        return "(empty reply)" if not value else f"(only whitespace: {value!r})"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
