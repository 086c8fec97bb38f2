"""OpenAI's graders as tunesmith scorers, so a team leaving hosted fine-tuning keeps grading the way it did.

    {"type": "string_check", "input": "{{sample.output_text}}", "reference": "{{item.label}}", "operation": "eq"}

A grader spec works wherever a scorer does: in a suite case's `scorers` and in `train.rewards` (GRPO rewards are
scorers). Template references are resolved as OpenAI's graders define them: `{{item.FIELD}}` is a field of the
case's data (its `expected` object's fields, `expected` itself, `id`), `{{sample.output_text}}` the model's reply and
`{{sample.output_json.FIELD}}` a field of it parsed as JSON. A reference to a field that does not exist scores the
case as unscored, with the fields it has in the reason. Supported: `string_check` (eq, ne, like, ilike).
"""

from __future__ import annotations

import json
import re
from typing import Any

STRING_OPERATIONS = ("eq", "ne", "like", "ilike")
TEMPLATE = re.compile(r"\{\{\s*(item|sample)\.([A-Za-z0-9_.\-]+)\s*\}\}")


class TemplateFieldError(ValueError):
    """A grader's template names a field that the case (or the reply) does not have."""


def item_of(case) -> dict[str, Any]:
    """What `{{item.…}}` reads: the case's expected object's fields, `expected` itself and the case's `id`."""
    expected = case.expected
    fields = dict(expected) if isinstance(expected, dict) else {}
    return {**fields, "expected": expected, "id": case.id}


def sample_of(output: str) -> dict[str, Any]:
    """What `{{sample.…}}` reads: `output_text`, and `output_json` when the reply parses as JSON."""
    try:
        parsed = json.loads(output)
    except (json.JSONDecodeError, TypeError):
        parsed = None
    return {"output_text": output, "output_json": parsed}


def render(template: str, case, output: str) -> str:
    """`template` with each `{{item.…}}` / `{{sample.…}}` replaced by its value (objects as JSON)."""
    scopes = {"item": item_of(case), "sample": sample_of(output)}

    def value(match: re.Match) -> str:
        scope, path = match.group(1), match.group(2)
        node: Any = scopes[scope]
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                has = ", ".join(sorted(node)) if isinstance(node, dict) else type(node).__name__
                raise TemplateFieldError(f"{{{{{scope}.{path}}}}}: no field {part!r} (it has: {has})")
            node = node[part]
        return node if isinstance(node, str) else json.dumps(node, ensure_ascii=False)

    return TEMPLATE.sub(value, str(template))


def string_check(spec: dict, case, output: str, schema: dict | None) -> tuple[bool, str]:
    """OpenAI's `string_check`: `input` against `reference` by `operation` (eq, ne, like: contains, ilike: contains
    ignoring case)."""
    got, want = render(spec["input"], case, output), render(spec["reference"], case, output)
    op = spec["operation"]
    passed = {
        "eq": got == want,
        "ne": got != want,
        "like": want in got,
        "ilike": want.lower() in got.lower(),
    }[op]
    return passed, "" if passed else f"{op}: {got[:80]!r} vs {want[:80]!r}"
