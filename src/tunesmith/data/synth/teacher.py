"""The teacher calls of a run: `Runner` binds decoding, cache and batch size, `generate_each` confines a failure
to its case, `Meter` counts calls, cache hits, tokens and dollars."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from tunesmith.errors import TunesmithError
from tunesmith.generate.backends import Generation
from tunesmith.generate.cache import generate_cached
from tunesmith.generate.decoding import Decoding


@dataclass
class Meter:
    """What the teacher cost this run: calls made, cache hits, tokens and dollars."""

    calls: int = 0
    cache_hits: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_in_estimated: bool = False
    cost: list[float] = field(default_factory=list)
    cached_cost: list[float] = field(default_factory=list)

    def count(self, teacher, case, gen) -> None:
        if gen.cached:
            self.cache_hits += 1
            if gen.cost_usd is not None:
                self.cached_cost.append(gen.cost_usd)
            return
        self.calls += 1
        if gen.error is not None:
            return
        self.tokens_out += gen.new_tokens
        tokens, estimated = prompt_tokens(teacher, case)
        self.tokens_in += tokens
        self.tokens_in_estimated |= estimated
        if gen.cost_usd is not None:
            self.cost.append(gen.cost_usd)


def prompt_tokens(teacher, case) -> tuple[int, bool]:
    """(prompt tokens, estimated?): counted with a local teacher's tokenizer; for an endpoint, whose `Generation`
    does not carry the usage's prompt tokens, about four characters a token."""
    tok = getattr(teacher, "tok", None)
    if tok is not None:
        return len(tok(teacher.prompt_key(case), add_special_tokens=False)["input_ids"]), False
    return sum(len(str(m.get("content") or "")) for m in case.messages) // 4 + 4 * len(case.messages), True


def prompt_sha(teacher, case) -> str:
    return hashlib.sha256(teacher.prompt_key(case).encode("utf-8")).hexdigest()[:16]


def generate_each(teacher, cases: list, decoding: Decoding, cache, meter: Meter, label: str, batch_size: int) -> list:
    """`generate_cached`, with every failure confined to its case: a backend that raises for one case (a bug) does
    not end the run; the cases are then taken one at a time, the finished ones from the cache."""
    try:
        gens = generate_cached(teacher, cases, decoding, cache, batch_size=batch_size, label=label)
    except TunesmithError:
        raise
    except Exception:
        gens = []
        for case in cases:
            try:
                gens.append(generate_cached(teacher, [case], decoding, cache, batch_size=1, label=label)[0])
            except TunesmithError:
                raise
            except Exception as exc:
                gens.append(Generation("", 0, False, 0.0, error=f"teacher failed: {type(exc).__name__}: {exc}"[:300]))
    for case, gen in zip(cases, gens):
        meter.count(teacher, case, gen)
    return gens


class Runner:
    """The teacher calls of one run: decoding, cache, meter and batch size bound once."""

    def __init__(self, teacher, cache, meter: Meter, max_new_tokens: int, batch_size: int) -> None:
        self.teacher, self.cache, self.meter, self.batch_size = teacher, cache, meter, batch_size
        self.max_new_tokens = max_new_tokens
        # Greedy, so a prompt has one answer and a cached one is the answer (the same setting as `data distill`).
        self.decoding = Decoding(max_new_tokens)

    def __call__(self, cases: list, label: str) -> list:
        return generate_each(self.teacher, cases, self.decoding, self.cache, self.meter, label, self.batch_size)
