"""`GradingContext`: what OpenAI's graders need beyond a spec and a reply, passed down by whoever scores (the
evaluation, `tunesmith eval score`, a GRPO reward): the judge endpoint (`eval.judge`) for score_model and
label_model, and grades computed ahead, a suite at a time (`prepare`).

    context = GradingContext.of(cfg)                     # the project's judge, if any
    context.prepare([(case, output), ...])               # one batch per grader spec: one python subprocess, ...
    context.grade(spec, [Item(case, output)])            # then each case reads its grade
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tunesmith.config import Config, EndpointConfig
from tunesmith.errors import TunesmithError
from tunesmith.eval.openai_graders.base import BatchGrader, Grade, Item, NoJudge, unscored
from tunesmith.eval.openai_graders.model import label_model, score_model
from tunesmith.eval.openai_graders.multi import multi
from tunesmith.eval.openai_graders.python import python_grader
from tunesmith.eval.openai_graders.templates import item_of
from tunesmith.eval.openai_graders.text import string_check, text_similarity
from tunesmith.generate.backends import Backend, EndpointBackend

GRADERS: dict[str, BatchGrader] = {
    "string_check": string_check,
    "text_similarity": text_similarity,
    "score_model": score_model,
    "label_model": label_model,
    "python": python_grader,
    "multi": multi,
}
BATCHED = ("score_model", "label_model", "python", "multi")  # worth grading a suite at once (`prepare`)


@dataclass
class GradingContext:
    """The judge the model graders ask (None: they say it is missing) and the grades prepared ahead."""

    judge_endpoint: EndpointConfig | None = None
    _backend: Backend | None = field(default=None, init=False, repr=False)
    _ready: dict[str, Grade] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def of(cls, cfg: Config) -> GradingContext:
        return cls(cfg.eval.judge)

    def grade(self, spec: dict[str, Any], items: list[Item]) -> list[Grade]:
        """Every item's grade by `spec`, in order: those prepared are read, the rest graded now in one batch."""
        if not self._ready:
            return self._run(spec, items)
        keys = [_key(spec, item) for item in items]
        todo = [i for i, k in enumerate(keys) if k not in self._ready]
        fresh = dict(zip(todo, self._run(spec, [items[i] for i in todo]))) if todo else {}
        return [fresh[i] if i in fresh else self._ready[k] for i, k in enumerate(keys)]

    def prepare(self, pairs: Iterable[tuple[Any, str]]) -> None:
        """Grade ahead the (case, output) pairs of a suite: each batched grader spec (python, the model graders,
        multi) the cases name, over all the cases that name it at once."""
        groups: dict[str, tuple[dict[str, Any], list[Item]]] = {}
        for case, output in pairs:
            for spec in case.scorers or []:
                if spec.get("type") in BATCHED:
                    groups.setdefault(_spec_key(spec), (spec, []))[1].append(Item(case, output))
        for spec, items in groups.values():
            for item, grade in zip(items, self._run(spec, items)):
                self._ready[_key(spec, item)] = grade

    def judge(self, kind: str) -> Backend:
        """The judge's backend (built once); NoJudge when the project has none."""
        if self.judge_endpoint is None:
            raise NoJudge(
                f"{kind} asks a judge model and none is configured: set eval.judge (an OpenAI-compatible "
                "endpoint: base_url, model) in tunesmith.yaml"
            )
        if self._backend is None:
            self._backend = EndpointBackend.of(self.judge_endpoint)
        return self._backend

    def _run(self, spec: dict[str, Any], items: list[Item]) -> list[Grade]:
        """One grader over the items; a grader that fails as a whole leaves them unscored with the reason (a
        missing API key is the user's to fix: a TunesmithError)."""
        grader = GRADERS.get(spec.get("type", ""))
        if grader is None:
            return [unscored(f"{spec.get('type')!r} is not an OpenAI grader ({', '.join(GRADERS)})")] * len(items)
        try:
            return grader(spec, items, self)
        except TunesmithError:
            raise
        except Exception as exc:
            return [unscored(f"grader error: {type(exc).__name__}: {exc}")] * len(items)


def _spec_key(spec: dict[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, ensure_ascii=False, default=str)


def _key(spec: dict[str, Any], item: Item) -> str:
    return json.dumps([spec, item_of(item.case), item.output], sort_keys=True, ensure_ascii=False, default=str)


__all__ = ["GRADERS", "GradingContext", "NoJudge"]
