"""Scorer specs — `{type: regex, pattern: ...}` in a suite's `scorers` or `train.rewards` — checked without the scorers.

The config validates `train.rewards` and a suite validates its cases' scorers with `scorer_problem`; the scoring
functions themselves live in `tunesmith.eval.scorers` (`SCORERS`), one per type named here.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

SCORER_KEYS: dict[str, tuple[str, ...]] = {  # type: required spec keys
    "exact": (),
    "label": (),
    "json": (),
    "json_schema": (),
    "json_fields": (),
    "regex": ("pattern",),
    "numeric": (),
    "contains": ("text",),
    "not_contains": ("text",),
    "behavior": (),
    "tool_call": (),
    "instructions": (),
    "custom": ("function",),
    "string_check": ("input", "reference", "operation"),  # OpenAI's grader (tunesmith.eval.openai_graders)
}
# OpenAI's other grader types: named when a spec uses one, so a migrating team knows what is not there yet
OPENAI_GRADERS_NOT_YET = ("text_similarity", "score_model", "label_model", "python", "multi")


def scorer_problem(spec: Any) -> tuple[str, str] | None:
    """(message, hint) when a scorer spec is unusable, else None: checked when a suite is read."""
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        return "a scorer is an object with a `type`", f"types: {', '.join(SCORER_KEYS)}"
    kind = spec["type"]
    if kind in OPENAI_GRADERS_NOT_YET:
        return (
            f"OpenAI's {kind!r} grader is not supported yet",
            "supported OpenAI graders: string_check; write the check as {type: custom, function: 'module:fn'}",
        )
    if kind not in SCORER_KEYS:
        close = difflib.get_close_matches(kind, list(SCORER_KEYS), n=1)
        return (
            f"unknown scorer {kind!r}" + (f" (did you mean {close[0]!r}?)" if close else ""),
            f"types: {', '.join(SCORER_KEYS)}",
        )
    missing = [k for k in SCORER_KEYS[kind] if k not in spec]
    if missing:
        return f"scorer {kind!r} needs {', '.join(repr(m) for m in missing)}", ""
    if kind == "regex":
        try:
            re.compile(spec["pattern"])
        except (re.error, TypeError) as exc:
            return f"bad regex {spec['pattern']!r}: {exc}", "patterns use Python's re syntax"
    if kind == "string_check" and spec["operation"] not in ("eq", "ne", "like", "ilike"):
        return f"string_check operation {spec['operation']!r} is not eq, ne, like or ilike", ""
    if kind == "custom" and ":" not in str(spec["function"]):
        return f"custom scorer {spec['function']!r} is not module:function", 'e.g. "my_scorers:is_polite"'
    return None
