"""OpenAI's model graders, asked of the project's judge (`eval.judge`: an OpenAI-compatible endpoint, greedy):

    {"type": "score_model", "input": [{"role": "user", "content": "Rate the answer {{sample.output_text}} to ..."}],
     "range": [0, 10], "pass_threshold": 7}
    {"type": "label_model", "input": [...], "labels": ["correct", "incorrect"], "passing_labels": ["correct"]}

`input` is chat messages whose contents are templates. tunesmith adds a system instruction to answer with
`{"result": ...}` (a number in `range`, default [0, 1], or one of `labels`), as OpenAI's graders ask for structured
output, and reads the last such result (else the last number, or the label named last). A score outside `range`,
a reply with no score or label, or a failed request leaves the case unscored with the reason. A spec's `model` is
not used (the judge's own model answers); from `sampling_params` only `max_completions_tokens` is (default 512).
score_model passes at `pass_threshold`, by default the top of `range`; label_model passes on a passing label.
"""

from __future__ import annotations

import re
from typing import Any

from tunesmith.eval.openai_graders.base import Grade, Host, Item, NoJudge, scored, unscored
from tunesmith.eval.openai_graders.templates import TemplateFieldError, render
from tunesmith.generate.backends import Prompt

SCORE_INSTRUCTION = (
    "You are a grader. Grade as the messages below ask. Reason briefly if you need to, then end your reply with a "
    'JSON object {{"result": <score>}}, the score a number from {low:g} to {high:g}.'
)
LABEL_INSTRUCTION = (
    "You are a grader. Classify as the messages below ask. Reason briefly if you need to, then end your reply with a "
    'JSON object {{"result": "<label>"}}, the label exactly one of: {labels}.'
)
MAX_TOKENS = 512
_RESULT_NUMBER = re.compile(r'"result"\s*:\s*"?(-?\d+(?:\.\d+)?)')
_RESULT_TEXT = re.compile(r'"result"\s*:\s*"([^"]*)"')
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def score_model(spec: dict[str, Any], items: list[Item], host: Host) -> list[Grade]:
    low, high = (float(b) for b in spec.get("range", [0, 1]))
    threshold = float(spec.get("pass_threshold", high))
    replies = _ask(spec, items, host, SCORE_INSTRUCTION.format(low=low, high=high))
    return [r if isinstance(r, Grade) else _score_grade(r, low, high, threshold) for r in replies]


def label_model(spec: dict[str, Any], items: list[Item], host: Host) -> list[Grade]:
    labels, passing = list(spec["labels"]), set(spec["passing_labels"])
    replies = _ask(spec, items, host, LABEL_INSTRUCTION.format(labels=", ".join(labels)))
    return [r if isinstance(r, Grade) else _label_grade(r, labels, passing) for r in replies]


def _score_grade(reply: str, low: float, high: float, threshold: float) -> Grade:
    value = parse_score(reply)
    if value is None:
        return unscored(f"the judge gave no score: {reply[-160:]!r}")
    if not low <= value <= high:
        return unscored(f"the judge's score {value:g} is outside range [{low:g}, {high:g}]")
    return scored(value, threshold, "judge")


def _label_grade(reply: str, labels: list[str], passing: set[str]) -> Grade:
    label = parse_label(reply, labels)
    if label is None:
        return unscored(f"the judge named none of the labels ({', '.join(labels)}): {reply[-160:]!r}")
    passed = label in passing
    return Grade(passed, 1.0 if passed else 0.0, f"label {label!r}")


def parse_score(reply: str) -> float | None:
    """The judge's score: its last `"result": N`, else the last number in the reply."""
    found = _RESULT_NUMBER.findall(reply) or _NUMBER.findall(reply)
    return float(found[-1]) if found else None


def parse_label(reply: str, labels: list[str]) -> str | None:
    """The judge's label: its last `"result": "..."` when that is a label, else the whole reply when it is one,
    else the label named last (whole words, ignoring case)."""
    by_fold = {label.casefold(): label for label in labels}
    results = _RESULT_TEXT.findall(reply)
    if results and results[-1].strip().casefold() in by_fold:
        return by_fold[results[-1].strip().casefold()]
    bare = reply.strip().strip("\"'`.").strip().casefold()
    if bare in by_fold:
        return by_fold[bare]
    last = {
        label: max((m.end() for m in re.finditer(rf"(?<!\w){re.escape(label)}(?!\w)", reply, re.I)), default=-1)
        for label in labels
    }
    best = max(labels, key=lambda label: (last[label], len(label)))
    return best if last[best] >= 0 else None


def _ask(spec: dict[str, Any], items: list[Item], host: Host, instruction: str) -> list[str | Grade]:
    """The judge's reply to each item's rendered messages (requests sent together), or the Grade saying why there
    is none: no judge configured, a template naming a missing field, a failed request."""
    try:
        backend = host.judge(spec["type"])
    except NoJudge as exc:
        return [unscored(str(exc)) for _ in items]
    out: list[str | Grade] = [""] * len(items)
    prompts, asked = [], []
    for i, item in enumerate(items):
        try:
            prompts.append(Prompt(id=str(i), messages=_messages(spec["input"], instruction, item)))
            asked.append(i)
        except TemplateFieldError as exc:
            out[i] = unscored(str(exc))
    limit = int((spec.get("sampling_params") or {}).get("max_completions_tokens") or MAX_TOKENS)
    gens = backend.generate(prompts, max_new_tokens=limit, label=f"Grading ({spec['type']})") if prompts else []
    for i, gen in zip(asked, gens):
        out[i] = unscored(f"the judge failed: {gen.error}") if gen.error else gen.output
    return out


def _messages(template: list[dict[str, Any]], instruction: str, item: Item) -> list[dict[str, str]]:
    """The spec's messages rendered for one reply, the grading instruction first (in a leading system message)."""
    messages = [
        {
            "role": "system" if m["role"] == "developer" else m["role"],
            "content": render(m["content"], item.case, item.output),
        }
        for m in template
    ]
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": f"{instruction}\n\n{messages[0]['content']}"}, *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]
