"""A multi grader's `calculate_output`: a formula over its graders' scores, read with Python's `ast` and computed by
walking the tree, never by eval(). Numbers, grader names, + - * / ^ (power, as OpenAI writes it; ** too), a sign,
parentheses, and the functions min, max, abs, floor, ceil, exp, sqrt, log; nothing else parses.

    formula_names("0.5 * fuzzy + 0.5 * exact")                 # {"fuzzy", "exact"}: checked against the graders
    evaluate("min(fuzzy, exact) ^ 2", {"fuzzy": 0.5, "exact": 1.0})   # 0.25
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "floor": math.floor,
    "ceil": math.ceil,
    "exp": math.exp,
    "sqrt": math.sqrt,
    "log": math.log,
}
_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
MAX_LENGTH = 2000


class FormulaError(ValueError):
    """A formula that does not parse, uses what is not allowed, or cannot be computed (log(0), 1/0, overflow)."""


def _parse(text: str) -> ast.expr:
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"longer than {MAX_LENGTH} characters")
    try:
        # OpenAI's `^` is a power, with a power's precedence (Python's `^` would bind looser than `+`)
        return ast.parse(text.strip().replace("^", "**"), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise FormulaError(f"does not parse: {getattr(exc, 'msg', exc)}") from None


def _walk(node: ast.expr, name: Callable[[str], float], apply: Callable[..., float]) -> float:
    """The formula's value, each grader name read through `name` and each operation done by `apply(fn, *args)`;
    FormulaError on anything not allowed."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    if isinstance(node, ast.Name):
        return name(node.id)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return apply(_BINARY[type(node.op)], _walk(node.left, name, apply), _walk(node.right, name, apply))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return apply(_UNARY[type(node.op)], _walk(node.operand, name, apply))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
        fn = node.func.id
        if node.keywords or not node.args or (fn in ("min", "max")) != (len(node.args) > 1):
            raise FormulaError(f"{fn}() takes {'two or more numbers' if fn in ('min', 'max') else 'one number'}")
        return apply(FUNCTIONS[fn], *(_walk(a, name, apply) for a in node.args))
    raise FormulaError(f"{ast.unparse(node)!r} is not allowed")


def formula_names(text: str) -> set[str]:
    """The names a formula reads (its graders); FormulaError when it does not parse or uses what is not allowed."""
    names: set[str] = set()

    def seen(n: str) -> float:
        names.add(n)
        return 1.0

    _walk(_parse(text), seen, lambda fn, *args: 1.0)  # the shape only: nothing is computed
    return names


def evaluate(text: str, values: dict[str, float]) -> float:
    """The formula's value for these scores; FormulaError when it cannot be computed (a name with no score, log(0),
    1/0, an overflow, a complex result)."""

    def value(n: str) -> float:
        if n not in values:
            raise FormulaError(f"no score named {n!r} (there are: {', '.join(sorted(values))})")
        return float(values[n])

    try:
        result = _walk(_parse(text), value, lambda fn, *args: fn(*args))
    except FormulaError:
        raise
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise FormulaError(f"cannot be computed: {type(exc).__name__}: {exc}") from None
    if isinstance(result, int):
        result = float(result)
    if not isinstance(result, float) or not math.isfinite(result):
        raise FormulaError(f"is {result}, not a finite number")
    return result
