"""Format consistency of replies: JSON that parses and fits the task's schema, replies that drift in shape
(some JSON, some prose), length outliers, and worked solutions (`#### 72`) under a task type other than math.

    findings = reply_format_findings(record, validator)
    shapes = ShapeStats(); shapes.add(i, shape_of(record)) ...; shapes.findings(where_of_index, json_task, task_type)
"""

from __future__ import annotations

import json
import statistics
from array import array
from collections.abc import Callable
from functools import lru_cache

from tunesmith.data.answers import ends_with_marked_answer
from tunesmith.data.findings import Code, Finding, Severity
from tunesmith.data.records import Record

WORKED_SHARE = 0.8  # at least this share of replies ending in `#### <number>` makes a maths data set


@lru_cache(maxsize=64)  # one reply is parsed by several checks in a row
def json_object(text: str):
    try:
        obj = json.loads(text.strip())
    except (json.JSONDecodeError, AttributeError):
        return None
    return obj if isinstance(obj, dict) else None


def reply_format_findings(rec: Record, validator=None) -> list:
    """For json tasks: the final reply is one JSON object and fits the schema (a `tunesmith.schemas` validator) if
    given."""
    if rec.reply is None or not rec.reply.strip():
        return []  # reported by the schema checks
    obj = json_object(rec.reply)
    if obj is None:
        return [
            Finding(
                Code.REPLY_NOT_JSON,
                Severity.ERROR,
                rec.where,
                "messages[-1].content",
                "the reply is not one JSON object, but the task is json",
                "write the reply as a single JSON object (no code fence, no prose around it)",
            )
        ]
    error = validator.first_error(obj) if validator else None
    if error:
        path, message = error
        return [
            Finding(
                Code.REPLY_SCHEMA,
                Severity.ERROR,
                rec.where,
                f"messages[-1].content {path}",
                f"reply does not match the task's JSON Schema: {message}",
                "fix the reply, or the schema if the reply is right",
            )
        ]
    return []


def shape_of(rec: Record) -> tuple[bool, int, bool] | None:
    """(is a JSON object, length in characters, ends with a `#### <number>` answer) of the final reply; None without
    a non-empty reply."""
    reply = rec.reply
    if reply is None or not reply.strip():
        return None
    return json_object(reply) is not None, len(reply), ends_with_marked_answer(reply)


class ShapeStats:
    """Per-record reply shape (JSON object or prose) and length, kept as two compact arrays, and how many replies
    end with a marked numeric answer; judged at the end."""

    def __init__(self) -> None:
        self.rows = array("I")  # record index of each reply
        self.is_json = array("b")
        self.lengths = array("I")
        self.marked = 0

    def add(self, idx: int, shape: tuple[bool, int, bool] | None) -> None:
        """Remember record `idx`'s reply shape, as `shape_of` gives it."""
        if shape is not None:
            self.rows.append(idx)
            self.is_json.append(shape[0])
            self.lengths.append(shape[1])
            self.marked += shape[2]

    def findings(self, where: Callable[[int], str], json_task: bool = False, task_type: str | None = None) -> list:
        """Replies that drift in shape (a JSON minority among prose or the reverse), length outliers, and worked
        solutions with numeric answers under a task type that would score them as text."""
        out = self._worked_answers(task_type)
        n, n_json = len(self.rows), sum(self.is_json)
        share = n_json / n if n else 0.0
        if not json_task and 0 < n_json < n and (share >= 0.8 or share <= 0.2):
            minority_is_json = share <= 0.2
            shape, usual = ("JSON", "prose") if minority_is_json else ("prose", "JSON")
            for idx, is_json in zip(self.rows, self.is_json):
                if bool(is_json) == minority_is_json:
                    out.append(
                        Finding(
                            Code.STYLE_DRIFT,
                            Severity.WARNING,
                            where(idx),
                            "messages[-1].content",
                            f"a {shape} reply where {max(share, 1 - share):.0%} of replies are {usual}",
                            "make every reply the same shape, or set task.type to say which",
                        )
                    )
        if n >= 20:
            q1, _, q3 = statistics.quantiles(self.lengths, n=4)
            high, low = q3 + 3 * (q3 - q1), max(0.0, q1 - 3 * (q3 - q1))
            for idx, length in zip(self.rows, self.lengths):
                if length > high or length < low:
                    out.append(
                        Finding(
                            Code.LENGTH_OUTLIER,
                            Severity.INFO,
                            where(idx),
                            "messages[-1].content",
                            f"reply length {length} chars is far outside the usual {q1:.0f}-{q3:.0f}",
                            "check it is the behaviour you want; outliers pull style toward them",
                        )
                    )
        return out

    def _worked_answers(self, task_type: str | None) -> list:
        n = len(self.rows)
        if task_type in (None, "math") or not n or self.marked / n < WORKED_SHARE:
            return []
        return [
            Finding(
                Code.WORKED_ANSWERS,
                Severity.WARNING,
                "dataset",
                "",
                f"{self.marked} of {n} replies are worked solutions ending in a `#### <number>` answer, but "
                f"task.type is {task_type}",
                "set task.type: math: a held-out case then expects the final number (not the whole text), and "
                "GRPO rewards it",
            )
        ]
