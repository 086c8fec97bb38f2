"""An OpenAI-compatible chat-completions server for a local model, optionally with a LoRA adapter on top.

    served = ServedModel("builtin:smollm2-135m-instruct", adapter="runs/…/adapter", name="my-model")
    serve(served, port=8000, api_key="secret")      # then: OpenAI(base_url="http://127.0.0.1:8000/v1", ...)

Endpoints: `GET /health`, `GET /v1/models`, `POST /v1/chat/completions` (JSON, or Server-Sent Events with
`"stream": true`). The prompt is rendered exactly as tunesmith's eval renders it (`render_prompt`: the model's own
chat template, tool calls as Hermes text where the template ignores tools), decoding is greedy unless a temperature
is given, and generation stops at the end-of-turn token, at a `stop` string or at `max_tokens`. OpenAI's
`response_format` is honoured: `{"type": "json_object"}` and `{"type": "json_schema", "json_schema": {"schema": ...}}`
hold the reply to any JSON object or to the schema (through `tunesmith.generate.decoding`, as eval's constrained
decoding does; streamed too), and the reply ends when the JSON value closes. So a served model
answers what `tunesmith eval` measured, and `tunesmith eval --endpoint` against this server measures the same thing.

Errors have OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`) and status codes, so clients raise
their usual exceptions; the server keeps serving after each. One model serves many clients: generations run one
at a time under a lock, each in its own thread, and a stream whose client goes away stops generating.

Where it lives: `model.py` the served model and its decoding, `stream.py` a reply as it is generated,
`request.py` the request (and `response_format`), `responses.py` the response bodies and stream events,
`errors.py` OpenAI-shaped errors, `app.py` the FastAPI app, its routes and `serve`.
"""

from __future__ import annotations

from tunesmith.serve.app import chat_completion, create_app, serve
from tunesmith.serve.errors import ServeError
from tunesmith.serve.model import DEFAULT_MAX_TOKENS, Completion, Sampling, ServedModel
from tunesmith.serve.request import ChatCompletionRequest, Message, StreamOptions
from tunesmith.serve.stream import CompletionStream

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "ChatCompletionRequest",
    "Completion",
    "CompletionStream",
    "Message",
    "Sampling",
    "ServeError",
    "ServedModel",
    "StreamOptions",
    "chat_completion",
    "create_app",
    "serve",
]
