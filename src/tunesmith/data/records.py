"""The canonical record: a conversation in TRL's `messages` shape that remembers where it came from.

rec = Record(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
             source="data/a.jsonl", line=3)
rec.where  # "data/a.jsonl:3"
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant", "tool")


@dataclass
class Record:
    """One conversation. `messages` keep tool calls intact (`tool_calls`, `tool_call_id`); `tools` declares them."""

    messages: list[dict[str, Any]]
    source: str = ""
    line: int = 0
    tools: list[dict[str, Any]] | None = None
    tags: list[str] = field(default_factory=list)
    id: str | None = None
    format: str = ""  # the format it was read from (messages, sharegpt, alpaca, prompt_completion)
    unknown_keys: list[str] = field(default_factory=list)  # keys tunesmith does not use, by path
    rejected: list[dict[str, Any]] | None = None  # a preference pair: the dispreferred final turn(s) (DPO)
    provenance: dict[str, Any] = field(default_factory=dict)  # how a record was made (e.g. distilled by a teacher)

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.source else "<memory>"

    @property
    def prompt(self) -> list[dict[str, Any]]:
        """Everything before the final assistant turn: what a model is asked."""
        last = self.final_assistant_index()
        return self.messages[:last] if last is not None else list(self.messages)

    @property
    def reply(self) -> str | None:
        """Content of the final assistant turn (None when the conversation has none)."""
        last = self.final_assistant_index()
        return None if last is None else (self.messages[last].get("content") or "")

    def final_assistant_index(self) -> int | None:
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i].get("role") == "assistant":
                return i
        return None

    def content_hash(self) -> str:
        """Stable hash of the conversation (input and output together, and a preference pair's rejected reply),
        independent of provenance. A record without a rejected reply hashes as it always did."""
        content: dict[str, Any] = {"messages": self.messages, "tools": self.tools}
        if self.rejected is not None:
            content["rejected"] = self.rejected
        blob = json.dumps(content, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def to_json(self) -> dict[str, Any]:
        """The JSONL form tunesmith writes: TRL's shape plus provenance under `meta`."""
        out: dict[str, Any] = {"messages": self.messages}
        if self.tools:
            out["tools"] = self.tools
        if self.tags:
            out["tags"] = self.tags
        if self.id is not None:
            out["id"] = self.id
        if self.rejected is not None:
            out["rejected"] = self.rejected
        out["meta"] = {"source": self.source, "line": self.line, **self.provenance}
        return out
