"""What the teacher wrote, cleaned and judged: a new message without its label or quotes, a reply out of its code
fence, a call that gave nothing usable, a reply out of format or behaviour, a teacher that refused."""

from __future__ import annotations

import re

from tunesmith.data.coverage import reply_behavior
from tunesmith.data.synth.plan import (
    Job,
)
from tunesmith.data.synth.reply_format import ReplyFormat

BEHAVIOR_HINTS = {
    "refuse": "say that you can't help with that",
    "escalate": "say that you are escalating it to a human agent",
}
RETRIED_REASONS = {"not_json", "schema_invalid", "unknown_label", "wrong_behavior"}
# The teacher declining to write the message. Anchored at the start and tied to a refusal's verbs: "I can't log
# in" and "I'm sorry to bother you, but ..." are fine user messages.
_CANT = (
    r"i (?:can(?:no|['’])?t|cannot|won['’]?t|will not|am unable to|['’]?m unable to|am not able to) "
    r"(?:help|assist|comply|fulfil|do that|(?:write|create|generate|provide) (?:that|this|such))"
)
TEACHER_REFUSAL = re.compile(
    rf"^\W*(?:as an ai\b|(?:(?:i['’]?m|i am) )?sorry\b[^.!?\n]{{0,30}}\b{_CANT}|{_CANT})", re.I
)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n(.*?)\n?```$", re.S)
_LABEL = re.compile(r"^(?:(?:new|rewritten|user)\s+)?message\s*:\s*", re.I)


def clean_message(text: str) -> str:
    """The teacher's new user message without a label ("Message:") or the quotes around it."""
    text = _LABEL.sub("", text.strip()).strip()
    for left, right in (('"', '"'), ("\u201c", "\u201d"), ("'", "'")):
        if len(text) > 1 and text[0] == left and text[-1] == right:
            text = text[1:-1].strip()
    return text


def clean_reply(text: str, fmt: ReplyFormat) -> str:
    text = text.strip()
    fenced = _FENCE.match(text) if fmt.json else None
    return fenced.group(1).strip() if fenced else text


def generation_problem(gen, max_new_tokens: int) -> tuple[str, str] | None:
    """(reason, detail) for a call that gave nothing usable."""
    if gen.error is not None:
        return ("teacher_timeout" if "Timeout" in gen.error else "teacher_error"), gen.error
    if not gen.output.strip():
        return "teacher_empty", "the teacher wrote nothing"
    if gen.hit_limit:
        return "truncated", f"the teacher's text was cut at max_new_tokens={max_new_tokens}"
    return None


def judge_reply(job: Job, reply: str, fmt: ReplyFormat) -> tuple[str, str] | None:
    """(reason, detail) when a reply cannot be kept; reasons in RETRIED_REASONS get one retry."""
    behavior = reply_behavior(reply)
    if behavior == "refuse" and job.behavior is None and reply_behavior(job.seed.reply or "") != "refuse":
        return "teacher_refused", f"the teacher refused: {reply[:80]!r}"
    found = fmt.problem(reply)
    if found:
        return found
    if job.behavior and behavior != job.behavior:
        return "wrong_behavior", (
            f"the reply must {job.behavior} the request ({BEHAVIOR_HINTS[job.behavior]}), "
            f"but it reads as {'an answer' if behavior == 'answer' else behavior}"
        )
    return None
