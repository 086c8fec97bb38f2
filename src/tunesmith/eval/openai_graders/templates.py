"""OpenAI's grader templates: `{{item.FIELD}}` and `{{sample.FIELD}}` references resolved against a case and a reply.

    render("{{sample.output_json.queue}} vs {{item.queue}}", case, '{"queue": "billing"}')   # "billing vs billing"

`{{item.FIELD}}` is a field of the case's data (its `expected` object's fields, `expected` itself, `id`),
`{{sample.output_text}}` the model's reply and `{{sample.output_json.FIELD}}` a field of it parsed as JSON; nested
fields are dotted. A reference to a field that does not exist raises `TemplateFieldError`, naming the fields there
are: the grader scores that case as unscored with that reason.
"""

from __future__ import annotations

import json
import re
from typing import Any

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
