"""What a label task gets wrong: the label pairs most often confused, and the cases no model gets right.

    pairs = confused_pairs(tuned_rows, cfg.task)                 # [{"field", "expected", "predicted", "count"}]
    pairs = confused_pairs(tuned_rows, cfg.task, fields=label_fields(cfg.task, train_replies))
    hard = still_wrong(base_rows, tuned_rows, limit=5)           # {"suite", "n", "cases": [...]}

Rows are results.jsonl rows (`expected`, `output`, `scores`). A classification task has one field (shown as None):
the whole reply; a JSON task has one per label-like field (see `tunesmith.eval.baselines.label_fields`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

from tunesmith.config import TaskConfig
from tunesmith.eval.baselines import LABEL, label_fields
from tunesmith.eval.scorers import parse_json_lenient

NO_OUTPUT = "(no output)"
NOT_JSON = "(not a JSON object)"
MISSING = "(missing)"
SHOWN_CHARS = 80  # a predicted "label" longer than this (a rambling reply) is cut


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def row_fields(rows: list[dict], task: TaskConfig) -> list[str] | None:
    """The label fields of `rows`, read from their expected replies (None: not a label task)."""
    if task.type == "classification":
        return [LABEL]
    if task.type != "json":
        return None
    expected = [json.dumps(r["expected"]) for r in rows if isinstance(r.get("expected"), dict)]
    return label_fields(task, expected) if expected else None


def _predicted(output: str | None, field: str) -> str:
    """What a reply says for one field."""
    if output is None:
        return NO_OUTPUT
    if field == LABEL:
        return _show(output.strip())
    try:
        obj = parse_json_lenient(output)
    except ValueError:
        return NOT_JSON
    if not isinstance(obj, dict):
        return NOT_JSON
    return _show(obj[field]) if field in obj else MISSING


def _wrong(row: dict, field: str) -> bool:
    key = "task_correct" if field == LABEL else f"field:{field}"
    return (row.get("scores") or {}).get(key) is False


def confused_pairs(
    rows: list[dict], task: TaskConfig, top: int = 10, suite: str | None = "heldout", fields: list[str] | None = None
) -> list[dict[str, Any]]:
    """The most frequent (expected, predicted) label pairs among the wrong cases of `suite` (every suite when
    None), up to `top` per label field, most frequent first: `{"field" (None for a classification task), "expected",
    "predicted", "count"}`. `fields` defaults to the label-like fields of the rows' expected replies; [] when the
    task is not a label task."""
    rows = [r for r in rows if suite is None or r.get("suite") == suite]
    fields = fields if fields is not None else row_fields(rows, task)
    out = []
    for field in fields or []:
        pairs: Counter = Counter()
        for r in rows:
            expected = r.get("expected")
            if field != LABEL and not isinstance(expected, dict):
                continue
            if expected is None or not _wrong(r, field):
                continue
            want = _show(expected if field == LABEL else expected.get(field))
            pairs[(want, _predicted(r.get("output"), field))] += 1
        ranked = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        out += [
            {"field": None if field == LABEL else field, "expected": e, "predicted": p, "count": n}
            for (e, p), n in ranked
        ]
    return out


def paired_cases(base_rows: list[dict], tuned_rows: list[dict], suite: str) -> Iterator[tuple[dict, dict]]:
    """(base row, tuned row) for each case of `suite` that both evaluations answered, in the base rows' order."""
    tuned_by = {(r.get("suite"), r.get("id")): r for r in tuned_rows}
    for b in base_rows:
        t = tuned_by.get((b.get("suite"), b.get("id")))
        if t is not None and b.get("suite") == suite:
            yield b, t


def side_by_side(b: dict, t: dict) -> dict[str, Any]:
    """A case as a report shows it: id, where, prompt, expected, the base and tuned outputs, the tuned error."""
    return {
        "id": b.get("id"),
        "where": b.get("where"),
        "prompt": b.get("prompt"),
        "expected": b.get("expected"),
        "base": b.get("output"),
        "tuned": t.get("output"),
        "error": t.get("error"),
    }


def still_wrong(
    base_rows: list[dict], tuned_rows: list[dict], limit: int = 5, suite: str = "heldout"
) -> dict[str, Any]:
    """Cases of `suite` that both the base and the tuned model got wrong (task_correct false for both):
    `{"suite", "n" (how many), "cases": [{"id", "where", "prompt", "expected", "base", "tuned"}] (the first
    `limit`)}`."""
    cases = [
        side_by_side(b, t)
        for b, t in paired_cases(base_rows, tuned_rows, suite)
        if all((r.get("scores") or {}).get("task_correct") is False for r in (b, t))
    ]
    return {"suite": suite, "n": len(cases), "cases": cases[:limit]}
