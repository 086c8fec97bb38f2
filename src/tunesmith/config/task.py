"""`model:` and `task:`: the base model, and what a reply is."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tunesmith.config.section import Section


class ModelConfig(Section):
    base: str = Field(
        "builtin:smollm2-135m-instruct",
        description="Base model: `builtin:smollm2-135m-instruct`, `shape:NAME` (a published shape, random "
        "weights), a local model directory, a `.gguf` file, or a hub id.",
    )
    trust_remote_code: bool = Field(
        False, description="Allow a model's own Python code to run while loading. Off unless you trust the model."
    )


class TaskConfig(Section):
    type: Literal["chat", "json", "classification", "math"] = Field(
        "chat",
        description="What a reply is: free `chat` text, a `json` object, a `classification` label, or a `math` "
        "worked solution ending in a numeric answer (GSM8K's `#### 72` line, else the last number): its held-out "
        "cases expect that number and are scored on it, and GRPO rewards it (`{type: numeric}`) by default.",
    )
    system_prompt: str | None = Field(
        None, description="System prompt added to every conversation that has none (training and eval alike)."
    )
    match_fields: list[str] = Field(
        default_factory=list,
        description="For `json` tasks: the fields that must equal the expected reply's for a case to count as "
        "correct (task accuracy). Empty means every field of the expected reply.",
    )
    json_schema: str | dict[str, Any] | None = Field(
        None,
        description="For `json` tasks: a JSON Schema (inline, or a file path relative to the project) "
        "that a reply must satisfy to count as format-valid.",
    )
    scorers: list[dict[str, Any]] | None = Field(
        None,
        description="Scorers of every held-out and validation case (a case is correct when all pass), instead of "
        "the task's own comparison (label, JSON fields, text or number): any scorer type, e.g. the grader of an "
        "OpenAI fine-tuning job, [{type: string_check, input: '{{sample.output_json.queue}}', reference: "
        "'{{item.queue}}', operation: eq}]. `{{item.FIELD}}` reads the record's reply (as JSON, when it is).",
    )
