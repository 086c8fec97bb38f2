"""Every model of a run side by side on the held-out cases: base | tuned | each baseline (the built-in ones, an
endpoint, recorded replies), and what a recorded baseline could not answer. (Each model's cost per success is in
`tunesmith.report.costs`.)

    models_table(summary)        # summary["side_by_side"]: one column per model, the best value of a row in bold
"""

from __future__ import annotations

from typing import Any

from tunesmith.eval.compare import LOWER_IS_BETTER
from tunesmith.eval.sequential import stopped_line
from tunesmith.report.markup import Html, join, num, table, tag

SHOWN = 20  # missing case ids listed before "… and N more"


def models_table(summary: dict) -> Html:
    """The held-out metrics with one column per model (empty when only base and tuned were measured)."""
    side = summary.get("side_by_side") if isinstance(summary.get("side_by_side"), dict) else {}
    columns = [str(c) for c in side.get("columns") or []]
    rows = [r for r in side.get("rows") or [] if isinstance(r, dict)]
    if len(columns) <= 2 or not rows:
        return Html("")
    body = []
    for r in rows:
        values = r.get("values") or {}
        known = [v for v in values.values() if isinstance(v, (int, float))]
        best = (min(known) if r.get("metric") in LOWER_IS_BETTER else max(known)) if known else None
        sizes = sorted({n for n in (r.get("n") or {}).values() if isinstance(n, int)})
        cells: list[Any] = [
            tag("b", num(v)) if v is not None and v == best else num(v) for v in map(values.get, columns)
        ]
        body.append([r.get("metric"), "/".join(map(str, sizes)) or "-", *cells])
    return (
        tag("h3", "Side by side on the held-out cases")
        + table(["metric", "n", *columns], body, numeric=["n", *columns])
        + tag(
            "p", "Each baseline's value is on the cases it shares with the tuned model; the best is bold.", cls="note"
        )
        + missing_notes(summary)
    )


def missing_notes(summary: dict) -> Html:
    """For each recorded baseline: the held-out cases without a reply, left out of its comparison; for one stopped
    early (`eval.few_shot_stop`), where and why."""
    notes = []
    baselines = summary.get("baselines") if isinstance(summary.get("baselines"), dict) else {}
    for name, entry in baselines.items():
        stopped = (entry or {}).get("stopped") if isinstance(entry, dict) else None
        if isinstance(stopped, dict):
            notes.append(tag("p", f"{name}: {stopped_line(stopped)}; its values are on those cases.", cls="note"))
        missing = (entry or {}).get("missing") if isinstance(entry, dict) else None
        if missing:
            more = f" … and {len(missing) - SHOWN} more" if len(missing) > SHOWN else ""
            ids = ", ".join(map(str, missing[:SHOWN]))
            notes.append(
                tag(
                    "p",
                    f"{name}: {len(missing)} held-out case(s) have no recorded reply (left out of its comparison): "
                    f"{ids}{more}",
                    cls="note",
                )
            )
    return join(notes)
