"""Scorer specs (`{type: regex, pattern: ...}` in `scorers` or `train.grpo.rewards`), checked without the scorers.

The config validates `train.grpo.rewards` and a suite validates its cases' scorers with `scorer_problem`; the scoring
functions themselves live in `tunesmith.eval.scorers` (tunesmith's own, `SCORER_FUNCTIONS`) and
`tunesmith.eval.openai_graders` (OpenAI's graders, checked in `tunesmith.scorer_specs.graders`).

    scorer_problem({"type": "regex", "pattern": "("})   # ("bad regex '(': ...", "patterns use Python's re syntax")
    needs_judge({"type": "score_model", "input": [...]})  # True: it asks eval.judge
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from tunesmith.scorer_specs.graders import GRADER_KEYS, OPENAI_GRADERS, grader_problem, needs_judge

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
    **GRADER_KEYS,  # OpenAI's graders: string_check, text_similarity, score_model, label_model, python, multi
}

__all__ = ["OPENAI_GRADERS", "SCORER_KEYS", "needs_judge", "scorer_problem"]


def scorer_problem(spec: Any) -> tuple[str, str] | None:
    """(message, hint) when a scorer spec is unusable, else None: checked when a suite is read."""
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        return "a scorer is an object with a `type`", f"types: {', '.join(SCORER_KEYS)}"
    kind = spec["type"]
    if kind not in SCORER_KEYS:
        close = difflib.get_close_matches(kind, list(SCORER_KEYS), n=1)
        return (
            f"unknown scorer {kind!r}" + (f" (did you mean {close[0]!r}?)" if close else ""),
            f"types: {', '.join(SCORER_KEYS)}",
        )
    if kind in OPENAI_GRADERS:
        return grader_problem(spec)
    missing = [k for k in SCORER_KEYS[kind] if k not in spec]
    if missing:
        return f"scorer {kind!r} needs {', '.join(repr(m) for m in missing)}", ""
    if kind == "regex":
        try:
            re.compile(spec["pattern"])
        except (re.error, TypeError) as exc:
            return f"bad regex {spec['pattern']!r}: {exc}", "patterns use Python's re syntax"
    if kind == "custom" and ":" not in str(spec["function"]):
        return f"custom scorer {spec['function']!r} is not module:function", 'e.g. "my_scorers:is_polite"'
    return None
