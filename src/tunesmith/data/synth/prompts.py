"""The teacher's prompts: rewrite a seed's user message, answer the new message (with the task's system prompt,
the behaviour and format notes and real demonstrations), and retry an answer with its problem named."""

from __future__ import annotations

from tunesmith.data.synth.plan import (
    OPERATORS,
    Job,
    last_user,
)
from tunesmith.data.synth.reply_format import ReplyFormat
from tunesmith.generate.backends import Prompt

REWRITER = (
    "You write realistic user messages for training an assistant. Reply with the new user message only: "
    "no preamble, no quotes, no explanation."
)
BEHAVIOR_NOTES = {
    "refuse": "The next user message must be refused: refuse it briefly and clearly (say that you can't help with "
    "that), in the task's reply format.",
    "escalate": "The next user message must be escalated: say clearly that you are escalating it to a human agent, "
    "in the task's reply format.",
}
RETRY_PREFIX = "That reply cannot be used"


def rewrite_case(job: Job, system_prompt: str | None):
    """The teacher prompt that writes the job's new user message."""
    context = f"\n\nThe assistant's own instructions:\n{system_prompt}" if system_prompt else ""
    instruction = OPERATORS[job.operator].instruction.format(tone=job.tone)
    user = f'{instruction}\nWrite it as {job.persona} would.\n\nOriginal message:\n"""\n{last_user(job.seed)}\n"""'
    return Prompt(
        id=str(job.index),
        messages=[{"role": "system", "content": REWRITER + context}, {"role": "user", "content": user}],
    )


def answer_case(job: Job, system_prompt: str | None, fmt: ReplyFormat):
    """The teacher prompt that answers the new message: the task's system prompt plus notes only the teacher sees
    (the expected behaviour, the format), real records as demonstrations, then the new message."""
    parts = [p for p in (system_prompt, BEHAVIOR_NOTES.get(job.behavior or ""), fmt.note()) if p]
    messages = [{"role": "system", "content": "\n\n".join(parts)}] if parts else []
    for demo in job.demos:
        messages += [{"role": "user", "content": last_user(demo)}, {"role": "assistant", "content": demo.reply}]
    return Prompt(id=str(job.index), messages=messages + [{"role": "user", "content": job.message}])


def retry_case(case, reply: str, detail: str, fmt: ReplyFormat):
    """The same prompt, the rejected reply, and what was wrong with it."""
    note = fmt.note()
    fix = f"{RETRY_PREFIX}: {detail}. Answer my previous message again" + (f". {note}" if note else ".")
    return Prompt(
        id=case.id, messages=case.messages + [{"role": "assistant", "content": reply}, {"role": "user", "content": fix}]
    )
