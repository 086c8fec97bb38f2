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
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tunesmith.chat import render_prompt
from tunesmith.errors import Problem, TunesmithError
from tunesmith.models import ModelRef, check_adapter_dir, load_model, load_tokenizer, resolve_model, resolve_precision

if TYPE_CHECKING:
    from fastapi import FastAPI

    from tunesmith.generate.decoding import Constraint

log = logging.getLogger("tunesmith.serve")
DEFAULT_MAX_TOKENS = 256
_END = object()  # the generation thread's last word on its queue


# ---------------------------------------------------------------------------------------------------- the model


class ServeError(Exception):
    """A request the server answers with an OpenAI-style error body instead of a completion."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass
class Sampling:
    """How to decode one request. Greedy when `temperature` is 0; `seed` makes sampling repeatable."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    constraint: Constraint | None = None  # the reply must match it (`response_format`)


@dataclass
class Completion:
    """One finished reply. `completion_tokens` counts generated tokens up to, not including, the end-of-turn token
    (as `Generation.new_tokens` does in eval), so served and local token counts compare."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (end-of-turn token or a stop string) or "length" (max_tokens reached)


class ServedModel:
    """A model (and adapter) loaded once and served under one name.

    `model` is anything `resolve_model` takes (a directory, `builtin:NAME`, a `.gguf` file, a hub id) or a resolved
    `ModelRef`; `adapter` a PEFT adapter directory applied on top, unmerged. `name` is the id clients send as
    `model` (default: the directory or file name, or the reference itself for built-ins and hub ids);
    `max_context` defaults to the config's `max_position_embeddings`.
    """

    def __init__(
        self,
        model: str | ModelRef,
        adapter: str | Path | None = None,
        name: str | None = None,
        max_context: int | None = None,
        precision: str = "auto",
    ) -> None:
        import torch

        self.ref = model if isinstance(model, ModelRef) else resolve_model(str(model))
        self.name = name or _default_name(self.ref.ref)
        self.adapter = Path(adapter) if adapter is not None else None
        self.tok = load_tokenizer(self.ref)
        base = load_model(self.ref)
        self.max_context = max_context or _context_of(base.config, self.tok, self.ref.ref)
        if self.adapter is not None:
            from peft import PeftModel

            base = PeftModel.from_pretrained(base, str(check_adapter_dir(self.adapter)))
        self.model = base.eval()
        self.precision = resolve_precision(precision)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(self.device)
        self.eot_id = self.tok.convert_tokens_to_ids(self.tok.eos_token)
        self._lock = threading.Lock()  # one model, many clients: one generation at a time
        self._tok_lock = threading.Lock()  # fast tokenizers raise "Already borrowed" when shared across threads

    def encode(self, messages: list[dict], tools: list | None = None) -> list[int]:
        """The prompt's token ids, rendered with the model's chat template as eval renders it."""
        with self._tok_lock:
            text = render_prompt(self.tok, messages, tools)
            return self.tok(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: list[int]) -> str:
        """Token ids to text, special tokens left out."""
        with self._tok_lock:
            return self.tok.decode(ids, skip_special_tokens=True)

    def prepare(self, constraint: Constraint) -> None:
        """Compile `constraint` for this model's tokenizer now (cached), so a schema it cannot take fails the
        request before generation starts. Raises TunesmithError."""
        from tunesmith.generate.decoding import compiled_grammar

        with self._tok_lock:
            compiled_grammar(self.tok, constraint)

    def budget(self, prompt_tokens: int, max_tokens: int | None) -> int:
        """The completion budget for a prompt: `max_tokens`, or when it is absent the default clipped to the room
        left. Raises a `context_length_exceeded` ServeError when the prompt (plus `max_tokens`) does not fit."""
        wanted = max_tokens if max_tokens is not None else min(DEFAULT_MAX_TOKENS, self.max_context - prompt_tokens)
        if prompt_tokens < self.max_context and prompt_tokens + wanted <= self.max_context:
            return wanted
        if max_tokens is None:
            asked = f"your messages resulted in {prompt_tokens} tokens"
        else:
            asked = (
                f"you requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, "
                f"{max_tokens} in the completion)"
            )
        raise ServeError(
            400,
            f"This model's maximum context length is {self.max_context} tokens. However, {asked}. "
            "Please reduce the length of the messages or completion.",
            param="messages",
            code="context_length_exceeded",
        )

    def stream(self, prompt_ids: list[int], sampling: Sampling) -> CompletionStream:
        """A reply as it is generated: iterate for text pieces; `finish_reason` and the counts are set at the end."""
        return CompletionStream(self, prompt_ids, sampling)

    def complete(self, prompt_ids: list[int], sampling: Sampling) -> Completion:
        """The whole reply at once (the same decoding as `stream`, collected)."""
        stream = self.stream(prompt_ids, sampling)
        text = "".join(stream)
        return Completion(text, len(prompt_ids), stream.completion_tokens, stream.finish_reason or "stop")

    def _generate(self, prompt_ids: list[int], sampling: Sampling, streamer, cancel: threading.Event) -> None:
        """Run `model.generate` for one request under the lock, pushing token ids to `streamer`."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        class Cancelled(StoppingCriteria):  # a stop string was seen or the client left: stop at the next step
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

        if sampling.temperature > 0:
            decoding: dict[str, Any] = {
                "do_sample": True,
                "temperature": sampling.temperature,
                "top_p": sampling.top_p,
                "top_k": 0,
            }  # OpenAI has no top-k
        else:
            decoding = {"do_sample": False}
        if sampling.constraint is not None:  # n-grams blocked inside the grammar, not before it
            from tunesmith.generate.decoding import logits_processor

            no_repeat = getattr(self.model.generation_config, "no_repeat_ngram_size", None)
            with self._tok_lock:
                processor = logits_processor(self.tok, sampling.constraint, 1, no_repeat)
            decoding.update(no_repeat_ngram_size=0, logits_processor=[processor])
        ids = torch.tensor([prompt_ids], device=self.device)
        with self._lock:
            if cancel.is_set():
                return
            if sampling.seed is not None and sampling.temperature > 0:
                torch.manual_seed(sampling.seed)  # under the lock, so no other request draws from it meanwhile
            with (
                torch.inference_mode(),
                torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.precision == "bf16"),
            ):
                self.model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=sampling.max_tokens,
                    eos_token_id=self.eot_id,
                    pad_token_id=self.tok.pad_token_id,
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([Cancelled()]),
                    **decoding,
                )


class _TokenQueue:
    """A `generate` streamer that hands each new token id to a queue (the first `put` is the prompt: skipped)."""

    def __init__(self) -> None:
        self.queue: queue.Queue = queue.Queue()
        self.seen_prompt = False

    def put(self, value) -> None:
        if not self.seen_prompt:
            self.seen_prompt = True
            return
        for token in value.reshape(-1).tolist():
            self.queue.put(int(token))

    def end(self) -> None:
        pass  # the thread posts _END itself, also when generate raises


class CompletionStream:
    """Text pieces of one reply, decoded as the tokens arrive. Stop strings are cut off (never sent, even in part:
    the last `len(longest stop) - 1` characters are held back until they cannot begin one). `cancel()` stops the
    generation from any thread; leaving the iteration early cancels too."""

    def __init__(self, served: ServedModel, prompt_ids: list[int], sampling: Sampling) -> None:
        self.served, self.prompt_ids, self.sampling = served, prompt_ids, sampling
        self.stops = [s for s in sampling.stop if s]
        self.finish_reason: str | None = None
        self.completion_tokens = 0
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def _run(self, streamer: _TokenQueue) -> None:
        try:
            self.served._generate(self.prompt_ids, self.sampling, streamer, self._cancel)
        except BaseException as exc:
            streamer.queue.put(exc)
        finally:
            streamer.queue.put(_END)

    def __iter__(self) -> Iterator[str]:
        eot = self.served.eot_id
        streamer = _TokenQueue()
        threading.Thread(target=self._run, args=(streamer,), daemon=True, name="tunesmith-generate").start()
        hold = max((len(s) for s in self.stops), default=1) - 1
        ids: list[int] = []
        sent = 0  # characters of the decoded text already yielded
        try:
            while True:
                item = streamer.queue.get()
                if item is _END:
                    self.finish_reason = "length"
                    break
                if isinstance(item, BaseException):
                    raise item
                if item == eot:
                    self.finish_reason = "stop"
                    break
                ids.append(item)
                self.completion_tokens = len(ids)
                text = self.served.decode(ids)
                cut = min((i for i in (text.find(s, max(0, sent - hold)) for s in self.stops) if i >= 0), default=-1)
                if cut >= 0:
                    self.finish_reason = "stop"
                    if cut > sent:
                        yield text[sent:cut]
                    return
                safe = len(text) - hold
                if text.endswith("\ufffd"):  # half a multi-byte character: wait for the rest
                    safe = min(safe, len(text) - 1)
                if safe > sent:
                    yield text[sent:safe]
                    sent = safe
            text = self.served.decode(ids)
            if len(text) > sent:
                yield text[sent:]
        finally:
            self.cancel()


def _default_name(ref: str) -> str:
    path = Path(ref).expanduser()
    if ref.startswith("builtin:") or not (path.is_dir() or path.suffix == ".gguf"):
        return ref
    return path.resolve().stem if path.suffix == ".gguf" else path.resolve().name


def _context_of(config, tok, ref: str) -> int:
    for attr in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    if isinstance(tok.model_max_length, int) and 0 < tok.model_max_length < 10**7:
        return tok.model_max_length
    raise TunesmithError(
        "Unknown context length",
        [
            Problem(
                ref, "the model config names no maximum context length", "pass max_context (--max-context) explicitly"
            )
        ],
    )


# ---------------------------------------------------------------------------------------------- the HTTP surface


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
    response_format: dict[str, Any] | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int | None) -> int | None:
        if n is not None and n != 1:
            raise ValueError("only n=1 is supported (this server returns one choice)")
        return n

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
            raise _format_error(exc) from None


def _format_error(exc: TunesmithError) -> ServeError:
    """A TunesmithError about `response_format` as OpenAI's 400 for that parameter."""
    detail = "; ".join(f"{p.where}: {p.message}" if p.where else p.message for p in exc.problems)
    return ServeError(400, f"Invalid response_format: {detail or exc.title}", param="response_format")


def _validation_error(errors: list[dict]) -> ServeError:
    """One 400 naming every invalid field (the first as `param`), or saying the body is not JSON."""
    bad_json = [e for e in errors if e.get("type") == "json_invalid"]
    if bad_json:
        detail = (bad_json[0].get("ctx") or {}).get("error", "")
        return ServeError(400, f"The request body is not valid JSON{': ' + str(detail) if detail else ''}.")
    problems, params = [], []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p != "body"]
        param = ".".join(loc) or None
        params.append(param)
        msg = str(e.get("msg", "")).removeprefix("Value error, ")
        problems.append(f"{param}: {msg}" if param else msg)
    return ServeError(400, "Invalid request: " + "; ".join(problems), param=next((p for p in params if p), None))


def _require_web() -> None:
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise TunesmithError(
            "The server's packages are not installed",
            [Problem("tunesmith serve", f"missing: {', '.join(missing)}", "pip install fastapi uvicorn")],
        )


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
        return _error_response(_validation_error(list(exc.errors())))

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
    import anyio
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    app = FastAPI(title="tunesmith serve", description=f"OpenAI-compatible chat completions for {served.name}")
    _add_error_handlers(app)
    if api_key is not None:
        _add_key_check(app, api_key)

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
        if body.model != served.name:
            raise ServeError(
                404,
                f"The model `{body.model}` does not exist. This server serves `{served.name}`.",
                param="model",
                code="model_not_found",
            )
        messages = [m.as_record() for m in body.messages]
        try:
            prompt_ids = await anyio.to_thread.run_sync(served.encode, messages, body.tools)
        except Exception as exc:
            raise ServeError(
                400, f"The chat template cannot render these messages: {_short(exc)}", param="messages"
            ) from None
        constraint = body.constraint()
        if constraint is not None:
            try:
                await anyio.to_thread.run_sync(served.prepare, constraint)
            except TunesmithError as exc:
                raise _format_error(exc) from None
        max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
        sampling = body.sampling(served.budget(len(prompt_ids), max_tokens), constraint)
        reply_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if body.stream:
            usage = body.stream_options is not None and body.stream_options.include_usage
            events = _sse(served, served.stream(prompt_ids, sampling), reply_id, created, usage)
            return StreamingResponse(
                events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            )
        try:
            done = await anyio.to_thread.run_sync(served.complete, prompt_ids, sampling)
        except Exception as exc:
            log.exception("generation failed")
            raise ServeError(500, f"Generation failed: {_short(exc)}", "server_error") from None
        return {
            "id": reply_id,
            "object": "chat.completion",
            "created": created,
            "model": served.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": done.text},
                    "logprobs": None,
                    "finish_reason": done.finish_reason,
                }
            ],
            "usage": _usage(done.prompt_tokens, done.completion_tokens),
        }

    return app


async def _sse(served: ServedModel, stream: CompletionStream, reply_id: str, created: int, usage: bool):
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
                "usage": _usage(len(stream.prompt_ids), stream.completion_tokens),
            }
            yield f"data: {json.dumps(chunk)}\n\n"
    except Exception as exc:
        log.exception("generation failed mid-stream")
        err = ServeError(500, f"Generation failed: {_short(exc)}", "server_error")
        yield f"data: {json.dumps(err.body())}\n\n"
    finally:
        stream.cancel()  # the client may have gone: stop generating for nobody
    yield "data: [DONE]\n\n"


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[:limit] + "…"


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
