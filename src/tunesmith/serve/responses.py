"""The response bodies: a `chat.completion`, the `chat.completion.chunk` events of a stream (Server-Sent Events)
and the token usage."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from tunesmith.serve.errors import ServeError, brief

if TYPE_CHECKING:
    from tunesmith.serve.model import Completion, ServedModel
    from tunesmith.serve.stream import CompletionStream

log = logging.getLogger("tunesmith.serve")


def completion_body(model: str, reply_id: str, created: int, done: Completion) -> dict:
    """A whole reply as a `chat.completion`."""
    return {
        "id": reply_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": done.text},
                "logprobs": None,
                "finish_reason": done.finish_reason,
            }
        ],
        "usage": usage_of(done.prompt_tokens, done.completion_tokens),
    }


async def sse_events(served: ServedModel, stream: CompletionStream, reply_id: str, created: int, usage: bool):
    """`chat.completion.chunk` events: the role, the content pieces, the finish reason (then usage if asked),
    then `[DONE]`. A failure mid-stream becomes an error event (the status line is already sent)."""
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

    pieces = iter(stream)
    try:
        yield event({"role": "assistant", "content": ""})
        while (piece := await anyio.to_thread.run_sync(next, pieces, None)) is not None:
            yield event({"content": piece})
        yield event({}, stream.finish_reason or "stop")
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
