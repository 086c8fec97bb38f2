"""An LLM judge for blind pairwise preference over an OpenAI-compatible endpoint.

    judge = PairwiseJudge(EndpointConfig(base_url="http://127.0.0.1:8000/v1", model="judge"))
    result = judge.compare(prompts, outputs_a, outputs_b)   # {"wins", "losses", "ties", "win_rate", ...}

Blind: the judge sees "Response 1" and "Response 2", never model names. Both orders: every pair is judged as
(A, B) and as (B, A), so a judge that prefers whichever comes first produces ties, not a fake win. Ties are
allowed. A case wins only when both orders prefer the same model. Win rate counts a tie as half, with a bootstrap
interval over cases. A request that fails is an error for that case (recorded, not counted), never a traceback.
"""

from __future__ import annotations

import re
from typing import Any

from tunesmith.config import EndpointConfig
from tunesmith.eval.stats import preference
from tunesmith.eval.suite import EvalCase
from tunesmith.generate.backends import EndpointBackend

JUDGE_PROMPT = """You are judging two responses to the same request. Judge which one better does what the request \
asks: correct, complete, following every instruction and format requirement, and honest (declining or asking \
when it should). Ignore length and style unless the request asks for them.

[Request]
{prompt}

[Response 1]
{first}

[Response 2]
{second}

Explain briefly, then end with exactly one verdict: [[1]] if Response 1 is better, [[2]] if Response 2 is \
better, or [[tie]] if neither is better."""

_VERDICT = re.compile(r"\[\[\s*(1|2|tie)\s*\]\]", re.I)


def parse_verdict(text: str) -> str | None:
    """'1', '2' or 'tie' from the judge's reply (its last verdict marker), None when there is none."""
    found = _VERDICT.findall(text or "")
    return found[-1].lower() if found else None


class PairwiseJudge:
    def __init__(self, endpoint: EndpointConfig, max_tokens: int = 512) -> None:
        self.backend = EndpointBackend.of(endpoint)
        self.name = endpoint.model
        self.max_tokens = max_tokens

    def _ask(self, pairs: list[tuple[str, str, str]]) -> list[tuple[str | None, str | None]]:
        """(verdict, error) for each (prompt, first, second)."""
        cases = [
            EvalCase(
                id=str(i), messages=[{"role": "user", "content": JUDGE_PROMPT.format(prompt=p, first=a, second=b)}]
            )
            for i, (p, a, b) in enumerate(pairs)
        ]
        gens = self.backend.generate(cases, max_new_tokens=self.max_tokens, label="Judging")
        out = []
        for gen in gens:
            if gen.error:
                out.append((None, gen.error))
                continue
            verdict = parse_verdict(gen.output)
            out.append((verdict, None if verdict else "the judge gave no [[1]] / [[2]] / [[tie]] verdict"))
        return out

    def compare(
        self,
        prompts: list[str],
        outputs_a: list[str],
        outputs_b: list[str],
        confidence: float = 0.95,
        bootstrap_samples: int = 2000,
    ) -> dict[str, Any]:
        """Blind, both-orders preference of B over A for each prompt; B's win rate with an interval."""
        n = len(prompts)
        asked = self._ask(
            [(p, a, b) for p, a, b in zip(prompts, outputs_a, outputs_b)]
            + [(p, b, a) for p, a, b in zip(prompts, outputs_a, outputs_b)]
        )
        outcomes, errors = [], []
        for i in range(n):
            (first, err1), (second, err2) = asked[i], asked[n + i]
            if err1 or err2:
                errors.append({"case": i, "error": err1 or err2})
                outcomes.append("error")
                continue
            # Order 1 shows (A, B): "2" prefers B. Order 2 shows (B, A): "1" prefers B.
            b_pref = {"2": 1, "1": -1, "tie": 0}[first] + {"1": 1, "2": -1, "tie": 0}[second]
            outcomes.append("win" if b_pref == 2 else "loss" if b_pref == -2 else "tie")
        return {
            "judge": self.name,
            "cases": n,
            "errors": errors,
            **preference(outcomes, bootstrap_samples, confidence),
        }
