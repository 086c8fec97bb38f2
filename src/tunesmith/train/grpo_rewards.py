"""Verifiable rewards for GRPO, built from the eval harness's scorers, so what training rewards is exactly what the
evaluation measures.

    funcs, weights = reward_functions(cfg, schema)   # TRL reward functions and their weights

Each reward is a scorer spec (`{type: numeric}`, `{type: json_schema}`, `{type: regex, pattern: ...}`,
`{type: instructions, instruction_id_list: [...], kwargs: [...]}`, `{type: custom, function: "mod:fn"}`, ...) with
an optional `weight`; it scores a sampled reply 1.0 when the scorer passes against the record's own reply
(`expected`), else 0.0. Several rewards combine as TRL's weighted sum.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tunesmith.config import Config
from tunesmith.errors import Problem, TunesmithError
from tunesmith.eval.scorers import run_scorers
from tunesmith.eval.suite import EvalCase
from tunesmith.train.reward_model import RewardModelScorer


def default_rewards(cfg: Config, schema: dict | None) -> list[dict[str, Any]]:
    """What a task rewards when `train.rewards` is empty: valid JSON (against the schema) and the right fields for
    json tasks; the right label for classification; the right number for math. Free chat has no verifiable
    default."""
    if cfg.task.type == "json":
        fields = {"type": "json_fields", **({"fields": cfg.task.match_fields} if cfg.task.match_fields else {})}
        return [{"type": "json_schema" if schema else "json", "weight": 0.5}, {**fields, "weight": 1.0}]
    if cfg.task.type == "classification":
        return [{"type": "label"}]
    if cfg.task.type == "math":
        return [{"type": "numeric"}]
    raise TunesmithError(
        "GRPO needs rewards",
        [
            Problem(
                "train.rewards",
                "a chat task has no verifiable default reward",
                "e.g. rewards: [{type: regex, pattern: '...'}, {type: custom, function: 'my_rewards:score'}]",
            )
        ],
    )


def _completion_text(completion: Any) -> str:
    """TRL passes conversational completions as [{"role": "assistant", "content": ...}], plain ones as text."""
    if isinstance(completion, list):
        return "".join(m.get("content") or "" for m in completion if isinstance(m, dict))
    return str(completion)


def reward_function(spec: dict[str, Any], schema: dict | None) -> Callable[..., list[float]]:
    """One TRL reward function (prompts, completions, expected=..., **columns) -> scores in {0, 1}, or a trained
    reward model's scores for `{type: reward_model, path: DIR}`."""
    if spec["type"] == "reward_model":
        scorer_model = RewardModelScorer(spec["path"])

        def learned(prompts, completions, **_: Any) -> list[float]:
            msgs = [p if isinstance(p, list) else [{"role": "user", "content": str(p)}] for p in prompts]
            return scorer_model(msgs, [_completion_text(c) for c in completions])

        learned.__name__ = str(spec.get("name") or "reward_model")
        return learned
    scorer = {k: v for k, v in spec.items() if k not in ("weight", "instruction_id_list", "kwargs")}
    instructions = spec.get("instruction_id_list")
    kwargs = spec.get("kwargs") or ([{}] * len(instructions) if instructions else None)

    def reward(prompts, completions, expected=None, **_: Any) -> list[float]:
        out = []
        for i, (prompt, completion) in enumerate(zip(prompts, completions)):
            messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]
            # expected travels as JSON text: a dataset column cannot mix objects, strings and numbers
            want = json.loads(expected[i]) if expected is not None else None
            case = EvalCase(
                id=str(i),
                messages=messages,
                expected=want,
                scorers=[scorer],
                instructions=instructions,
                instruction_kwargs=kwargs,
            )
            passed = next(iter(run_scorers(case, _completion_text(completion), schema, {}).values()))
            out.append(1.0 if passed else 0.0)
        return out

    reward.__name__ = str(spec.get("name") or spec["type"])  # TRL logs rewards/<name>/mean
    return reward


def reward_functions(cfg: Config, schema: dict | None) -> tuple[list[Callable[..., list[float]]], list[float]]:
    specs = cfg.train.rewards or default_rewards(cfg, schema)
    return [reward_function(s, schema) for s in specs], [float(s.get("weight", 1.0)) for s in specs]
