"""The FastAPI app and its routes (`/health`, `/v1/models`, `/v1/chat/completions`), the API-key check, the error
handlers, and `serve` (uvicorn)."""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from typing import TYPE_CHECKING

from tunesmith.errors import TunesmithError, require_modules
from tunesmith.serve.errors import ServeError, brief, format_error, validation_error
from tunesmith.serve.model import ServedModel
from tunesmith.serve.request import ChatCompletionRequest
from tunesmith.serve.responses import completion_body, sse_events

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("tunesmith.serve")


def _require_web() -> None:
    require_modules(("fastapi", "uvicorn"), "The server's packages are not installed", "tunesmith serve")


def _error_response(err: ServeError):
    from fastapi.responses import JSONResponse

    return JSONResponse(err.body(), status_code=err.status)


def _add_error_handlers(app: FastAPI) -> None:
    """Every error in OpenAI's shape: ours, FastAPI's request validation (a 400, not its 422), unknown routes."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, exc: ServeError):
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return _error_response(validation_error(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        what = "Invalid URL" if exc.status_code == 404 else str(exc.detail)
        return _error_response(ServeError(exc.status_code, f"{what} ({request.method} {request.url.path})"))


def _add_key_check(app: FastAPI, api_key: str) -> None:
    """`/v1` routes want `Authorization: Bearer <api_key>` (`/health` stays open for probes). Checked before the
    body is read, so a caller without the key learns nothing about its request."""
    from fastapi import Request

    @app.middleware("http")
    async def _auth(request: Request, call_next):
        if request.url.path.startswith("/v1"):
            given = request.headers.get("authorization", "")
            token = given[7:].strip() if given[:7].lower() == "bearer " else ""
            if not hmac.compare_digest(token.encode(), api_key.encode()):
                why = "Incorrect API key provided." if token else "Missing API key: send Authorization: Bearer KEY."
                return _error_response(ServeError(401, why, code="invalid_api_key"))
        return await call_next(request)


def create_app(served: ServedModel, api_key: str | None = None) -> FastAPI:
    """The FastAPI app serving `served`; every `/v1` route wants `Authorization: Bearer <api_key>` when one is set."""
    _require_web()
    from fastapi import FastAPI

    app = FastAPI(title="tunesmith serve", description=f"OpenAI-compatible chat completions for {served.name}")
    _add_error_handlers(app)
    if api_key is not None:
        _add_key_check(app, api_key)
    _add_routes(app, served)
    return app


def _add_routes(app: FastAPI, served: ServedModel) -> None:
    """`/health`, `/v1/models` and `/v1/chat/completions`."""

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": served.name}

    @app.get("/v1/models")
    def models() -> dict:
        return {
            "object": "list",
            "data": [{"id": served.name, "object": "model", "created": 0, "owned_by": "tunesmith"}],
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest):
        return await chat_completion(served, body)


async def chat_completion(served: ServedModel, body: ChatCompletionRequest):
    """One chat completion: the prompt rendered and checked against the context, `response_format` compiled, then
    the reply whole (a `chat.completion`) or streamed (Server-Sent Events)."""
    import anyio
    from fastapi.responses import StreamingResponse

    _check_model(served, body)
    prompt_ids = await _prompt_ids(served, body)
    constraint = await _prepared_constraint(served, body)
    max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    sampling = body.sampling(served.budget(len(prompt_ids), max_tokens), constraint)
    reply_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    tools = bool(body.offered_tools())
    if body.stream:
        usage = body.stream_options is not None and body.stream_options.include_usage
        events = sse_events(served, served.stream(prompt_ids, sampling), reply_id, created, usage, tools)
        return StreamingResponse(
            events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
    try:
        done = await anyio.to_thread.run_sync(served.complete, prompt_ids, sampling)
    except Exception as exc:
        log.exception("generation failed")
        raise ServeError(500, f"Generation failed: {brief(exc)}", "server_error") from None
    return completion_body(served.name, reply_id, created, done, tools=tools)


def _check_model(served: ServedModel, body: ChatCompletionRequest) -> None:
    """A 404 `model_not_found` unless the request names the served model."""
    if body.model != served.name:
        raise ServeError(
            404,
            f"The model `{body.model}` does not exist. This server serves `{served.name}`.",
            param="model",
            code="model_not_found",
        )


async def _prompt_ids(served: ServedModel, body: ChatCompletionRequest) -> list[int]:
    """The request's messages (and tools) rendered and tokenized; a 400 when the chat template cannot render them."""
    import anyio

    messages = [m.as_record() for m in body.messages]
    try:
        return await anyio.to_thread.run_sync(served.encode, messages, body.offered_tools())
    except Exception as exc:
        raise ServeError(
            400, f"The chat template cannot render these messages: {brief(exc)}", param="messages"
        ) from None


async def _prepared_constraint(served: ServedModel, body: ChatCompletionRequest):
    """`response_format` as a constraint compiled for the model's tokenizer (None for text); a 400 naming
    `response_format` when it cannot be."""
    import anyio

    constraint = body.constraint()
    if constraint is not None:
        try:
            await anyio.to_thread.run_sync(served.prepare, constraint)
        except TunesmithError as exc:
            raise format_error(exc) from None
    return constraint


def serve(
    served: ServedModel, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None, log_level: str = "info"
) -> None:
    """Serve `served` with uvicorn until interrupted (loopback only unless `host` says otherwise)."""
    _require_web()
    import uvicorn
    from rich.console import Console

    extra = f" + adapter {served.adapter}" if served.adapter is not None else ""
    key = "API key required" if api_key else "no API key"
    Console(stderr=True).print(
        f"Serving [bold]{served.name}[/] ({served.ref.ref}{extra}, {served.precision}, "
        f"context {served.max_context}) at http://{host}:{port}/v1, {key}",
        soft_wrap=True,
    )
    uvicorn.run(create_app(served, api_key), host=host, port=port, log_level=log_level)
