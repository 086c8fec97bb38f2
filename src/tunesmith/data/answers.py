"""Numeric answers of worked solutions: GSM8K's final `#### 72` line, else the last number in the text.

    numeric_answer("48/2 = <<48/2=24>>24 clips in May.\\n#### 72")   # 72.0
    numeric_answer("First 5 then 7, so 12 in all.")                    # 12.0 (no marker: the last number)
    marked_answer("First 5 then 7, so 12 in all.")                     # None: no `####` answer
    ends_with_marked_answer("... so 18 in all.\\n#### 18")             # True: the reply marks its answer
    expected_number("#### 1,200"), expected_number("72"), expected_number(72)   # 1200.0, 72.0, 72.0

Replies and expectations are read the same way, so a `math` task's held-out case expects the number its worked
solution ends with, and the `numeric` scorer (and GRPO reward) compares the two numbers.
"""

from __future__ import annotations

import re
from typing import Any

_FINAL = re.compile(r"####\s*(-?[\d,]*\.?\d+)")
_MARKED_END = re.compile(r"####\s*-?[\d,]*\.?\d+\s*$")
# A minus sign only where it is not a hyphen or an operator between numbers ("3-4", "2023-01-05", "5-3" are not
# -4, -5, -3); an exponent belongs to its number ("1e3" is 1000, not 3).
_NUMBER = re.compile(r"(?:(?<![\w)\]])-)?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")


def marked_answer(text: str) -> float | None:
    """The number after GSM8K's `####` marker (the first one), None when the text marks no answer."""
    marked = _FINAL.search(text)
    return _number(marked.group(1)) if marked else None


def numeric_answer(text: str) -> float | None:
    """The answer of a worked solution: after GSM8K's `####` marker when there is one, else the last number
    (thousands separators allowed); None without a number."""
    if _FINAL.search(text):
        return marked_answer(text)
    found = _NUMBER.findall(text)
    return _number(found[-1]) if found else None


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def ends_with_marked_answer(text: str) -> bool:
    """Whether the text ends with a `#### <number>` line, GSM8K's way of marking the final answer."""
    return _MARKED_END.search(text) is not None


def expected_number(value: Any) -> float | None:
    """An expectation as a number: a number as it is, a numeric string ("1,200", "1e3"), or the answer a worked
    solution ends with (`numeric_answer`); None for a bool, None, or text without a number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return numeric_answer(text)
