"""Scorers: each takes (case, output) and says pass/fail (or None when it does not apply).

`score_case` applies the ones a task needs and returns a flat dict of metric -> bool | None:
`task_correct` (the task's accuracy), `format_valid` (json tasks), `field:<name>` (per JSON field),
`behavior_correct` (answers, refuses, escalates, asks or abstains as the case expects), `hallucinated`
(out-of-domain cases answered anyway), `hit_token_limit` (a reply that never stopped), `check:<name>` (each
scorer a case or suite names), and `prompt_strict` / `prompt_loose` for IFEval-style instruction cases.

A case (or a suite in the config) can name its scorers; then the case is correct when all of them pass:

    {"messages": [...], "expected": "42", "scorers": [{"type": "numeric"}, {"type": "not_contains", "text": "sorry"}]}

Scorer types (`SCORERS`): exact, label, json, json_schema, json_fields, regex, numeric, contains, not_contains,
behavior, tool_call, instructions, custom (`{"type": "custom", "function": "my_scorers:check"}`: a function
`(output: str, case: dict) -> bool | float | dict` imported from the project directory or any installed module;
a float passes at `threshold`, default 0.5; a dict gives `passed` and `detail`), and OpenAI's graders
(`tunesmith.eval.openai_graders`): string_check, text_similarity, score_model, label_model, python, multi.

`grade_cases(spec, cases, outputs, schema, context)` is one scorer over many replies, as `Grade`s (pass, score,
detail): OpenAI's graders grade them in one batch, through the `GradingContext` (the judge, prepared grades).
"""

from __future__ import annotations

import json
import re
from typing import Any

from tunesmith.config import TaskConfig
from tunesmith.data.answers import expected_number, numeric_answer
from tunesmith.data.coverage import reply_behavior
from tunesmith.eval.instructions import check_all
from tunesmith.eval.openai_graders import GRADERS, Grade, GradingContext, Item
from tunesmith.eval.suite import EvalCase
from tunesmith.schemas import validator_for
from tunesmith.scorer_specs import SCORER_KEYS

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


def normalize(text: Any) -> str:
    """Case- and whitespace-insensitive form of a value for comparison."""
    return re.sub(r"\s+", " ", str(text)).strip().strip(".").lower()


def parse_json_strict(output: str) -> Any:
    """The output as JSON if it is exactly one JSON value (whitespace allowed), else raise ValueError."""
    return json.loads(output.strip())


def parse_json_lenient(output: str) -> Any:
    """JSON from an output that may wrap it in a code fence or prose: the first {...} that parses."""
    text = output.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            return decoder.raw_decode(text[match.start() :])[0]
        except json.JSONDecodeError:
            continue
    raise ValueError("no JSON object found")


def json_valid(output: str, schema: dict | None = None) -> bool:
    """Exactly one JSON object, valid against `schema` when given."""
    try:
        obj = parse_json_strict(output)
    except ValueError:
        return False
    if not isinstance(obj, dict):
        return False
    if schema:
        return validator_for(schema).is_valid(obj)
    return True


def field_matches(output: str, expected: dict, fields: list[str]) -> dict[str, bool]:
    """Per-field equality (`values_match`) of the JSON in `output` against `expected`."""
    try:
        obj = parse_json_lenient(output)
    except ValueError:
        obj = None
    obj = obj if isinstance(obj, dict) else {}
    return {f: f in obj and values_match(obj[f], expected.get(f)) for f in fields}


def values_match(got: Any, want: Any) -> bool:
    """Equality of two JSON values as a reader means it: objects whatever their key order, arrays item by item,
    a number equal to the same number (42 and 42.0, or "42" where the other side is a number), strings and other
    scalars ignoring case, spacing and a final period."""
    if isinstance(got, dict) and isinstance(want, dict):
        return got.keys() == want.keys() and all(values_match(got[k], want[k]) for k in want)
    if isinstance(got, list) and isinstance(want, list):
        return len(got) == len(want) and all(map(values_match, got, want))
    if isinstance(got, (dict, list)) or isinstance(want, (dict, list)):
        return False
    if _is_number(got) or _is_number(want):  # a string compared with a number is read as one
        a, b = _as_number(got), _as_number(want)
        if a is not None and b is not None:
            return a == b
    return normalize(got) == normalize(want)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_number(value: Any) -> float | None:
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().replace(",", ""))
        except ValueError:
            return None
    return None


def detect_behavior(output: str) -> str:
    """What a reply does: answer, refuse, escalate, clarify or abstain (JSON values count, so a router's
    {"queue": "escalation"} escalates)."""
    return reply_behavior(output)


def score_case(
    case: EvalCase,
    output: str,
    task: TaskConfig,
    schema: dict | None = None,
    hit_limit: bool = False,
    details: dict | None = None,
    context: GradingContext | None = None,
) -> dict[str, bool | None]:
    """All metrics of one case: the task's accuracy and format, whether the reply behaves as expected (answers,
    refuses, escalates, asks, or says it does not know), for out-of-domain cases whether it made an answer up, and
    the case's own scorers and instructions. Why a scorer failed goes into `details` when given; OpenAI's graders
    run in `context` (the judge, grades prepared for the suite)."""
    details = {} if details is None else details
    if case.instructions:  # a general instruction-following case: the task's format and behaviours do not apply
        res = instruction_result(case, output)
        details["instructions"] = {"ids": list(res.ids), "strict": list(res.strict), "loose": list(res.loose)}
        # prompt_strict is this case's accuracy (reported once, as prompt_strict_accuracy, not again as task_accuracy)
        scores = {"hit_token_limit": hit_limit, "prompt_strict": res.prompt_strict, "prompt_loose": res.prompt_loose}
        if case.scorers:
            scores.update(run_scorers(case, output, schema, details, context))
        return scores
    detected = detect_behavior(output)
    scores: dict[str, bool | None] = {"hit_token_limit": hit_limit, "behavior_correct": detected == case.behavior}
    if case.kind == "out_of_domain":
        scores["hallucinated"] = detected == "answer"
    expected = case.expected
    if task.type == "json":
        scores["format_valid"] = json_valid(output, schema)
        if isinstance(expected, dict):
            fields = task.match_fields or list(expected)
            per_field = field_matches(output, expected, fields)
            scores.update({f"field:{k}": v for k, v in per_field.items()})
            scores["task_correct"] = all(per_field.values())
        elif expected is not None:
            scores["task_correct"] = normalize(output) == normalize(expected)
        else:
            scores["task_correct"] = None
    elif isinstance(expected, (int, float)) and not isinstance(expected, bool):
        scores["task_correct"] = numeric_match(output, expected)
    else:
        scores["task_correct"] = None if expected is None else normalize(output) == normalize(expected)
    if case.scorers:
        checks = run_scorers(case, output, schema, details, context)
        scores.update(checks)
        known = [v for v in checks.values() if v is not None]
        scores["task_correct"] = all(known) if known else None
    return scores


def numeric_match(output: str, expected: float, rel_tol: float = 1e-6) -> bool:
    """The output's numeric answer equals `expected` (to a relative 1e-6)."""
    got = numeric_answer(output)
    return got is not None and abs(got - expected) <= rel_tol * max(1.0, abs(expected))


# ---------------------------------------------------------------------------------------------------------------
# Scorers a case or a suite names. Each: (spec, case, output, schema) -> (passed | None, detail).


def _expected_text(spec: dict, case: EvalCase) -> Any:
    return spec.get("expected", case.expected)


def _exact(spec, case, output, schema):
    """The reply is the expected text exactly (spacing at the ends aside); an expected JSON value (an object,
    array, number or boolean) is compared as JSON: the reply must parse to an equal value."""
    want = _expected_text(spec, case)
    if want is None:
        return None, "no expected value"
    if isinstance(want, str):
        return output.strip() == want.strip(), ""
    try:
        return parse_json_strict(output) == want, ""
    except ValueError:
        return False, "not JSON"


def _label(spec, case, output, schema):
    want = _expected_text(spec, case)
    if want is None:
        return None, "no expected value"
    return normalize(output) == normalize(want), ""


def _json(spec, case, output, schema):
    return json_valid(output), ""


def _json_schema(spec, case, output, schema):
    want = spec.get("schema") or schema
    if want is None:
        return None, "no schema in the spec or the task"
    try:
        obj = parse_json_strict(output)
    except ValueError as exc:
        return False, f"not JSON: {exc}"
    error = validator_for(want).first_error(obj)
    return error is None, "" if error is None else f"{error[0]}: {error[1]}"


def _json_fields(spec, case, output, schema):
    want = spec.get("expected", case.expected)
    if not isinstance(want, dict):
        return None, "expected is not a JSON object"
    per_field = field_matches(output, want, spec.get("fields") or list(want))
    wrong = [f for f, ok in per_field.items() if not ok]
    return not wrong, f"wrong field(s): {', '.join(wrong)}" if wrong else ""


def _regex(spec, case, output, schema):
    flags = re.I if "i" in spec.get("flags", "") else 0
    flags |= re.M if "m" in spec.get("flags", "") else 0
    flags |= re.S if "s" in spec.get("flags", "") else 0
    found = re.search(spec["pattern"], output, flags) is not None
    return found, "" if found else f"no match for /{spec['pattern']}/"


def _texts(spec: dict) -> list[str]:
    text = spec["text"]
    return [text] if isinstance(text, str) else list(text)


def _contains(spec, case, output, schema):
    fold = (lambda t: t.lower()) if spec.get("ignore_case", True) else (lambda t: t)
    missing = [t for t in _texts(spec) if fold(t) not in fold(output)]
    return not missing, f"missing: {missing}" if missing else ""


def _not_contains(spec, case, output, schema):
    fold = (lambda t: t.lower()) if spec.get("ignore_case", True) else (lambda t: t)
    present = [t for t in _texts(spec) if fold(t) in fold(output)]
    return not present, f"present: {present}" if present else ""


def _numeric(spec, case, output, schema):
    """The output's answer (`####` or last number) against the expected one: a number, a numeric string, or a
    worked solution read the same way as the output."""
    raw = _expected_text(spec, case)
    want = expected_number(raw)
    if want is None:
        return None, f"expected {raw!r} has no number"
    got = numeric_answer(output)
    ok = got is not None and abs(got - want) <= float(spec.get("tolerance", 1e-6)) * max(1.0, abs(want))
    return ok, "" if ok else f"answer {got} != {want}"


def _behavior(spec, case, output, schema):
    want = spec.get("expected", case.behavior)
    got = detect_behavior(output)
    return got == want, "" if got == want else f"{got} instead of {want}"


def instruction_result(case: EvalCase, output: str):
    """IFEval's checks of a case's instructions on `output` (strict and loose, per instruction)."""
    return check_all(
        case.instructions,
        case.instruction_kwargs or [{} for _ in case.instructions],
        output,
        case.messages[-1]["content"] if case.messages else "",
    )


def _instructions(spec, case, output, schema):
    if not case.instructions:
        return None, "the case has no instruction_id_list"
    res = instruction_result(case, output)
    failed = [i for i, ok in zip(res.ids, res.strict) if not ok]
    return res.prompt_strict, f"failed: {', '.join(failed)}" if failed else ""


def _custom(spec, case, output, schema):
    fn = load_function(spec["function"])
    got = fn(output, case.to_json())
    detail = ""
    if isinstance(got, dict):
        detail = str(got.get("detail", ""))
        got = got.get("passed")
    if isinstance(got, bool) or got is None:
        return got, detail
    if isinstance(got, (int, float)):
        return float(got) >= float(spec.get("threshold", 0.5)), detail or f"score {got}"
    raise TypeError(f"{spec['function']} returned {type(got).__name__}; return a bool, a number or a dict")


def run_scorers(
    case: EvalCase, output: str, schema: dict | None, details: dict, context: GradingContext | None = None
) -> dict[str, bool | None]:
    """Every scorer of a case as `check:<name>` (name = the spec's `name`, else its type). A scorer that raises
    scores None, and its error goes into `details` (the other scorers and cases are still scored)."""
    scores: dict[str, bool | None] = {}
    for spec in case.scorers or []:
        name = str(spec.get("name") or spec["type"])
        grade = grade_cases(spec, [case], [output], schema, context)[0]
        scores[f"check:{name}"] = grade.passed
        if grade.detail:
            details[name] = grade.detail
    return scores


def grade_cases(
    spec: dict, cases: list[EvalCase], outputs: list[str], schema: dict | None, context: GradingContext | None = None
) -> list[Grade]:
    """One scorer over many replies, in order: an OpenAI grader grades them in one batch (a python grader in one
    subprocess, a model grader's requests together) in `context`; tunesmith's own scorers go case by case."""
    if spec["type"] in GRADERS:
        return (context or GradingContext()).grade(spec, [Item(c, o) for c, o in zip(cases, outputs)])
    return [_own_grade(spec, case, output, schema) for case, output in zip(cases, outputs)]


def _own_grade(spec: dict, case: EvalCase, output: str, schema: dict | None) -> Grade:
    try:
        passed, detail = SCORER_FUNCTIONS[spec["type"]](spec, case, output, schema)
    except Exception as exc:
        return Grade(None, None, f"scorer error: {type(exc).__name__}: {exc}")
    return Grade(None if passed is None else bool(passed), None, detail)


_FUNCTIONS: dict[str, Any] = {}


def load_function(ref: str):
    """Import `module:function` (the caller puts the project directory on sys.path); cached."""
    if ref not in _FUNCTIONS:
        import importlib

        module, _, name = ref.partition(":")
        try:
            fn = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise LookupError(f"cannot import {ref}: {exc}") from None
        if not callable(fn):
            raise LookupError(f"{ref} is not callable")
        _FUNCTIONS[ref] = fn
    return _FUNCTIONS[ref]


# Tool calls: Hermes-style `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks (what tunesmith trains
# templates without native tool support to emit, and what endpoints' native tool calls are converted to), or a
# bare JSON object with `name` and `arguments` (or `tool_calls`).
TOOL_CALL_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)  # Hermes-style, as trained


def parse_tool_calls(output: str) -> list[dict] | None:
    """The calls an output makes, as [{"name", "arguments"}], or None when it makes none that parse."""
    blocks = TOOL_CALL_BLOCK.findall(output)
    objs = []
    try:
        objs = [json.loads(b) for b in blocks] if blocks else [parse_json_lenient(output)]
    except ValueError:
        return None
    calls = []
    for obj in objs:
        items = obj.get("tool_calls") if isinstance(obj, dict) and "tool_calls" in obj else [obj]
        for item in items if isinstance(items, list) else []:
            fn = item.get("function", item) if isinstance(item, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                return None
            args = fn.get("arguments", {})
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except ValueError:
                    return None
            calls.append({"name": fn["name"], "arguments": args})
    return calls or None


def _loose_json(value: Any) -> Any:
    """JSON with strings normalized, for argument equality that ignores case and spacing."""
    if isinstance(value, dict):
        return {k: _loose_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_loose_json(v) for v in value]
    return normalize(value) if isinstance(value, str) else value


def _tool_call(spec, case, output, schema):
    """Right function(s), in order; arguments valid against the declared tool's JSON Schema and equal to the
    expected ones (strings compared case- and space-insensitively)."""
    if "name" in spec:
        want = [{"name": spec["name"], "arguments": spec.get("arguments")}]
    elif isinstance(case.expected, dict) and isinstance(case.expected.get("tool_calls"), list):
        want = case.expected["tool_calls"]
    else:
        return None, "no expected call (give `name` in the scorer or `expected.tool_calls`)"
    got = parse_tool_calls(output)
    if got is None:
        return False, "no tool call in the output"
    if [c["name"] for c in got] != [w["name"] for w in want]:
        return False, f"called {[c['name'] for c in got]}, expected {[w['name'] for w in want]}"
    declared = {
        (t.get("function") or t).get("name"): (t.get("function") or t).get("parameters")
        for t in case.tools or []
        if isinstance(t, dict)
    }
    for call, exp in zip(got, want):
        params = declared.get(call["name"])
        if params and not validator_for(params).is_valid(call["arguments"]):
            return False, f"{call['name']} arguments do not match the tool's schema"
        if exp.get("arguments") is not None and _loose_json(call["arguments"]) != _loose_json(exp["arguments"]):
            return False, f"{call['name']} arguments {call['arguments']} != {exp['arguments']}"
    return True, ""


SCORER_FUNCTIONS: dict[str, Any] = {
    "exact": _exact,
    "label": _label,
    "json": _json,
    "json_schema": _json_schema,
    "json_fields": _json_fields,
    "regex": _regex,
    "numeric": _numeric,
    "contains": _contains,
    "not_contains": _not_contains,
    "behavior": _behavior,
    "tool_call": _tool_call,
    "instructions": _instructions,
    "custom": _custom,
}
assert SCORER_FUNCTIONS.keys() | GRADERS.keys() == SCORER_KEYS.keys()


def _graded(spec, case, output, schema):
    """An OpenAI grader as a scorer of one case (no judge: the model graders say so)."""
    grade = grade_cases(spec, [case], [output], schema)[0]
    return grade.passed, grade.detail


SCORERS: dict[str, tuple[tuple[str, ...], Any]] = {  # type: (required spec keys, (spec, case, output, schema) fn)
    kind: (keys, SCORER_FUNCTIONS.get(kind, _graded)) for kind, keys in SCORER_KEYS.items()
}
