"""Chat messages and preference pairs as a record's parts: each checked, with a `RecordError` naming the field.

    msg = parse_message({"role": "user", "content": "hi"}, 0)
    conversation, rejected = preference_messages({"prompt": "hi", "chosen": "hello", "rejected": "go away"})

Shared by the format readers (`tunesmith.data.formats`) and the column mappings (`tunesmith.data.columns`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from tunesmith.data.records import ROLES


class RecordError(ValueError):
    """A record that cannot be converted; `field` names the offending key."""

    def __init__(self, field: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.field, self.message, self.hint = field, message, hint


def parse_message(raw: Any, index: int) -> dict[str, Any]:
    """One chat message, checked: a known role, string content (or tool calls), JSON tool-call arguments. An
    assistant turn's `weight: 0` (OpenAI's fine-tuning format) is kept, so training puts no loss on it; `weight: 1`,
    the default, is dropped."""
    where = f"messages[{index}]"
    if not isinstance(raw, dict):
        raise RecordError(where, "a message must be an object with `role` and `content`")
    role = raw.get("role")
    if role == "developer":  # OpenAI's newer name for the system prompt (as `tunesmith import` reads it)
        raw, role = {**raw, "role": "system"}, "system"
    if role not in ROLES:
        raise RecordError(f"{where}.role", f"unknown role {role!r}", f"use one of {', '.join(ROLES)}")
    msg = {k: v for k, v in raw.items() if k != "weight"}
    if "weight" in raw and role == "assistant":  # OpenAI's fine-tuning format: 0 keeps a reply as context only
        if raw["weight"] not in (0, 1) or isinstance(raw["weight"], bool):
            raise RecordError(f"{where}.weight", f"weight must be 0 or 1, got {raw['weight']!r}", "0: no loss on it")
        if raw["weight"] == 0:
            msg["weight"] = 0
    content = msg.get("content")
    if role == "assistant" and msg.get("tool_calls"):
        if not isinstance(msg["tool_calls"], list):
            raise RecordError(f"{where}.tool_calls", "tool_calls must be a list")
        for j, call in enumerate(msg["tool_calls"]):
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise RecordError(
                    f"{where}.tool_calls[{j}]",
                    "a tool call needs function.name",
                    'e.g. {"type": "function", "function": {"name": "f", "arguments": {...}}}',
                )
            if isinstance(fn.get("arguments"), str):  # OpenAI sends arguments as a JSON string
                try:
                    fn["arguments"] = json.loads(fn["arguments"])
                except (json.JSONDecodeError, RecursionError, ValueError):
                    raise RecordError(
                        f"{where}.tool_calls[{j}].function.arguments", "arguments string is not valid JSON"
                    ) from None
        msg["content"] = content if isinstance(content, str) else ""
    elif not isinstance(content, str):
        raise RecordError(
            f"{where}.content",
            f"content must be a string, got {type(content).__name__}",
            "put the message text in `content`",
        )
    return msg


_TRANSCRIPT = re.compile(r"(?:^|\n\n)(Human|Assistant):[ \t]?")


def parse_transcript(text: str, field: str) -> list[dict[str, Any]]:
    """`\n\nHuman: ... \n\nAssistant: ...` (Anthropic HH-RLHF style) -> messages."""
    parts = _TRANSCRIPT.split(text)
    if len(parts) < 3 or parts[0].strip():
        raise RecordError(field, "not a Human:/Assistant: transcript", 'e.g. "\\n\\nHuman: hi\\n\\nAssistant: hello"')
    return [
        {"role": "user" if who == "Human" else "assistant", "content": said.strip()}
        for who, said in zip(parts[1::2], parts[2::2])
    ]


def side_turns(value: Any, field: str, start: int = 0) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    if isinstance(value, list) and value:
        return [parse_message(m, start + i) for i, m in enumerate(value)]
    raise RecordError(field, f"{field} must be a string or a non-empty list of messages")


def preference_messages(obj: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(prompt + chosen, rejected) of a preference pair. Without `prompt`, the pair's shared beginning is the
    prompt (TRL's implicit-prompt form, and transcripts)."""
    chosen, rejected, prompt = obj["chosen"], obj["rejected"], obj.get("prompt")
    if prompt is None:
        if isinstance(chosen, str) and isinstance(rejected, str):
            chosen, rejected = parse_transcript(chosen, "chosen"), parse_transcript(rejected, "rejected")
        else:
            chosen, rejected = side_turns(chosen, "chosen"), side_turns(rejected, "rejected")
        shared = 0
        while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
            shared += 1
        head, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
    elif isinstance(prompt, str):
        head = [{"role": "user", "content": prompt}]
        chosen, rejected = side_turns(chosen, "chosen", 1), side_turns(rejected, "rejected", 1)
    elif isinstance(prompt, list) and prompt:
        head = [parse_message(m, i) for i, m in enumerate(prompt)]
        chosen, rejected = side_turns(chosen, "chosen", len(head)), side_turns(rejected, "rejected", len(head))
    else:
        raise RecordError("prompt", "prompt must be a string or a non-empty list of messages")
    for name, turns in (("chosen", chosen), ("rejected", rejected)):
        if turns[-1]["role"] != "assistant":
            raise RecordError(name, f"the {name} side must end with an assistant reply")
    if chosen == rejected:
        raise RecordError(
            "rejected",
            "chosen and rejected are the same reply",
            "a preference pair must differ; drop it or fix the rejected side",
        )
    if not head:
        raise RecordError("prompt", "the pair has no prompt", "give `prompt`, or chosen/rejected with a shared start")
    return head + chosen, rejected
