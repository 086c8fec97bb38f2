"""Checks of OpenAI grader specs, run when a suite or the config is read, so a bad grader is named before anything
is generated (the graders themselves are `tunesmith.eval.openai_graders`).

    grader_problem({"type": "text_similarity", "input": "{{sample.output_text}}", "reference": "{{item.answer}}",
                    "evaluation_metric": "meteor", "pass_threshold": 0.5})
    # ("text_similarity's meteor needs NLTK's WordNet download, which tunesmith does not fetch", "use ...")

Keys OpenAI's specs carry that tunesmith does not use (`name` aside: `model`, `sampling_params`, `image_tag`) are
accepted and ignored.
"""

from __future__ import annotations

import ast
import keyword
from typing import Any

from tunesmith.scorer_specs.formula import FUNCTIONS, FormulaError, formula_names

GRADER_KEYS: dict[str, tuple[str, ...]] = {  # OpenAI grader type: required spec keys
    "string_check": ("input", "reference", "operation"),
    "text_similarity": ("input", "reference", "evaluation_metric", "pass_threshold"),
    "score_model": ("input",),
    "label_model": ("input", "labels", "passing_labels"),
    "python": ("source",),
    "multi": ("graders", "calculate_output"),
}
OPENAI_GRADERS = tuple(GRADER_KEYS)
MODEL_GRADERS = ("score_model", "label_model")  # they ask the project's judge (eval.judge)
STRING_OPERATIONS = ("eq", "ne", "like", "ilike")
SIMILARITY_METRICS = (
    "fuzzy_match",
    "bleu",
    "gleu",
    "rouge_1",
    "rouge_2",
    "rouge_3",
    "rouge_4",
    "rouge_5",
    "rouge_l",
    "cosine",
)
ROLES = ("system", "developer", "user", "assistant")
PYTHON_TIMEOUT_S = 5.0  # a python grader's default time per case
MAX_TIMEOUT_S = 600.0

Found = tuple[str, str] | None  # (message, hint) or no problem


def grader_problem(spec: dict[str, Any]) -> Found:
    """(message, hint) when an OpenAI grader spec is unusable, else None."""
    kind = spec.get("type")
    if kind not in GRADER_KEYS:
        return f"{kind!r} is not an OpenAI grader", f"graders: {', '.join(OPENAI_GRADERS)}"
    missing = [k for k in GRADER_KEYS[kind] if k not in spec]
    if missing:
        return f"grader {kind!r} needs {', '.join(repr(m) for m in missing)}", ""
    return _CHECKS[kind](spec)


def needs_judge(spec: Any) -> bool:
    """Whether a scorer spec asks the judge model (score_model, label_model, or a multi grader holding one)."""
    if not isinstance(spec, dict):
        return False
    if spec.get("type") == "multi" and isinstance(spec.get("graders"), dict):
        return any(needs_judge(g) for g in spec["graders"].values())
    return spec.get("type") in MODEL_GRADERS


def _threshold(spec: dict, required: bool = False) -> Found:
    value = spec.get("pass_threshold")
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"pass_threshold {value!r} is not a number", "a score at or above it passes, e.g. 0.8"
    return None


def _string_check(spec: dict) -> Found:
    if spec["operation"] not in STRING_OPERATIONS:
        return f"string_check operation {spec['operation']!r} is not eq, ne, like or ilike", ""
    return None


def _text_similarity(spec: dict) -> Found:
    metric = spec["evaluation_metric"]
    if metric == "meteor":
        return (
            "text_similarity's meteor needs NLTK's WordNet download, which tunesmith does not fetch",
            "use rouge_l, bleu, gleu or fuzzy_match",
        )
    if metric not in SIMILARITY_METRICS:
        return f"unknown evaluation_metric {metric!r}", f"metrics: {', '.join(SIMILARITY_METRICS)}"
    return _threshold(spec, required=True)


def _messages(spec: dict) -> Found:
    """A model grader's `input`: chat messages with a role and text content (templates allowed)."""
    messages = spec["input"]
    if not isinstance(messages, list) or not messages:
        return (
            "input must be a non-empty list of messages",
            'e.g. [{role: user, content: "Grade {{sample.output_text}}"}]',
        )
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ROLES or not isinstance(msg.get("content"), str):
            return f"input[{i}] is not a message with a role ({', '.join(ROLES)}) and text content", ""
    return None


def _score_model(spec: dict) -> Found:
    bounds = spec.get("range", [0, 1])
    numbers = isinstance(bounds, list) and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
    if not numbers or len(bounds) != 2 or bounds[0] >= bounds[1]:
        return f"range {bounds!r} is not [low, high] with low < high", "e.g. range: [0, 1]"
    return _messages(spec) or _threshold(spec)


def _label_model(spec: dict) -> Found:
    labels, passing = spec["labels"], spec["passing_labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        return "labels must be a non-empty list of strings", 'e.g. labels: ["correct", "incorrect"]'
    if not isinstance(passing, list) or not passing or any(p not in labels for p in passing):
        return f"passing_labels {passing!r} must be a non-empty list of the labels ({', '.join(labels)})", ""
    return _messages(spec)


def _python(spec: dict) -> Found:
    source = spec["source"]
    if not isinstance(source, str):
        return "source must be Python code defining grade(sample, item) -> float", ""
    try:
        compile(source, "<python grader>", "exec")  # compiled only, never run here
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        return f"source does not compile{f' (line {line})' if line else ''}: {getattr(exc, 'msg', exc)}", ""
    if not any(isinstance(n, ast.FunctionDef) and n.name == "grade" for n in tree.body):
        return "source defines no top-level grade(sample, item)", "def grade(sample, item) -> float: ..."
    timeout = spec.get("timeout", PYTHON_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT_S:
        return f"timeout {timeout!r} is not a number of seconds in (0, {MAX_TIMEOUT_S:g}]", ""
    return _threshold(spec)


def _multi(spec: dict) -> Found:
    graders = spec["graders"]
    if not isinstance(graders, dict) or not graders:
        return "graders must be an object: name -> grader spec", "e.g. graders: {exact: {type: string_check, ...}}"
    for name, sub in graders.items():
        if not str(name).isidentifier() or keyword.iskeyword(name) or name in FUNCTIONS:
            return f"grader name {name!r} cannot appear in a formula", "use letters, digits and _ (not a function name)"
        if not isinstance(sub, dict) or sub.get("type") not in GRADER_KEYS:
            return f"graders.{name}: not an OpenAI grader", f"multi's graders are: {', '.join(OPENAI_GRADERS)}"
        problem = grader_problem(sub)
        if problem:
            return f"graders.{name}: {problem[0]}", problem[1]
    formula = spec["calculate_output"]
    try:
        unknown = sorted(formula_names(str(formula)) - set(graders))
    except FormulaError as exc:
        return f"calculate_output {formula!r}: {exc}", "numbers, grader names, + - * / ^ and " + ", ".join(FUNCTIONS)
    if unknown:
        return f"calculate_output names {', '.join(map(repr, unknown))}, not a grader", f"graders: {', '.join(graders)}"
    return _threshold(spec)


_CHECKS = {
    "string_check": _string_check,
    "text_similarity": _text_similarity,
    "score_model": _score_model,
    "label_model": _label_model,
    "python": _python,
    "multi": _multi,
}
