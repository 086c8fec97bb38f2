"""The served model: a model (and adapter) loaded once, how one request is decoded (`Sampling`), its context budget,
and generation under a lock, one request at a time."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunesmith.chat import render_prompt
from tunesmith.errors import Problem, TunesmithError
from tunesmith.models import ModelRef, check_adapter_dir, load_model, load_tokenizer, resolve_model, resolve_precision
from tunesmith.serve.errors import ServeError
from tunesmith.serve.stream import CompletionStream

if TYPE_CHECKING:
    from tunesmith.generate.decoding import Constraint


DEFAULT_MAX_TOKENS = 256


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
