"""The chat-completions request as OpenAI sends it: messages (text, tool calls), the sampling it asks for, and
`response_format` as a decoding constraint (structured output)."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tunesmith.errors import TunesmithError
from tunesmith.serve.errors import format_error
from tunesmith.serve.model import Sampling

if TYPE_CHECKING:
    from tunesmith.generate.decoding import Constraint


class Message(BaseModel):
    """One chat message as OpenAI sends it; tool-call arguments may be JSON strings (decoded for the template)."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Any = None  # a string, or a list of text parts: checked below for one clear message
    tool_calls: list[dict[str, Any]] | None = None

    @field_validator("content")
    @classmethod
    def _text(cls, content: Any) -> str | None:
        if content is None or isinstance(content, str):
            return content
        if isinstance(content, list) and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content
        ):
            return "".join(p["text"] for p in content)
        raise ValueError(
            'must be a string or a list of {"type": "text", "text": ...} parts (this server reads text only)'
        )

    def as_record(self) -> dict:
        """The message as tunesmith records hold it: text content, tool-call arguments as objects."""
        out = self.model_dump(exclude_none=True)
        out.setdefault("content", "")
        if self.role == "developer":  # OpenAI's newer name for the system prompt; templates know "system"
            out["role"] = "system"
        for call in out.get("tool_calls") or []:
            fn = call.get("function") or {}
            if isinstance(fn.get("arguments"), str):
                with contextlib.suppress(json.JSONDecodeError):
                    fn["arguments"] = json.loads(fn["arguments"])
        return out


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The fields of OpenAI's chat-completions request this server honours; others (penalties, logprobs...) are
    accepted and ignored, as most local servers do."""

    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)  # the newer name of max_tokens
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int | None) -> int | None:
        if n is not None and n != 1:
            raise ValueError("only n=1 is supported (this server returns one choice)")
        return n

    @field_validator("tool_choice")
    @classmethod
    def _choice_it_can_honour(cls, choice: str | dict | None) -> str | dict | None:
        if choice not in (None, "auto", "none"):
            raise ValueError(
                f"tool_choice {choice!r} is not supported: this server cannot force a tool call; send 'auto' "
                "(the model decides) or 'none' (the tools are not offered)"
            )
        return choice

    def offered_tools(self) -> list[dict[str, Any]] | None:
        """The tools the model is offered: none with `tool_choice: none`."""
        return None if self.tool_choice == "none" else self.tools

    def sampling(self, max_tokens: int, constraint: Constraint | None = None) -> Sampling:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return Sampling(
            max_tokens=max_tokens,
            temperature=self.temperature or 0.0,
            top_p=self.top_p if self.top_p is not None else 1.0,
            seed=self.seed,
            stop=stops,
            constraint=constraint,
        )

    def constraint(self) -> Constraint | None:
        """`response_format` as a decoding constraint (None for text); a 400 naming `response_format` when it is
        not one this server takes."""
        from tunesmith.generate.decoding import constraint_from_response_format

        try:
            return constraint_from_response_format(self.response_format)
        except TunesmithError as exc:
            raise format_error(exc) from None
