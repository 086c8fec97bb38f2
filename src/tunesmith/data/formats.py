"""Converters from the common fine-tuning formats to `Record`s, detected per record.

Supported: ChatML / OpenAI fine-tuning `messages` (with `tools` and `tool_calls`), ShareGPT `conversations`
(`from`/`value`, including `function_call`/`observation` turns), Alpaca (`instruction`/`input`/`output`),
prompt/completion, preference pairs (`prompt`/`chosen`/`rejected`, as strings or messages, with an explicit or an
implicit shared prompt, or as `\n\nHuman: ... \n\nAssistant: ...` transcripts), and labeled rows for
classification (CSV or JSONL: a text column and a label column). Rows in none of these are read through a
column mapping (`data.columns`), or as one of the common prompt/reply pairs such as GSM8K's `question`/`answer`
(`tunesmith.data.columns`). A preference pair becomes a Record whose conversation ends with the chosen reply and
whose `rejected` holds the other. Files are JSONL (plain or gzipped) or, through `tunesmith.data.tables`, JSON
arrays, Parquet, Arrow and saved `datasets` directories.

    records = load_records(["data/train.jsonl"])
    records = load_records(["data/gsm8k.parquet"], columns=ColumnsConfig(prompt="question", reply="answer"))
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tunesmith.config import ColumnsConfig
from tunesmith.data.columns import MAPPING_HINT, common_columns, mapped_messages, named_fields, pairs_text
from tunesmith.data.findings import Code, Finding, Severity
from tunesmith.data.io import LineProblem, read_csv, read_jsonl, scan_jsonl
from tunesmith.data.messages import RecordError, parse_message, preference_messages, side_turns
from tunesmith.data.records import Record
from tunesmith.data.tables import is_table, scan_rows
from tunesmith.errors import Problem, TunesmithError

SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "tool": "tool",
    "observation": "tool",
    "function": "tool",
    "function_call": "assistant",
}
META_KEYS = {"tags", "id", "meta", "tools", "weight"}
FORMAT_KEYS = {
    "messages": {"messages", "parallel_tool_calls", "rejected"},
    "sharegpt": {"conversations", "system"},
    "alpaca": {"instruction", "input", "output", "system"},
    "prompt_completion": {"prompt", "completion"},
    "preference": {"prompt", "chosen", "rejected"},
}
REQUIRED_KEYS = {
    "messages": ("messages",),
    "openai": ("messages",),
    "sharegpt": ("conversations",),
    "alpaca": ("instruction", "output"),
    "prompt_completion": ("prompt", "completion"),
    "preference": ("chosen", "rejected"),
}
MESSAGE_KEYS = {"role", "content", "tool_calls", "tool_call_id", "name", "weight"}
FORMATS = ("messages", "openai", "sharegpt", "alpaca", "prompt_completion", "preference")


def detect_format(obj: dict[str, Any]) -> str:
    """Name the format of one raw record, or raise RecordError saying which keys were expected."""
    if "messages" in obj:
        return "messages"
    if "conversations" in obj:
        return "sharegpt"
    if "chosen" in obj and "rejected" in obj:
        return "preference"
    if "instruction" in obj and "output" in obj:
        return "alpaca"
    if "prompt" in obj and "completion" in obj:
        return "prompt_completion"
    if common_columns(obj) is not None:
        return "columns"
    keys = ", ".join(sorted(map(str, obj))) or "none"
    raise RecordError(
        "",
        f"unknown record format (keys: {keys})",
        "expected `messages`, `conversations` (ShareGPT), `instruction`/`output` (Alpaca), "
        f"`prompt`/`completion`, `chosen`/`rejected`, or a prompt/reply pair ({pairs_text()}); or " + MAPPING_HINT,
    )


def _from_messages(obj: dict[str, Any]) -> list[dict[str, Any]]:
    raw = obj["messages"]
    if not isinstance(raw, list) or not raw:
        raise RecordError("messages", "messages must be a non-empty list")
    return [parse_message(m, i) for i, m in enumerate(raw)]


def _from_sharegpt(obj: dict[str, Any]) -> list[dict[str, Any]]:
    raw = obj["conversations"]
    if not isinstance(raw, list) or not raw:
        raise RecordError("conversations", "conversations must be a non-empty list")
    messages: list[dict[str, Any]] = []
    if isinstance(obj.get("system"), str) and obj["system"]:
        messages.append({"role": "system", "content": obj["system"]})
    for i, turn in enumerate(raw):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            raise RecordError(f"conversations[{i}]", "a ShareGPT turn needs `from` and `value`")
        who = str(turn["from"]).lower()
        if who not in SHAREGPT_ROLES:
            raise RecordError(
                f"conversations[{i}].from",
                f"unknown speaker {turn['from']!r}",
                "use human/gpt/system (or function_call/observation for tools)",
            )
        value = turn["value"]
        if not isinstance(value, str):
            raise RecordError(f"conversations[{i}].value", "value must be a string")
        if who == "function_call":
            try:
                call = json.loads(value)
            except (json.JSONDecodeError, RecursionError, ValueError):
                raise RecordError(f"conversations[{i}].value", "function_call value is not JSON") from None
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                raise RecordError(
                    f"conversations[{i}].value",
                    "a function_call value is a JSON object with a string `name`",
                    'e.g. "{\\"name\\": \\"f\\", \\"arguments\\": {}}"',
                )
            arguments = call.get("arguments", {})
            if isinstance(arguments, str):  # LLaMA-Factory's ShareGPT writes them as a JSON string, as OpenAI does
                try:
                    arguments = json.loads(arguments)
                except (json.JSONDecodeError, RecursionError, ValueError):
                    raise RecordError(f"conversations[{i}].value", "function_call arguments are not JSON") from None
            messages.append(
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"type": "function", "function": {"name": call.get("name"), "arguments": arguments}}
                    ],
                }
            )
        else:
            messages.append({"role": SHAREGPT_ROLES[who], "content": value})
    return messages


def _from_alpaca(obj: dict[str, Any]) -> list[dict[str, Any]]:
    for key in ("instruction", "output"):
        if not isinstance(obj.get(key), str):
            raise RecordError(key, f"{key} must be a string")
    extra = obj.get("input") or ""
    if not isinstance(extra, str):
        raise RecordError("input", "input must be a string")
    user = obj["instruction"] + (f"\n\n{extra}" if extra.strip() else "")
    messages = [{"role": "system", "content": obj["system"]}] if isinstance(obj.get("system"), str) else []
    return messages + [{"role": "user", "content": user}, {"role": "assistant", "content": obj["output"]}]


def _from_prompt_completion(obj: dict[str, Any]) -> list[dict[str, Any]]:
    prompt, completion = obj["prompt"], obj["completion"]
    if isinstance(prompt, list) and prompt:
        head = [parse_message(m, i) for i, m in enumerate(prompt)]
    elif isinstance(prompt, str):
        head = [{"role": "user", "content": prompt}]
    else:
        raise RecordError("prompt", "prompt must be a string or a non-empty list of messages")
    if isinstance(completion, list) and completion:
        tail = [parse_message(m, len(head) + i) for i, m in enumerate(completion)]
    elif isinstance(completion, str):
        tail = [{"role": "assistant", "content": completion}]
    else:
        raise RecordError("completion", "completion must be a string or a non-empty list of messages")
    return head + tail


CONVERTERS = {
    "messages": _from_messages,
    "openai": _from_messages,
    "sharegpt": _from_sharegpt,
    "alpaca": _from_alpaca,
    "prompt_completion": _from_prompt_completion,
}


def unknown_keys(obj: dict[str, Any], kind: str, known: set[str] | None = None) -> list[str]:
    """Paths of keys the format (or `known`, the fields a column mapping reads) does not define: a typo like
    `mesages`, or data the converter drops."""
    known = (FORMAT_KEYS["messages" if kind == "openai" else kind] if known is None else known) | META_KEYS
    out = [k for k in obj if k not in known]
    messages = obj.get("messages") if kind in ("messages", "openai") else None
    for i, msg in enumerate(messages if isinstance(messages, list) else []):
        if isinstance(msg, dict):
            out += [f"messages[{i}].{k}" for k in msg if k not in MESSAGE_KEYS]
    return out


def to_record(
    obj: dict[str, Any], source: str, line: int, fmt: str = "auto", columns: ColumnsConfig | None = None
) -> Record:
    """Convert one raw object to a Record, raising RecordError (with the field) when it cannot. A given column
    mapping (`data.columns`) reads every row; else the format is `fmt`, or detected per row with `auto`."""
    mapping = columns if columns is not None and columns.given else None
    kind = "columns" if mapping else detect_format(obj) if fmt == "auto" else fmt
    missing = [k for k in REQUIRED_KEYS.get(kind, ()) if k not in obj]
    if missing:  # a declared format the record is not in
        raise RecordError(
            missing[0],
            f"format is {fmt} but the record has no `{missing[0]}`",
            "set data.format: auto to detect formats per record",
        )
    rejected, known = None, None
    if kind == "columns":
        mapping = mapping or common_columns(obj)
        messages, rejected = mapped_messages(obj, mapping)
        known = set(named_fields(mapping))
    elif kind == "preference":
        messages, rejected = preference_messages(obj)
    else:
        messages = CONVERTERS[kind](obj)
        if kind == "messages" and obj.get("rejected") is not None:  # a pair tunesmith wrote (kept.jsonl, splits)
            rejected = side_turns(obj["rejected"], "rejected", len(messages))
    tools = obj.get("tools")
    if isinstance(tools, str):  # LLaMA-Factory's ShareGPT: the declarations as a JSON string
        try:
            tools = json.loads(tools) if tools.strip() else None
        except (json.JSONDecodeError, RecursionError, ValueError):
            raise RecordError("tools", "tools is a string that is not JSON", "a list of tool declarations") from None
    if tools is not None and not isinstance(tools, list):
        raise RecordError("tools", "tools must be a list of tool declarations")
    tags = obj.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise RecordError("tags", "tags must be a list of strings")
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    # Files tunesmith wrote (splits) carry the original provenance under `meta`.
    kept = isinstance(meta.get("source"), str) and type(meta.get("line")) is int  # not a hand-edited list
    src, ln = (meta["source"], meta["line"]) if kept else (source, line)
    rid = obj.get("id")
    return Record(
        messages=messages,
        source=src,
        line=ln,
        tools=tools,
        tags=list(tags),
        id=None if rid is None else str(rid),
        format="messages" if kind == "openai" else kind,
        unknown_keys=unknown_keys(obj, kind, known),
        rejected=rejected,
        provenance={k: v for k, v in meta.items() if k not in ("source", "line")},
    )


def read_item(
    item: dict | Any, shown: str, line: int, fmt: str = "auto", columns: ColumnsConfig | None = None
) -> Record | Any:
    """A parsed line (an object, or the io LineProblem saying why it is none) -> a Record, or an error Finding
    (`bad_line` or `bad_record`, with file:line, field and a hint) in its place."""
    if isinstance(item, LineProblem):
        return Finding(Code.BAD_LINE, Severity.ERROR, f"{shown}:{line}", "", item.message, item.hint)
    try:
        return to_record(item, shown, line, fmt, columns)
    except RecordError as exc:
        return Finding(Code.BAD_RECORD, Severity.ERROR, f"{shown}:{line}", exc.field, exc.message, exc.hint)


def shown_path(path: Path, base: Path | None) -> str:
    """How a data file is named in findings: relative to the project when there is one."""
    return str(path.relative_to(base)) if base and path.is_relative_to(base) else str(path)


def iter_records(
    paths: Iterable[str | Path], fmt: str = "auto", base: Path | None = None, columns: ColumnsConfig | None = None
) -> Iterator[Record | Any]:
    """Stream the records of data files (JSONL by line; JSON arrays, Parquet, Arrow and saved `datasets`
    directories by row, see `tunesmith.data.tables`); a line or record that cannot be read comes as an error
    Finding in its place (see `read_item`), and reading goes on."""
    for path in paths:
        shown = shown_path(Path(path), base)
        for line, item in (scan_rows if is_table(Path(path)) else scan_jsonl)(path):
            yield read_item(item, shown, line, fmt, columns)


def load_records(
    paths: Iterable[str | Path], fmt: str = "auto", base: Path | None = None, columns: ColumnsConfig | None = None
) -> list[Record]:
    """Read every record of the given data files; every bad record is reported at once with file:line and field."""
    records: list[Record] = []
    problems: list[Problem] = []
    for item in iter_records(paths, fmt, base, columns):
        if isinstance(item, Record):
            records.append(item)
        else:
            problems.append(
                Problem(f"{item.where}" + (f" [{item.field}]" if item.field else ""), item.message, item.hint)
            )
    if problems:
        raise TunesmithError.capped(f"{len(problems)} record(s) cannot be read", problems)
    return records


def labeled_rows_to_records(
    rows: Iterable[tuple[int, dict]],
    source: str,
    text_column: str,
    label_column: str,
    system: str | None = None,
    json_key: str | None = None,
) -> list[Record]:
    """Classification rows -> conversations whose answer is the label (or `{json_key: label}` as JSON)."""
    records, problems = [], []
    for line, row in rows:
        text, label = row.get(text_column), row.get(label_column)
        for name, value in ((text_column, text), (label_column, label)):
            if value is None:
                problems.append(
                    Problem(
                        f"{source}:{line} [{name}]",
                        "column missing",
                        f"columns present: {', '.join(str(k) for k in row if k is not None)}",
                    )
                )
            elif not str(value).strip():
                problems.append(Problem(f"{source}:{line} [{name}]", "empty value", "fill it in or drop the row"))
        if text is None or label is None or not str(text).strip() or not str(label).strip():
            continue
        label = str(label).strip()
        answer = json.dumps({json_key: label}, ensure_ascii=False) if json_key else label
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": str(text)},
            {"role": "assistant", "content": answer},
        ]
        records.append(Record(messages=messages, source=source, line=line))
    if problems:
        raise TunesmithError.capped(f"{len(problems)} row(s) cannot be converted", problems)
    return records


def read_labeled(path: str | Path, text_column: str, label_column: str, **kwargs: Any) -> list[Record]:
    """Labeled CSV or JSONL rows -> classification conversations."""
    path = Path(path)
    rows = read_csv(path) if path.suffix.lower() == ".csv" else read_jsonl(path)
    return labeled_rows_to_records(rows, str(path), text_column, label_column, **kwargs)
