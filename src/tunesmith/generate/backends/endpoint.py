"""`EndpointBackend`: any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, OpenAI, `tunesmith
serve`), with the key taken from an environment variable, a concurrency limit and retries with backoff."""

from __future__ import annotations

import contextlib
import json
import os
import time

from tunesmith.errors import Problem, TunesmithError
from tunesmith.generate.backends.protocol import Backend, GenerateRequest, Generation, PromptLike
from tunesmith.generate.backends.wire import progress_bar, short_error, wire_messages
from tunesmith.generate.decoding import to_response_format


class EndpointBackend(Backend):
    """An OpenAI-compatible chat endpoint through the official `openai` client (its retries back off
    exponentially on 429, 5xx and connection errors). A case whose request still fails gets a `Generation` with
    `error` set; the other cases go on. Tool calls the endpoint returns natively become Hermes-style
    `<tool_call>{...}</tool_call>` text, the form tunesmith's tool-call scorer reads."""

    @classmethod
    def of(cls, endpoint) -> EndpointBackend:
        """The backend of an endpoint's settings (`tunesmith.config.EndpointConfig` or a baseline entry)."""
        return cls(
            endpoint.base_url,
            endpoint.model,
            endpoint.api_key_env,
            endpoint.concurrency,
            endpoint.max_retries,
            input_usd_per_mtok=endpoint.input_usd_per_mtok,
            output_usd_per_mtok=endpoint.output_usd_per_mtok,
        )

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        concurrency: int = 4,
        max_retries: int = 3,
        timeout_s: float = 120.0,
        input_usd_per_mtok: float | None = None,
        output_usd_per_mtok: float | None = None,
    ) -> None:
        from openai import OpenAI

        key = os.environ.get(api_key_env) if api_key_env else None
        if api_key_env and not key:
            raise TunesmithError(
                "Missing API key",
                [
                    Problem(
                        f"${api_key_env}",
                        "the environment variable is not set",
                        f"export {api_key_env}=... before running",
                    )
                ],
            )
        # Local servers (vLLM, llama.cpp, Ollama) take any key; the client insists on one.
        self.client = OpenAI(base_url=base_url, api_key=key or "none", max_retries=max_retries, timeout=timeout_s)
        self._key = key  # only to redact it: an endpoint may echo the key back in an error body
        self.model, self.concurrency = model, max(1, concurrency)
        self.prices = (input_usd_per_mtok, output_usd_per_mtok)
        self.fingerprint = json.dumps({"endpoint": base_url.rstrip("/"), "model": model})

    def prompt_key(self, case: PromptLike) -> str:
        return json.dumps({"messages": case.messages, "tools": case.tools}, sort_keys=True, ensure_ascii=False)

    def _one(self, case: PromptLike, max_new_tokens: int, response_format: dict | None = None) -> Generation:
        import openai

        began = time.perf_counter()
        try:
            extra: dict = {"tools": case.tools} if case.tools else {}
            if response_format is not None:
                extra["response_format"] = response_format
            resp = self.client.chat.completions.create(
                model=self.model,
                messages=wire_messages(case.messages),
                max_tokens=max_new_tokens,
                temperature=0.0,
                **extra,
            )
        except openai.APIStatusError as exc:
            return Generation(
                "",
                0,
                False,
                time.perf_counter() - began,
                error=f"endpoint answered HTTP {exc.status_code}: {short_error(exc.message, self._key)}",
            )
        except (openai.APIError, ValueError) as exc:  # refused, timed out, a body that is not JSON (ValueError)
            return Generation(
                "",
                0,
                False,
                time.perf_counter() - began,
                error=f"endpoint failed: {type(exc).__name__}: {short_error(str(exc), self._key)}",
            )
        latency = time.perf_counter() - began
        if not resp.choices:
            return Generation("", 0, False, latency, error="endpoint returned no choices")
        choice = resp.choices[0]
        text = choice.message.content or ""
        for call in choice.message.tool_calls or []:
            args = call.function.arguments
            with contextlib.suppress(json.JSONDecodeError):
                args = json.loads(args) if isinstance(args, str) else args
            text += "\n<tool_call>\n" + json.dumps({"name": call.function.name, "arguments": args}) + "\n</tool_call>"
        usage = resp.usage
        out_tokens = usage.completion_tokens if usage else len(text.split())
        cost = None
        if usage and self.prices[0] is not None and self.prices[1] is not None:
            cost = (usage.prompt_tokens * self.prices[0] + usage.completion_tokens * self.prices[1]) / 1e6
        return Generation(
            text.strip(),
            out_tokens,
            choice.finish_reason == "length",
            latency,
            cost_usd=cost,
            prompt_tokens=usage.prompt_tokens if usage else None,
        )

    def answer(self, cases: list[PromptLike], request: GenerateRequest) -> list[Generation]:
        """Every case, `concurrency` requests at a time, in case order. (`no_repeat_ngram_size` is a local
        decoding option that OpenAI-compatible servers do not share; it is ignored here.) A `constraint` is sent
        as `response_format` (a label set has none: the endpoint decodes freely)."""
        from concurrent.futures import ThreadPoolExecutor, as_completed

        response_format = to_response_format(request.constraint)
        results: list[Generation | None] = [None] * len(cases)
        progress, task = progress_bar(request.label, len(cases))
        pool = ThreadPoolExecutor(self.concurrency)
        try:
            with progress:
                futures = {
                    pool.submit(self._one, case, request.max_new_tokens, response_format): i
                    for i, case in enumerate(cases)
                }
                for fut in as_completed(futures):
                    i = futures[fut]
                    results[i] = fut.result()
                    request.done(i, results[i])
                    progress.advance(task)
        finally:  # interrupted (Ctrl-C, an error in on_result): queued requests are never sent (nor paid for)
            pool.shutdown(wait=True, cancel_futures=True)
        return results  # type: ignore[return-value]
