"""Generation backends: every one turns prompts (anything with `messages` and `tools`: a `Prompt`, an eval case)
into `Generation`s, greedy by default. Each implements the `Backend` protocol.

- `TransformersBackend`: local, batched, left-padded, stopping at the end-of-turn token, with a LoRA adapter
  applied on top of the base without merging.
- `EndpointBackend`: any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, OpenAI, `tunesmith
  serve`), with the key taken from an environment variable, a concurrency limit and retries with backoff.
- `VLLMBackend`: vLLM in-process when it is installed (GPU); a clear error when it is not.
- `LlamaCppBackend`: a GGUF file run by llama.cpp (llama-cpp-python) when it is installed, as Ollama and
  llama-server run it: the tokenizer, chat template and stop token stored in the file.

    backend = TransformersBackend(resolve_model("builtin:smollm2-135m-instruct"), adapter="run/adapter")
    backend = EndpointBackend("http://127.0.0.1:8000/v1", model="my-model", api_key_env="OPENAI_API_KEY")
    outputs = backend.generate(cases, max_new_tokens=64)
    outputs = backend.generate(cases, max_new_tokens=64, constraint=task_constraint("json", schema, replies, []))

Every backend takes a `constraint` (`tunesmith.generate.decoding.Constraint`): transformers decodes through the
constraint's logits processor, an endpoint gets the matching OpenAI `response_format`, llama.cpp a GBNF grammar,
vLLM its structured-output parameters.

Each backend has a `fingerprint` (what produced the outputs: model content, adapter content, precision; or URL and
model name) and `prompt_key(case)` (exactly what it sends), which key the generation cache.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from tunesmith.chat import render_prompt
from tunesmith.errors import Problem, TunesmithError
from tunesmith.generate.decoding import Constraint, gbnf, logits_processor, to_response_format
from tunesmith.models import (
    ModelRef,
    bf16_inference_weights,
    cached_sha256,
    check_adapter_dir,
    dir_identity,
    load_model,
    load_tokenizer,
    resolve_precision,
)


class PromptLike(Protocol):
    """What a backend answers: a conversation so far and the tools the model may call (`Prompt`, `EvalCase`)."""

    messages: list[dict[str, Any]]
    tools: list[dict] | None


@dataclass
class Prompt:
    """A prompt of its own, for callers without eval cases (distillation, synthesis)."""

    id: str
    messages: list[dict[str, Any]]
    tools: list[dict] | None = None


@dataclass
class Generation:
    output: str
    new_tokens: int
    hit_limit: bool
    latency_s: float  # local: the batch's wall time divided by its size; endpoint: the request's time
    error: str | None = None  # generation failed for this case (endpoint down, bad request); others go on
    cost_usd: float | None = None  # endpoints with per-token prices
    cached: bool = False

    def to_cache(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "cached"}


class Backend(Protocol):
    """What every backend offers: the identity of what generates (`fingerprint`), exactly what it would send for a
    prompt (`prompt_key`), and greedy replies in prompt order (`generate`). Both key the generation cache."""

    fingerprint: str

    def prompt_key(self, case: PromptLike) -> str: ...

    def generate(
        self,
        cases: Sequence[PromptLike],
        max_new_tokens: int = 128,
        batch_size: int = 16,
        label: str = "Generating",
        no_repeat_ngram_size: int | None = None,
        on_result: Callable[[int, Generation], None] | None = None,
        constraint: Constraint | None = None,
    ) -> list[Generation]: ...


def _progress(label: str, total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    return progress, progress.add_task(label, total=total, rate="")


MERGE_CHECK_MAX_PARAMS = 2_000_000_000  # beyond this, an adapter stays unmerged (the check would copy its weights)


class TransformersBackend:
    """Local generation with transformers (+ peft for adapters).

    An adapter is merged into the weights in memory when that is measured to give the same replies: the first
    batch is generated both ways, and the merged model (as fast as the base; the unmerged LoRA path runs 7 small
    extra matmuls per layer at every step) is kept only when every reply is identical (`merge="auto"`; `True`
    merges, `False` never). `merged` says what was decided."""

    def __init__(
        self,
        model_ref: ModelRef,
        adapter: str | Path | None = None,
        precision: str = "auto",
        merge: bool | str = "auto",
    ) -> None:
        import torch

        self.tok = load_tokenizer(model_ref)
        self.tok.padding_side = "left"
        model = load_model(model_ref)
        if adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(check_adapter_dir(adapter)))
        self.model = model.eval()
        self.precision = resolve_precision(precision)
        if self.precision == "bf16":
            bf16_inference_weights(self.model)  # the same products autocast computes, without recasting weights
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(self.device)
        self.eot_id = self.tok.convert_tokens_to_ids(self.tok.eos_token)
        adapter_id = dir_identity(Path(adapter)) if adapter is not None else None
        self.fingerprint = json.dumps(
            {"model": model_ref.identity, "adapter": adapter_id, "precision": self.precision, "device": self.device}
        )
        self.merge, self.merged = (merge if adapter is not None else False), False
        if self.merge is True:
            self.model.merge_adapter()
            self.merged = True

    @classmethod
    def from_model(cls, model, tok, fingerprint: str, precision: str = "auto") -> TransformersBackend:
        """A backend over a model already in memory (e.g. the one being trained, for its validation replies).
        Left padding is set on a copy of the tokenizer, so the caller's stays as it was."""
        import copy

        self = cls.__new__(cls)
        self.tok = copy.copy(tok)
        self.tok.padding_side = "left"
        self.model, self.precision = model, resolve_precision(precision)
        self.device = next(model.parameters()).device.type
        self.eot_id = self.tok.convert_tokens_to_ids(self.tok.eos_token)
        self.fingerprint = fingerprint
        self.merge = self.merged = False  # a model being trained is never merged into
        return self

    def prompt_key(self, case: PromptLike) -> str:
        return render_prompt(self.tok, case.messages, case.tools)

    def generate(
        self,
        cases: list[PromptLike],
        max_new_tokens: int = 128,
        batch_size: int = 16,
        label: str = "Generating",
        no_repeat_ngram_size: int | None = None,
        on_result=None,
        constraint: Constraint | None = None,
    ) -> list[Generation]:
        """Greedy replies for every case, in case order; longest prompts first so batches pad little.
        `on_result(i, generation)` is called as each batch finishes. With `constraint`, every reply is held to it
        (and n-grams are blocked inside the grammar, see `tunesmith.generate.decoding.logits_processor`)."""

        prompts = [render_prompt(self.tok, c.messages, c.tools) for c in cases]
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        results: list[Generation | None] = [None] * len(prompts)
        progress, task = _progress(label, len(prompts))
        made, spent = 0, 0.0
        with progress:
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                enc = self.tok(
                    [prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False
                ).to(self.device)
                began = time.perf_counter()
                out = self._generate(enc, max_new_tokens, self._decoding(len(idx), no_repeat_ngram_size, constraint))
                if self.merge == "auto":  # the first batch decides whether the merged weights answer the same
                    out = self._try_merge(
                        enc,
                        max_new_tokens,
                        out,
                        lambda idx=idx: self._decoding(len(idx), no_repeat_ngram_size, constraint),
                    )
                wall = time.perf_counter() - began
                new = out[:, enc["input_ids"].shape[1] :]
                for row, i in enumerate(idx):
                    ids = new[row].tolist()
                    stopped = self.eot_id in ids
                    ids = ids[: ids.index(self.eot_id)] if stopped else [t for t in ids if t != self.tok.pad_token_id]
                    results[i] = Generation(
                        self.tok.decode(ids, skip_special_tokens=True), len(ids), not stopped, wall / len(idx)
                    )
                    made += len(ids)
                    if on_result is not None:
                        on_result(i, results[i])
                spent += wall
                progress.update(task, advance=len(idx), rate=f"{made / spent:.0f} tok/s" if spent else "")
        return results  # type: ignore[return-value]

    def _generate(self, enc, max_new_tokens: int, decoding: dict):
        import torch

        with (
            torch.inference_mode(),
            torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.precision == "bf16"),
        ):
            # use_cache explicitly: a model being trained has it switched off in its config by the Trainer, and
            # without the KV cache every step recomputes every position
            return self.model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                use_cache=True,
                eos_token_id=self.eot_id,
                pad_token_id=self.tok.pad_token_id,
                **decoding,
            )

    def _try_merge(self, enc, max_new_tokens: int, unmerged_out, decoding):
        """Merge the adapter and generate the same batch again: keep the merged weights when every token is the
        same, else restore the exact base weights and keep generating through the adapter. Returns the batch's
        output. Models over MERGE_CHECK_MAX_PARAMS are not tried (the check keeps a copy of the adapted weights)."""
        self.merge = False
        layers = [m for m in self.model.modules() if hasattr(m, "base_layer") and hasattr(m, "lora_A")]
        if not layers or sum(p.numel() for p in self.model.parameters()) > MERGE_CHECK_MAX_PARAMS:
            return unmerged_out
        saved = [m.base_layer.weight.detach().clone() for m in layers]
        self.model.merge_adapter()
        merged_out = self._generate(enc, max_new_tokens, decoding())
        self.merged = merged_out.shape == unmerged_out.shape and bool((merged_out == unmerged_out).all())
        if not self.merged:  # unmerging would round differently: put the very weights back
            self.model.unmerge_adapter()
            for m, weight in zip(layers, saved):
                m.base_layer.weight.data.copy_(weight)
        return unmerged_out

    def _decoding(self, rows: int, no_repeat_ngram_size: int | None, constraint: Constraint | None) -> dict:
        """`generate`'s n-gram blocking and, with a constraint, its logits processor (which then blocks n-grams
        itself, within the grammar)."""
        if constraint is None:
            return {"no_repeat_ngram_size": no_repeat_ngram_size or 0}
        return {
            "no_repeat_ngram_size": 0,
            "logits_processor": [logits_processor(self.tok, constraint, rows, no_repeat_ngram_size)],
        }


class EndpointBackend:
    """An OpenAI-compatible chat endpoint through the official `openai` client (its retries back off
    exponentially on 429, 5xx and connection errors). A case whose request still fails gets a `Generation` with
    `error` set; the other cases go on. Tool calls the endpoint returns natively become Hermes-style
    `<tool_call>{...}</tool_call>` text, the form tunesmith's tool-call scorer reads."""

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
                messages=_wire_messages(case.messages),
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
                error=f"endpoint answered HTTP {exc.status_code}: {_short(exc.message, self._key)}",
            )
        except (openai.APIError, ValueError) as exc:  # refused, timed out, a body that is not JSON (ValueError)
            return Generation(
                "",
                0,
                False,
                time.perf_counter() - began,
                error=f"endpoint failed: {type(exc).__name__}: {_short(str(exc), self._key)}",
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
        return Generation(text.strip(), out_tokens, choice.finish_reason == "length", latency, cost_usd=cost)

    def generate(
        self,
        cases: list[PromptLike],
        max_new_tokens: int = 128,
        batch_size: int = 16,
        label: str = "Generating",
        no_repeat_ngram_size: int | None = None,
        on_result=None,
        constraint: Constraint | None = None,
    ) -> list[Generation]:
        """Every case, `concurrency` requests at a time, in case order. (`no_repeat_ngram_size` is a local
        decoding option that OpenAI-compatible servers do not share; it is ignored here.) A `constraint` is sent
        as `response_format` (a label set has none: the endpoint decodes freely)."""
        from concurrent.futures import ThreadPoolExecutor, as_completed

        response_format = to_response_format(constraint)
        results: list[Generation | None] = [None] * len(cases)
        progress, task = _progress(label, len(cases))
        pool = ThreadPoolExecutor(self.concurrency)
        try:
            with progress:
                futures = {
                    pool.submit(self._one, case, max_new_tokens, response_format): i for i, case in enumerate(cases)
                }
                for fut in as_completed(futures):
                    i = futures[fut]
                    results[i] = fut.result()
                    if on_result is not None:
                        on_result(i, results[i])
                    progress.advance(task)
        finally:  # interrupted (Ctrl-C, an error in on_result): queued requests are never sent (nor paid for)
            pool.shutdown(wait=True, cancel_futures=True)
        return results  # type: ignore[return-value]


def _wire_messages(messages: list[dict]) -> list[dict]:
    """Messages as the OpenAI API wants them: tool-call arguments as JSON strings."""
    out = []
    for m in messages:
        if m.get("tool_calls"):
            m = {
                **m,
                "tool_calls": [
                    {
                        **c,
                        "type": c.get("type", "function"),
                        "id": c.get("id", f"call_{j}"),
                        "function": {**c["function"], "arguments": json.dumps(c["function"].get("arguments") or {})},
                    }
                    for j, c in enumerate(m["tool_calls"])
                ],
            }
        out.append(m)
    return out


def _short(text: str, secret: str | None = None, limit: int = 200) -> str:
    """One line of at most `limit` characters, with `secret` (an API key) masked wherever it appears."""
    text = " ".join(str(text).split())
    if secret:
        text = text.replace(secret, "[redacted]")
    return text if len(text) <= limit else text[:limit] + "…"


class VLLMBackend:
    """vLLM in-process (GPU). Greedy, the model's chat template, LoRA adapters through vLLM's LoRARequest."""

    def __init__(self, model_ref: ModelRef, adapter: str | Path | None = None) -> None:
        try:
            import vllm
        except ImportError:
            raise TunesmithError(
                "vLLM is not installed",
                [
                    Problem(
                        "backend vllm",
                        "the vllm package is not importable here",
                        "pip install vllm on a CUDA machine, or use the transformers backend",
                    )
                ],
            ) from None
        self.vllm = vllm
        self.llm = vllm.LLM(
            model=str(model_ref.path), enable_lora=adapter is not None, trust_remote_code=model_ref.trust_remote_code
        )
        self.tok = self.llm.get_tokenizer()
        self.lora = vllm.lora.request.LoRARequest("adapter", 1, str(adapter)) if adapter is not None else None
        adapter_id = dir_identity(Path(adapter)) if adapter is not None else None
        self.fingerprint = json.dumps({"model": model_ref.identity, "adapter": adapter_id, "backend": "vllm"})

    def prompt_key(self, case: PromptLike) -> str:
        return render_prompt(self.tok, case.messages, case.tools)

    def generate(
        self,
        cases: list[PromptLike],
        max_new_tokens: int = 128,
        batch_size: int = 16,
        label: str = "Generating",
        no_repeat_ngram_size: int | None = None,
        on_result=None,
        constraint: Constraint | None = None,
    ) -> list[Generation]:
        """Greedy replies in case order; a `constraint` becomes vLLM's structured-output parameters."""
        params = self.vllm.SamplingParams(temperature=0.0, max_tokens=max_new_tokens, **self._structured(constraint))
        began = time.perf_counter()
        outs = self.llm.generate([self.prompt_key(c) for c in cases], params, lora_request=self.lora)
        per_case = (time.perf_counter() - began) / max(1, len(cases))
        results = []
        for i, out in enumerate(outs):
            comp = out.outputs[0]
            gen = Generation(comp.text, len(comp.token_ids), comp.finish_reason == "length", per_case)
            results.append(gen)
            if on_result is not None:
                on_result(i, gen)
        return results

    def _structured(self, constraint: Constraint | None) -> dict:
        """`SamplingParams` keywords for a constraint: `structured_outputs` (vLLM >= 0.10) or `guided_decoding`
        (older releases), with a JSON Schema, any JSON, or a label choice."""
        if constraint is None:
            return {}
        spec = (
            {"json": constraint.schema}
            if constraint.kind == "json_schema"
            else {"json_object": True}
            if constraint.kind == "json_object"
            else {"choice": list(constraint.choices)}
        )
        params = getattr(self.vllm.sampling_params, "StructuredOutputsParams", None)
        if params is not None:
            return {"structured_outputs": params(**spec)}
        guided = getattr(self.vllm.sampling_params, "GuidedDecodingParams", None)
        if guided is not None:
            return {"guided_decoding": guided(**spec)}
        raise TunesmithError(
            "This vLLM has no structured outputs",
            [
                Problem(
                    "backend vllm",
                    f"vllm {getattr(self.vllm, '__version__', '?')} has neither StructuredOutputsParams "
                    "nor GuidedDecodingParams",
                    "upgrade vllm, or set eval.decoding: free",
                )
            ],
        )


class LlamaCppBackend:
    """A GGUF file run by llama.cpp through llama-cpp-python, the way llama.cpp-based runtimes (Ollama, llama-server,
    LM Studio) run it: llama.cpp's own tokenizer, the chat template and EOS stored in the file. Greedy, one case at
    a time. llama.cpp has no `no_repeat_ngram_size`; a project that sets it decodes differently here."""

    def __init__(self, gguf: str | Path, n_ctx: int = 4096, threads: int | None = None) -> None:
        try:
            import llama_cpp
        except ImportError:
            raise TunesmithError(
                "llama-cpp-python is not installed",
                [
                    Problem(
                        "backend llamacpp",
                        "the llama_cpp package is not importable here",
                        "pip install llama-cpp-python (it builds llama.cpp), or use the transformers backend",
                    )
                ],
            ) from None
        path = Path(gguf)
        self.llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, seed=0, verbose=False)
        import atexit

        atexit.register(self.llm.close)  # before interpreter teardown, where its own __del__ fails noisily
        self.fingerprint = json.dumps(
            {"gguf": cached_sha256(path), "backend": "llama.cpp", "version": llama_cpp.__version__}
        )

    def prompt_key(self, case: PromptLike) -> str:
        return json.dumps({"messages": case.messages, "tools": case.tools}, sort_keys=True, ensure_ascii=False)

    def generate(
        self,
        cases: list[PromptLike],
        max_new_tokens: int = 128,
        batch_size: int = 16,
        label: str = "Generating",
        no_repeat_ngram_size: int | None = None,
        on_result=None,
        constraint: Constraint | None = None,
    ) -> list[Generation]:
        """Greedy replies, one case at a time; a `constraint` becomes a llama.cpp grammar (`gbnf`)."""
        results: list[Generation] = []
        extra = {"grammar": self._grammar(constraint)} if constraint is not None else {}
        progress, task = _progress(label, len(cases))
        with progress:
            for i, case in enumerate(cases):
                began = time.perf_counter()
                try:
                    resp = self.llm.create_chat_completion(
                        messages=_wire_messages(case.messages),
                        tools=case.tools or None,
                        max_tokens=max_new_tokens,
                        temperature=0.0,
                        top_k=1,
                        **extra,
                    )
                    choice = resp["choices"][0]
                    gen = Generation(
                        choice["message"].get("content") or "",
                        resp["usage"]["completion_tokens"],
                        choice["finish_reason"] == "length",
                        time.perf_counter() - began,
                    )
                except Exception as exc:
                    gen = Generation(
                        "",
                        0,
                        False,
                        time.perf_counter() - began,
                        error=f"llama.cpp failed: {type(exc).__name__}: {_short(str(exc))}",
                    )
                results.append(gen)
                if on_result is not None:
                    on_result(i, gen)
                progress.advance(task)
        return results

    def _grammar(self, constraint: Constraint):
        """The constraint as a `LlamaGrammar` (parsed once per constraint)."""
        import llama_cpp

        cache = self.__dict__.setdefault("_grammars", {})
        if constraint.key() not in cache:
            cache[constraint.key()] = llama_cpp.LlamaGrammar.from_string(gbnf(constraint), verbose=False)
        return cache[constraint.key()]
