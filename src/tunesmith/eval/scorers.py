"""Scorers: each takes (case, output) and says pass/fail (or None when it does not apply).

`score_case` applies the ones a task needs and returns a flat dict of metric -> bool | None:
`task_correct` (the task's accuracy), `format_valid` (json tasks), `field:<name>` (per JSON field),
`behavior_correct` (answers, refuses, escalates, asks or abstains as the case expects), `hallucinated`
(out-of-domain cases answered anyway) and `hit_token_limit` (a reply that never stopped).
"""

from __future__ import annotations

import json
import re
from typing import Any

from tunesmith.config import TaskConfig
from tunesmith.eval.suite import EvalCase

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


def normalize(text: Any) -> str:
    """Case- and whitespace-insensitive form of a value for comparison."""
    return re.sub(r"\s+", " ", str(text)).strip().strip(".").lower()


def parse_json_strict(output: str) -> Any:
    """The output as JSON if it is exactly one JSON value (whitespace allowed), else raise ValueError."""
    return json.loads(output.strip())


def parse_json_lenient(output: str) -> Any:
    """JSON from an output that may wrap it in a code fence or prose: the first {...} that parses."""
    text = output.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            return decoder.raw_decode(text[match.start():])[0]
        except json.JSONDecodeError:
            continue
    raise ValueError("no JSON object found")


def json_valid(output: str, schema: dict | None = None) -> bool:
    """Exactly one JSON object, valid against `schema` when given."""
    try:
        obj = parse_json_strict(output)
    except ValueError:
        return False
    if not isinstance(obj, dict):
        return False
    if schema:
        from tunesmith.schemas import validator_for

        return validator_for(schema).is_valid(obj)
    return True


def field_matches(output: str, expected: dict, fields: list[str]) -> dict[str, bool]:
    """Per-field equality (normalized) of the JSON in `output` against `expected`."""
    try:
        obj = parse_json_lenient(output)
    except ValueError:
        obj = None
    obj = obj if isinstance(obj, dict) else {}
    return {f: f in obj and normalize(obj[f]) == normalize(expected.get(f)) for f in fields}


def detect_behavior(output: str) -> str:
    """What a reply does: answer, refuse, escalate, clarify or abstain (JSON values count, so a router's
    {"queue": "escalation"} escalates)."""
    from tunesmith.data.coverage import reply_behavior

    return reply_behavior(output)


def score_case(case: EvalCase, output: str, task: TaskConfig, schema: dict | None = None,
               hit_limit: bool = False) -> dict[str, bool | None]:
    """All metrics of one case: the task's accuracy and format, whether the reply behaves as expected (answers,
    refuses, escalates, asks, or says it does not know), and for out-of-domain cases whether it made an answer up."""
    detected = detect_behavior(output)
    scores: dict[str, bool | None] = {"hit_token_limit": hit_limit, "behavior_correct": detected == case.behavior}
    if case.kind == "out_of_domain":
        scores["hallucinated"] = detected == "answer"
    expected = case.expected
    if task.type == "json":
        scores["format_valid"] = json_valid(output, schema)
        if isinstance(expected, dict):
            fields = task.match_fields or list(expected)
            per_field = field_matches(output, expected, fields)
            scores.update({f"field:{k}": v for k, v in per_field.items()})
            scores["task_correct"] = all(per_field.values())
        elif expected is not None:
            scores["task_correct"] = normalize(output) == normalize(expected)
        else:
            scores["task_correct"] = None
    elif isinstance(expected, (int, float)) and not isinstance(expected, bool):
        scores["task_correct"] = numeric_match(output, expected)
    else:
        scores["task_correct"] = None if expected is None else normalize(output) == normalize(expected)
    return scores


_FINAL = re.compile(r"####\s*(-?[\d,]*\.?\d+)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def numeric_answer(output: str) -> float | None:
    """The answer of a worked solution: after GSM8K's `####` marker when there is one, else the last number
    (thousands separators allowed)."""
    marked = _FINAL.search(output)
    found = [marked.group(1)] if marked else _NUMBER.findall(output)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def numeric_match(output: str, expected: float, rel_tol: float = 1e-6) -> bool:
    """The output's numeric answer equals `expected` (to a relative 1e-6)."""
    got = numeric_answer(output)
    return got is not None and abs(got - expected) <= rel_tol * max(1.0, abs(expected))
