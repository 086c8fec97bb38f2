"""What every OpenAI grader shares: the reply it grades (`Item`), what it says (`Grade`), and the seam through which a
grader reaches what lies outside it (`Host`: the other graders, for multi; the judge, for the model graders).

A grader is a function `(spec, items, host) -> list[Grade]`, one grade per item, in order: it sees every reply of a
scoring call at once, so the python grader runs one subprocess and the model graders send their requests together.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tunesmith.eval.openai_graders.templates import TemplateFieldError
from tunesmith.generate.backends import Backend


@dataclass(frozen=True)
class Item:
    """One reply to grade: the case (whose data `{{item.…}}` reads) and the model's output (`{{sample.…}}`)."""

    case: Any  # an EvalCase
    output: str


@dataclass(frozen=True)
class Grade:
    """A grader's verdict on one reply. `passed` is None when the reply could not be graded (a template naming a
    missing field, a judge that failed, a python grader that raised); `detail` says why, or what it scored."""

    passed: bool | None
    score: float | None = None  # the grader's number, where it has one (similarity, the judge's score, python's)
    detail: str = ""

    @property
    def reward(self) -> float:
        """What a GRPO reward is: the score where there is one, else 1.0 for a pass and 0.0 otherwise."""
        if self.score is not None:
            return self.score
        return 1.0 if self.passed else 0.0


class NoJudge(LookupError):
    """A model grader with no judge to ask (eval.judge is not set)."""


def unscored(detail: str) -> Grade:
    return Grade(None, None, detail)


def scored(score: float, threshold: float, note: str = "") -> Grade:
    """A number graded against its pass threshold; the detail shows both when it fails."""
    if not math.isfinite(score):
        return unscored(f"score {score} is not a finite number")
    passed = score >= threshold
    detail = f"score {score:.4g}" + ("" if passed else f" < pass_threshold {threshold:g}")
    return Grade(passed, score, f"{detail} ({note})" if note else detail)


class Host(Protocol):
    """What a grader may ask of the evaluation that runs it (`GradingContext`)."""

    def grade(self, spec: dict[str, Any], items: list[Item]) -> list[Grade]: ...

    def judge(self, kind: str) -> Backend:
        """The judge's backend; NoJudge (saying what to set) when there is none."""
        ...


BatchGrader = Callable[[dict[str, Any], list[Item], Host], list[Grade]]


def per_item(grade_one: Callable[[dict[str, Any], Item], Grade]) -> BatchGrader:
    """A grader from a function of one reply; a reply it cannot grade (a template naming a missing field, an
    error) is unscored with the reason, and the other replies are still graded."""

    def batch(spec: dict[str, Any], items: list[Item], host: Host) -> list[Grade]:
        return [_safely(grade_one, spec, item) for item in items]

    return batch


def _safely(grade_one: Callable[[dict[str, Any], Item], Grade], spec: dict[str, Any], item: Item) -> Grade:
    try:
        return grade_one(spec, item)
    except TemplateFieldError as exc:
        return unscored(str(exc))
    except Exception as exc:
        return unscored(f"grader error: {type(exc).__name__}: {exc}")
