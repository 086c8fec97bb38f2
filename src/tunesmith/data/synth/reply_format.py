"""`ReplyFormat`: what a reply must be for the task (one JSON object, valid against the schema; one of the labels;
free text), as the note the teacher sees and as the check a reply must pass."""

from __future__ import annotations

import json
from dataclasses import dataclass

from tunesmith.data.records import Record
from tunesmith.schemas import validator_for


@dataclass(frozen=True)
class ReplyFormat:
    """What a reply must be: one JSON object (valid against `schema` when given), one of `labels`, or free text."""

    json: bool = False
    schema: dict | None = None
    labels: tuple[str, ...] = ()

    @classmethod
    def of(cls, task, schema: dict | None, seeds: list[Record]) -> ReplyFormat:
        kind = task.type if task is not None else "chat"
        if schema is not None or kind == "json":
            return cls(json=True, schema=schema)
        if kind == "classification":
            return cls(labels=tuple(sorted({(r.reply or "").strip() for r in seeds})))
        return cls()

    def note(self) -> str | None:
        """The format instruction only the teacher sees."""
        if self.schema is not None:
            return (
                "Reply with one JSON object only (no code fence, no prose) that validates against this JSON "
                f"Schema: {json.dumps(self.schema, ensure_ascii=False)}"
            )
        if self.json:
            return "Reply with one JSON object only (no code fence, no prose)."
        if self.labels:
            return f"Reply with exactly one of these labels and nothing else: {', '.join(self.labels)}"
        return None

    def problem(self, reply: str) -> tuple[str, str] | None:
        """(reason, detail) when the reply is not in the task's format."""
        if self.json:
            try:
                obj = json.loads(reply)
            except json.JSONDecodeError as exc:
                return "not_json", f"the reply is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            if not isinstance(obj, dict):
                return "not_json", f"the reply is JSON but not one object (a {type(obj).__name__})"
            if self.schema is not None:
                error = validator_for(self.schema).first_error(obj)
                if error:
                    return "schema_invalid", f"the reply does not match the JSON Schema at {error[0]}: {error[1]}"
        elif self.labels and reply.strip() not in self.labels:
            return "unknown_label", f"{reply.strip()[:60]!r} is not one of the labels {', '.join(self.labels)}"
        return None
