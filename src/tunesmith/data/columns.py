"""Column mapping: rows whose fields are named by the user (`data.columns`, or `data convert --prompt-column ...`)
or are one of the common column pairs of published data sets, read as a conversation: an optional system prompt,
the user's turn, and the reply (or, for preference rows, the chosen and rejected replies).

    columns = common_columns({"question": "2+2?", "answer": "#### 4"})   # prompt="question", reply="answer"
    messages, rejected = mapped_messages(row, ColumnsConfig(prompt="text", label="intent", json_key="intent"))

The common pairs are only tried on rows in no other format: an Alpaca row (`instruction`/`input`/`output`) stays
Alpaca, `prompt`/`completion` stays prompt/completion and `prompt`/`chosen`/`rejected` stays a preference pair
(see `formats.detect_format`); a row with two common pairs is ambiguous and asks for a mapping.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from tunesmith.config import ColumnsConfig
from tunesmith.data.messages import RecordError, parse_message, preference_messages

# (prompt field, reply field) pairs many published data sets use: GSM8K, the input/output form of instruction
# sets, query/response support logs, prompt/response chat dumps, text/label classification sets.
COMMON_PAIRS = (
    ("question", "answer"),
    ("input", "output"),
    ("query", "response"),
    ("prompt", "response"),
    ("text", "label"),
)
COMMON_FIELDS = {name for pair in COMMON_PAIRS for name in pair} | {"system"}
ROLES_OF = ("prompt", "reply", "system", "label", "chosen", "rejected")  # the ColumnsConfig fields naming a column
MAPPING_HINT = (
    "name the fields in `data.columns`, e.g. {prompt: question, reply: answer} (`data convert`: "
    "--prompt-column, --reply-column, ...)"
)


def pairs_text() -> str:
    """The common pairs as a person reads them: `question/answer, input/output, ...`."""
    return ", ".join(f"{p}/{r}" for p, r in COMMON_PAIRS)


def common_columns(obj: dict[str, Any]) -> ColumnsConfig | None:
    """The mapping of the one common pair the row has (its `system` field too), None for none; a row with two
    pairs raises RecordError (which one is the prompt is not ours to guess)."""
    found = [(p, r) for p, r in COMMON_PAIRS if p in obj and r in obj]
    if len(found) > 1:
        both = " and ".join(f"{p}/{r}" for p, r in found)
        raise RecordError(found[1][0], f"ambiguous columns: the row has both {both}", MAPPING_HINT)
    return _common(*found[0], "system" in obj) if found else None


@cache
def _common(prompt: str, reply: str, system: bool) -> ColumnsConfig:
    kind = "label" if reply == "label" else "reply"  # text/label: a class label, stripped like any label
    return ColumnsConfig(prompt=prompt, system="system" if system else None, **{kind: reply})


def named_fields(columns: ColumnsConfig) -> list[str]:
    """The row fields a mapping reads, in the order of its roles."""
    return [getattr(columns, role) for role in ROLES_OF if getattr(columns, role)]


def mapped_messages(
    obj: dict[str, Any], columns: ColumnsConfig
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """(conversation, rejected reply or None) of a row read through `columns`; RecordError names the field."""
    missing = [name for name in named_fields(columns) if name not in obj]
    if missing:
        fields = ", ".join(sorted(map(str, obj))) or "none"
        raise RecordError(
            missing[0],
            f"the mapping names `{missing[0]}`, which the row does not have (it has: {fields})",
            "map the columns to fields the rows have: " + MAPPING_HINT,
        )
    head = _system(obj, columns.system)
    if columns.prompt:
        head += _prompt_turns(obj[columns.prompt], columns.prompt, len(head))
    if columns.chosen:
        return _preference(obj, columns, head)
    reply = _label(obj, columns) if columns.label else _reply(obj[columns.reply], columns.reply)
    return head + [{"role": "assistant", "content": reply}], None


def _system(obj: dict[str, Any], field: str | None) -> list[dict[str, Any]]:
    value = obj.get(field) if field else None
    if value is None or value == "":  # a null cell (a Parquet column with gaps) is no system prompt
        return []
    if not isinstance(value, str):
        raise RecordError(field, f"{field} must be a string (the system prompt), got {type(value).__name__}")
    return [{"role": "system", "content": value}]


def _prompt_turns(value: Any, field: str, start: int) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list) and value:
        try:
            return [parse_message(m, start + i) for i, m in enumerate(value)]
        except RecordError as exc:
            raise _renamed(exc, {"messages": field}) from None
    raise RecordError(
        field,
        f"{field} must be a string or a non-empty list of chat messages, got {type(value).__name__}",
        "map `prompt` to the field with the user's text",
    )


def _reply(value: Any, field: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # a numeric answer
    if not isinstance(value, str):
        raise RecordError(
            field,
            f"{field} must be a string or a number (the reply), got {type(value).__name__}",
            "map `reply` to the field with the assistant's text",
        )
    return value


def _label(obj: dict[str, Any], columns: ColumnsConfig) -> str:
    field, value = columns.label, obj[columns.label]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RecordError(
            field,
            f"{field} must be a string or a number (the label), got {type(value).__name__}",
            "map `label` to the field with the class label",
        )
    label = str(value).strip()
    if not label:
        raise RecordError(field, "empty label", "fill it in or drop the row")
    return json.dumps({columns.json_key: label}, ensure_ascii=False) if columns.json_key else label


def _preference(
    obj: dict[str, Any], columns: ColumnsConfig, head: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system = head[:1] if head and head[0]["role"] == "system" and not columns.prompt else []
    pair = {"chosen": obj[columns.chosen], "rejected": obj[columns.rejected]}
    if columns.prompt:
        pair["prompt"] = head
    try:
        chosen, rejected = preference_messages(pair)
    except RecordError as exc:
        raise _renamed(
            exc, {"prompt": columns.prompt or "prompt", "chosen": columns.chosen, "rejected": columns.rejected}
        ) from None
    return system + chosen, rejected


_HEAD = re.compile(r"^(\w+)(?=$|[.\[])")


def _renamed(exc: RecordError, names: dict[str, str]) -> RecordError:
    """The error with its field path starting at the user's column instead of the canonical key."""
    field = _HEAD.sub(lambda m: names.get(m.group(1), m.group(1)), exc.field, count=1)
    return RecordError(field, exc.message, exc.hint)
