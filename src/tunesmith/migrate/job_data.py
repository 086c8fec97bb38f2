"""A fine-tuning job's training and validation JSONL, read line by line and converted to what tunesmith reads.

    rows = convert_lines(Path("dpo.jsonl"), "dpo", "--training-file")   # [{"prompt", "chosen", "rejected"}, ...]

- supervised: OpenAI's chat lines are tunesmith's `messages` format already; only a `developer` turn (OpenAI's
  system role for reasoning models) becomes `system`.
- dpo: tunesmith does not read OpenAI's DPO lines (`input.messages`, `preferred_output`, `non_preferred_output`)
  as they are, so each becomes tunesmith's preference pair (`prompt`, `chosen`, `rejected`; `input.tools` kept).
- reinforcement: the prompt (`messages`) plus one assistant turn holding the line's other fields as a JSON
  object. GRPO's rewards and the eval's scorers read a record's final reply as its `expected` value (parsed as
  JSON in a json task), and OpenAI's graders read `{{item.x}}` from it, so a grader's templates resolve as they
  did at OpenAI.

`reply_task(rows)` is the task a supervised job's replies imply: `json` when every reply is a JSON object, a case
correct when its label-like fields match (`task.match_fields`: a free-text field, a reason, is not compared), else
`chat`.

The input files are only read. A line that is not JSON, not in the method's shape, or not readable by tunesmith
is a problem naming file:line and the field (as the job's format names it); all of them are reported at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunesmith.config import TaskConfig
from tunesmith.data.formats import to_record
from tunesmith.data.io import LineProblem, scan_jsonl
from tunesmith.data.messages import RecordError, parse_message
from tunesmith.errors import Problem, TunesmithError
from tunesmith.eval.baselines import label_problem

SHAPES = {
    "supervised": '{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}',
    "dpo": '{"input": {"messages": [...]}, "preferred_output": [{"role": "assistant", "content": "..."}], '
    '"non_preferred_output": [...]}',
    "reinforcement": '{"messages": [{"role": "user", "content": "..."}], "<field the grader reads>": ...}',
}
NOT_ITEM = ("messages", "tools", "parallel_tool_calls")  # a reinforcement line's keys that are not the grader's item


def convert_lines(path: Path, method: str, option: str) -> list[dict[str, Any]]:
    """Every line of a job's data file in tunesmith's form (see the module doc); `option` names the command-line
    option that gave the file, for the hint when it is missing."""
    if not path.is_file():
        raise TunesmithError(
            "Data file not found", [Problem(str(path), "no such file", f"{option} names the job's JSONL file")]
        )
    rows, problems = [], []
    for line, item in scan_jsonl(path):
        if isinstance(item, LineProblem):
            problems.append(Problem(f"{path}:{line}", item.message, item.hint))
            continue
        try:
            row = CONVERTERS[method](item)
            to_record(row, str(path), line)  # what tunesmith's reader will make of it
        except RecordError as exc:
            problems.append(Problem(f"{path}:{line} [{exc.field}]", exc.message, exc.hint))
            continue
        rows.append(row)
    if problems:
        raise TunesmithError.capped(f"{len(problems)} line(s) of {path} cannot be imported", problems)
    return rows


def _messages(value: Any, field: str) -> list[dict[str, Any]]:
    """The chat messages at `field`, each checked as tunesmith reads it, `developer` read as `system`."""
    if not isinstance(value, list) or not value:
        raise RecordError(field, f"`{field}` must be a non-empty list of chat messages")
    out = []
    for i, raw in enumerate(value):
        msg = {**raw, "role": "system"} if isinstance(raw, dict) and raw.get("role") == "developer" else raw
        try:
            parse_message(msg, i)
        except RecordError as exc:
            raise RecordError(exc.field.replace("messages", field, 1), exc.message, exc.hint) from None
        out.append(msg)
    return out


def _need(obj: dict[str, Any], key: str, method: str) -> Any:
    if key not in obj:
        keys = ", ".join(sorted(map(str, obj))) or "none"
        raise RecordError(key, f"a {method} line needs `{key}` (it has: {keys})", f"a {method} line: {SHAPES[method]}")
    return obj[key]


def _supervised(obj: dict[str, Any]) -> dict[str, Any]:
    return {**obj, "messages": _messages(_need(obj, "messages", "supervised"), "messages")}


def _dpo(obj: dict[str, Any]) -> dict[str, Any]:
    given = _need(obj, "input", "dpo")
    if not isinstance(given, dict):
        raise RecordError("input", "`input` must be an object with `messages`", f"a dpo line: {SHAPES['dpo']}")
    row = {
        "prompt": _messages(_need(given, "messages", "dpo"), "input.messages"),
        "chosen": _messages(_need(obj, "preferred_output", "dpo"), "preferred_output"),
        "rejected": _messages(_need(obj, "non_preferred_output", "dpo"), "non_preferred_output"),
    }
    return {**row, "tools": given["tools"]} if given.get("tools") else row


def _reinforcement(obj: dict[str, Any]) -> dict[str, Any]:
    messages = _messages(_need(obj, "messages", "reinforcement"), "messages")
    item = {k: v for k, v in obj.items() if k not in NOT_ITEM}
    row = {"messages": messages + [{"role": "assistant", "content": json.dumps(item, ensure_ascii=False)}]}
    return {**row, "tools": obj["tools"]} if obj.get("tools") else row


def reply_task(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The `task` section of supervised rows: json when every final reply is a JSON object, with `match_fields`
    the label-like fields (see `tunesmith.eval.baselines.label_problem`) when the others are free text."""
    replies = [to_record(row, "", line).reply for line, row in enumerate(rows, start=1)]
    objects = [_object(reply) for reply in replies]
    if not objects or any(o is None for o in objects):
        return {"type": "chat"}
    keys = list(dict.fromkeys(k for o in objects for k in o))
    labels = [k for k in keys if label_problem(TaskConfig(type="json", match_fields=[k]), replies) is None]
    return {"type": "json", "match_fields": labels} if labels and labels != keys else {"type": "json"}


def _object(reply: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(reply or "")
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


CONVERTERS = {"supervised": _supervised, "dpo": _dpo, "reinforcement": _reinforcement}
