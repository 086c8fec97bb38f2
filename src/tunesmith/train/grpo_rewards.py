"""Verifiable rewards for GRPO, built from the eval harness's scorers, so what training rewards is exactly what the
evaluation measures.

    funcs, weights = reward_functions(cfg, schema)   # TRL reward functions and their weights

Each reward is a scorer spec (`{type: numeric}`, `{type: json_schema}`, `{type: regex, pattern: ...}`,
`{type: instructions, instruction_id_list: [...], kwargs: [...]}`, `{type: custom, function: "mod:fn"}`, OpenAI's
graders `{type: text_similarity, ...}`, `{type: python, source: ...}`, ...) with an optional `weight`, scored
against the record's own reply (`expected`): a grader with a score (text_similarity, score_model, python, multi)
rewards that score, any other scorer 1.0 when it passes, else 0.0. A batch of replies is graded at once (one python
subprocess, the judge's requests together); score_model and label_model ask `eval.judge`. Several rewards combine
as TRL's weighted sum.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from tunesmith.config import Config
from tunesmith.errors import Problem, TunesmithError
from tunesmith.eval.openai_graders import GradingContext
from tunesmith.eval.scorers import grade_cases
from tunesmith.eval.suite import EvalCase
from tunesmith.train.reward_model import RewardModelScorer

log = logging.getLogger("tunesmith.train.rewards")


def default_rewards(cfg: Config, schema: dict | None) -> list[dict[str, Any]]:
    """What a task rewards when `train.grpo.rewards` is empty: valid JSON (against the schema) and the right fields
    for json tasks; the right label for classification; the right number for math. Free chat has no verifiable
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
                "train.grpo.rewards",
                "a chat task has no verifiable default reward",
                "e.g. grpo: {rewards: [{type: regex, pattern: '...'}, {type: custom, function: 'my_rewards:score'}]}",
            )
        ],
    )


def _completion_text(completion: Any) -> str:
    """TRL passes conversational completions as [{"role": "assistant", "content": ...}], plain ones as text."""
    if isinstance(completion, list):
        return "".join(m.get("content") or "" for m in completion if isinstance(m, dict))
    return str(completion)


def reward_function(
    spec: dict[str, Any], schema: dict | None, context: GradingContext | None = None
) -> Callable[..., list[float]]:
    """One TRL reward function (prompts, completions, expected=..., **columns) -> a score per completion (a
    grader's score, else 1.0 / 0.0 for pass / fail), or a trained reward model's scores for
    `{type: reward_model, path: DIR}`. OpenAI's model graders ask `context`'s judge."""
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
    context = context or GradingContext()
    name, warned = str(spec.get("name") or spec["type"]), []

    def reward(prompts, completions, expected=None, **_: Any) -> list[float]:
        cases = [
            EvalCase(
                id=str(i),
                messages=prompt if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}],
                # expected travels as JSON text: a dataset column cannot mix objects, strings and numbers
                expected=json.loads(expected[i]) if expected is not None else None,
                scorers=[scorer],
                instructions=instructions,
                instruction_kwargs=kwargs,
            )
            for i, prompt in enumerate(prompts)
        ]
        grades = grade_cases(scorer, cases, [_completion_text(c) for c in completions], schema, context)
        unscored = [g.detail for g in grades if g.passed is None]
        if unscored and not warned:  # rewarded 0.0: said once, so a template naming a missing field is not silent
            warned.append(True)
            log.warning(
                "reward %s: %d of %d replies unscored (0.0), e.g. %s", name, len(unscored), len(grades), unscored[0]
            )
        return [grade.reward for grade in grades]

    reward.__name__ = name  # TRL logs rewards/<name>/mean
    return reward


def reward_functions(cfg: Config, schema: dict | None) -> tuple[list[Callable[..., list[float]]], list[float]]:
    specs = cfg.train.grpo.rewards or default_rewards(cfg, schema)
    context = GradingContext.of(cfg)  # the judge score_model and label_model rewards ask
    return [reward_function(s, schema, context) for s in specs], [float(s.get("weight", 1.0)) for s in specs]
