"""`LlamaCppBackend`: a GGUF file run by llama.cpp (llama-cpp-python) when it is installed, as Ollama and
llama-server run it: the tokenizer, chat template and stop token stored in the file; a constraint as a GBNF grammar."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tunesmith.errors import Problem, TunesmithError
from tunesmith.generate.backends.protocol import Backend, GenerateRequest, Generation, PromptLike
from tunesmith.generate.backends.wire import progress_bar, short_error, wire_messages
from tunesmith.generate.decoding import Constraint, gbnf
from tunesmith.models import (
    cached_sha256,
)


class LlamaCppBackend(Backend):
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

    def answer(self, cases: list[PromptLike], request: GenerateRequest) -> list[Generation]:
        """Greedy replies, one case at a time; a `constraint` becomes a llama.cpp grammar (`gbnf`)."""
        results: list[Generation] = []
        extra = {"grammar": self._grammar(request.constraint)} if request.constraint is not None else {}
        progress, task = progress_bar(request.label, len(cases))
        with progress:
            for i, case in enumerate(cases):
                began = time.perf_counter()
                try:
                    resp = self.llm.create_chat_completion(
                        messages=wire_messages(case.messages),
                        tools=case.tools or None,
                        max_tokens=request.max_new_tokens,
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
                        error=f"llama.cpp failed: {type(exc).__name__}: {short_error(str(exc))}",
                    )
                results.append(gen)
                request.done(i, gen)
                progress.advance(task)
        return results

    def _grammar(self, constraint: Constraint):
        """The constraint as a `LlamaGrammar` (parsed once per constraint)."""
        import llama_cpp

        cache = self.__dict__.setdefault("_grammars", {})
        if constraint.key() not in cache:
            cache[constraint.key()] = llama_cpp.LlamaGrammar.from_string(gbnf(constraint), verbose=False)
        return cache[constraint.key()]
