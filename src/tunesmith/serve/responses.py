"""The response bodies: a `chat.completion`, the `chat.completion.chunk` events of a stream (Server-Sent Events)
and the token usage."""

from __future__ import annotations

import json
import logging
import uuid
from typing import TYPE_CHECKING

from tunesmith.serve.errors import ServeError, brief

if TYPE_CHECKING:
    from tunesmith.serve.model import Completion, ServedModel
    from tunesmith.serve.stream import CompletionStream

log = logging.getLogger("tunesmith.serve")


def completion_body(model: str, reply_id: str, created: int, done: Completion, tools: bool = False) -> dict:
    """A whole reply as a `chat.completion`; with tools offered, the calls it makes as `tool_calls`."""
    message, finish = reply_message(done.text, tools, done.finish_reason)
    return {
        "id": reply_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": usage_of(done.prompt_tokens, done.completion_tokens),
    }


def reply_message(text: str, tools: bool, finish: str) -> tuple[dict, str]:
    """The assistant message of a reply and its finish reason. Where tools were offered, the Hermes-style
    `<tool_call>{json}</tool_call>` blocks the model writes (the form tunesmith trains tool calls in) become
    OpenAI's `tool_calls`, each with an id and its arguments as a JSON string, the text around them the content
    (None when there is none), and a reply that stopped by itself finishes with `tool_calls`."""
    from tunesmith.eval.scorers import TOOL_CALL_BLOCK, parse_tool_calls

    calls = parse_tool_calls(text) if tools and TOOL_CALL_BLOCK.search(text) else None
    if not calls:
        return {"role": "assistant", "content": text}, finish
    rest = TOOL_CALL_BLOCK.sub("", text).strip()
    message = {
        "role": "assistant",
        "content": rest or None,
        "tool_calls": [
            {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)},
            }
            for c in calls
        ],
    }
    return message, "tool_calls" if finish == "stop" else finish


async def sse_events(
    served: ServedModel, stream: CompletionStream, reply_id: str, created: int, usage: bool, tools: bool = False
):
    """`chat.completion.chunk` events: the role, the content pieces, the finish reason (then usage if asked),
    then `[DONE]`. With tools offered the reply is held until it ends, then sent as its `tool_calls` (or its text):
    a call cannot be told from text while it is being written. A failure mid-stream becomes an error event (the
    status line is already sent)."""
    import anyio

    def event(delta: dict, finish: str | None = None) -> str:
        chunk = {
            "id": reply_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": served.name,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **({"usage": None} if usage else {}),  # OpenAI: every chunk has the key; the last one the counts
        }
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    pieces, held = iter(stream), []
    try:
        yield event({"role": "assistant", "content": ""})
        while (piece := await anyio.to_thread.run_sync(next, pieces, None)) is not None:
            if tools:
                held.append(piece)
            else:
                yield event({"content": piece})
        finish = stream.finish_reason or "stop"
        if tools:
            message, finish = reply_message("".join(held), tools, finish)
            if message["content"]:
                yield event({"content": message["content"]})
            if message.get("tool_calls"):
                yield event({"tool_calls": [{"index": i, **c} for i, c in enumerate(message["tool_calls"])]})
        yield event({}, finish)
        if usage:
            chunk = {
                "id": reply_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": served.name,
                "choices": [],
                "usage": usage_of(len(stream.prompt_ids), stream.completion_tokens),
            }
            yield f"data: {json.dumps(chunk)}\n\n"
    except Exception as exc:
        log.exception("generation failed mid-stream")
        err = ServeError(500, f"Generation failed: {brief(exc)}", "server_error")
        yield f"data: {json.dumps(err.body())}\n\n"
    finally:
        stream.cancel()  # the client may have gone: stop generating for nobody
    yield "data: [DONE]\n\n"


def usage_of(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
