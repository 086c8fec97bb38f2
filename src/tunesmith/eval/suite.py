"""Eval cases and suites (design §5).

An eval case: `messages` (the prompt), `expected` (label, text, JSON object, number, or none), `behavior`
(answer | refuse | escalate | clarify | abstain), `kind` (task | redteam | out_of_domain | general), and `tags`.

    cases = cases_from_records(heldout, task)          # the held-out split as a suite
    cases = load_suite("eval/redteam.jsonl", task)     # a suite file
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.config import TaskConfig
from tunesmith.data.formats import RecordError, parse_message
from tunesmith.data.io import read_jsonl
from tunesmith.data.records import Record
from tunesmith.errors import Problem, TunesmithError

BEHAVIORS = ("answer", "refuse", "escalate", "clarify", "abstain")
KINDS = ("task", "redteam", "out_of_domain", "general")


@dataclass
class EvalCase:
    id: str
    messages: list[dict[str, Any]]
    expected: Any = None
    behavior: str = "answer"
    kind: str = "task"
    tags: list[str] = field(default_factory=list)
    tools: list[dict] | None = None
    where: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def with_system_prompt(messages: list[dict], task: TaskConfig) -> list[dict]:
    """Prepend the task's system prompt to a conversation that has none."""
    if task.system_prompt and not (messages and messages[0].get("role") == "system"):
        return [{"role": "system", "content": task.system_prompt}] + messages
    return messages


def expected_from_reply(reply: str | None, task: TaskConfig) -> Any:
    """The expected answer of a held-out record: the parsed JSON object for json tasks, else the text."""
    if reply is None:
        return None
    if task.type == "json":
        try:
            return json.loads(reply)
        except json.JSONDecodeError:
            return reply
    return reply.strip()


def cases_from_records(records: list[Record], task: TaskConfig, suite: str = "heldout") -> list[EvalCase]:
    """Turn held-out conversations into cases: the prompt is everything before the final reply, and the behaviour
    expected is the one that reply shows (a held-out refusal must be refused again)."""
    from tunesmith.data.coverage import reply_behavior

    return [EvalCase(id=rec.id or f"{suite}-{i:04d}", messages=with_system_prompt(rec.prompt, task),
                     expected=expected_from_reply(rec.reply, task), behavior=reply_behavior(rec.reply or ""),
                     kind="task", tags=list(rec.tags), tools=rec.tools, where=rec.where)
            for i, rec in enumerate(records)]


def load_suite(path: str | Path, task: TaskConfig, name: str | None = None) -> list[EvalCase]:
    """Read a suite JSONL file; every bad case is reported with file:line and field."""
    path = Path(path)
    name = name or path.stem
    cases, problems = [], []
    for line, obj in read_jsonl(path):
        where = f"{path}:{line}"
        try:
            raw = obj.get("messages")
            if not isinstance(raw, list) or not raw:
                raise RecordError("messages", "a case needs a non-empty `messages` list (the prompt)")
            messages = [parse_message(m, i) for i, m in enumerate(raw)]
            if messages[-1]["role"] == "assistant":  # a full conversation: its last reply is the expectation
                expected = obj.get("expected", expected_from_reply(messages[-1]["content"], task))
                messages = messages[:-1]
            else:
                expected = obj.get("expected")
            behavior = obj.get("behavior", "answer")
            if behavior not in BEHAVIORS:
                raise RecordError("behavior", f"unknown behavior {behavior!r}", f"use one of {', '.join(BEHAVIORS)}")
            kind = obj.get("kind", "task")
            if kind not in KINDS:
                raise RecordError("kind", f"unknown kind {kind!r}", f"use one of {', '.join(KINDS)}")
            tags = obj.get("tags") or []
            if not isinstance(tags, list):
                raise RecordError("tags", "tags must be a list of strings")
        except RecordError as exc:
            problems.append(Problem(f"{where} [{exc.field}]", exc.message, exc.hint))
            continue
        cases.append(EvalCase(id=str(obj.get("id", f"{name}-{len(cases):04d}")),
                              messages=with_system_prompt(messages, task), expected=expected, behavior=behavior,
                              kind=kind, tags=[str(t) for t in tags], tools=obj.get("tools"), where=where))
    if problems:
        raise TunesmithError(f"Bad eval suite {path}: {len(problems)} case(s)", problems[:10])
    return cases
