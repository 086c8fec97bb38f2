"""What every backend shares: the `Backend` base, the prompts it answers (`PromptLike`, `Prompt`), the settings of
one call (`GenerateRequest`) and the `Generation` it returns. What several backends use besides is in `wire.py`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

from tunesmith.generate.decoding import Constraint


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
    where: str = ""  # the file and line it was read from, when it was


@dataclass
class Generation:
    output: str
    new_tokens: int
    hit_limit: bool
    latency_s: float  # local: the batch's wall time divided by its size; endpoint: the request's time
    error: str | None = None  # generation failed for this case (endpoint down, bad request); others go on
    cost_usd: float | None = None  # endpoints with per-token prices
    prompt_tokens: int | None = None  # endpoints: the prompt's tokens as the endpoint reported them (its usage)
    cached: bool = False

    def to_cache(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "cached"}


@dataclass(frozen=True)
class GenerateRequest:
    """How one `generate` call decodes: the token limit, batch size, progress label, n-gram blocking, a callback
    per finished case (`on_result(i, generation)`) and a `Constraint` the replies are held to."""

    max_new_tokens: int = 128
    batch_size: int = 16
    label: str = "Generating"
    no_repeat_ngram_size: int | None = None
    on_result: Callable[[int, Generation], None] | None = None
    constraint: Constraint | None = None

    def done(self, i: int, generation: Generation) -> None:
        """Tell the caller case `i` is answered (when it asked to be told)."""
        if self.on_result is not None:
            self.on_result(i, generation)

    def keywords(self) -> dict[str, Any]:
        """The request as `generate`'s keyword arguments (no `constraint` when there is none: a caller's own
        backend may not take one)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return out if self.constraint is not None else {k: v for k, v in out.items() if k != "constraint"}


class Backend(ABC):
    """What every backend offers: the identity of what generates (`fingerprint`), exactly what it would send for a
    prompt (`prompt_key`), and greedy replies in prompt order (`generate`). Both key the generation cache.
    A backend implements `answer(cases, request)`; `generate`'s keywords are declared here once. One that can tell
    when a free reply is also the constrained one says so in `settled`. One whose replies to prompts that ship
    with tunesmith may be shared by every project on the machine says so in `shares_shipped` (see
    `tunesmith.generate.cache`)."""

    fingerprint: str
    shares_shipped: bool = False

    @abstractmethod
    def prompt_key(self, case: PromptLike) -> str: ...

    @abstractmethod
    def answer(self, cases: list[PromptLike], request: GenerateRequest) -> list[Generation]: ...

    def settled(self, free: Generation, constraint: Constraint) -> bool:
        """Whether `free`, this backend's greedy reply to a prompt decoded without a constraint, is exactly what it
        would reply held to `constraint` (so that reply need not be generated). False unless a backend can tell."""
        return False

    def generate(
        self,
        cases: Sequence[PromptLike],
        max_new_tokens: int = 128,
        batch_size: int = 16,
        label: str = "Generating",
        no_repeat_ngram_size: int | None = None,
        on_result: Callable[[int, Generation], None] | None = None,
        constraint: Constraint | None = None,
    ) -> list[Generation]:
        """Replies for `cases`, in their order (see `GenerateRequest` for the settings)."""
        request = GenerateRequest(max_new_tokens, batch_size, label, no_repeat_ngram_size, on_result, constraint)
        return self.answer(list(cases), request)
