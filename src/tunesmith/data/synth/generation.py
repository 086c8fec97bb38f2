"""The two teacher phases: a new user message per job (exact repeats dropped before a paid answer), then the
answer to it (a reply out of format or behaviour gets one retry)."""

from __future__ import annotations

from tunesmith.data.dedup import normalize
from tunesmith.data.records import Record
from tunesmith.data.synth.candidates import (
    RETRIED_REASONS,
    TEACHER_REFUSAL,
    clean_message,
    clean_reply,
    generation_problem,
    judge_reply,
)
from tunesmith.data.synth.plan import (
    Job,
    last_user,
)
from tunesmith.data.synth.prompts import answer_case, retry_case, rewrite_case
from tunesmith.data.synth.reply_format import ReplyFormat
from tunesmith.data.synth.teacher import prompt_sha


def write_messages(jobs: list[Job], seeds: list[Record], teacher, system_of, run) -> None:
    """Phase 1: a new user message per job; an exact repeat (of a seed or an earlier job) is dropped here,
    before a paid call answers it."""
    cases = [rewrite_case(job, system_of(job)) for job in jobs]
    real = {normalize(last_user(r)): r.where for r in seeds}
    made: dict[str, int] = {}
    for job, case, gen in zip(jobs, cases, run(cases, "Synth 1/2: new messages")):
        job.shas["prompt_sha"] = prompt_sha(teacher, case)
        job.drop = generation_problem(gen, run.max_new_tokens)
        if job.drop:
            continue
        message = clean_message(gen.output)
        key = normalize(message)
        if not message or TEACHER_REFUSAL.search(message):
            job.drop = (
                ("teacher_refused", f"the teacher refused to write the message: {message[:80]!r}")
                if message
                else ("teacher_empty", "the teacher wrote nothing")
            )
        elif key in real:
            job.drop = ("duplicate_of_real", f"the new message repeats {real[key]}")
        elif key in made:
            job.drop = ("duplicate_of_synthetic", f"the same new message as job {made[key] + 1}")
        else:
            made[key] = job.index
            job.message = message


def answer_messages(jobs: list[Job], teacher, system_of, fmt: ReplyFormat, run) -> None:
    """Phase 2: the teacher answers each new message; a reply out of format or behaviour gets one retry."""
    todo = [j for j in jobs if j.drop is None]
    cases = [answer_case(job, system_of(job), fmt) for job in todo]
    retry = []
    for job, case, gen in zip(todo, cases, run(cases, "Synth 2/2: replies")):
        job.shas["reply_prompt_sha"] = prompt_sha(teacher, case)
        job.drop = generation_problem(gen, run.max_new_tokens)
        if job.drop:
            continue
        reply = clean_reply(gen.output, fmt)
        job.drop = judge_reply(job, reply, fmt)
        if job.drop is None:
            job.reply = reply
        elif job.drop[0] in RETRIED_REASONS:
            retry.append((job, retry_case(case, reply, job.drop[1], fmt)))
    if not retry:
        return
    for (job, case), gen in zip(retry, run([c for _, c in retry], "Synth: retries")):
        job.retried = True
        job.shas["reply_prompt_sha"] = prompt_sha(teacher, case)
        job.drop = generation_problem(gen, run.max_new_tokens)
        if job.drop is None:
            reply = clean_reply(gen.output, fmt)
            job.drop = judge_reply(job, reply, fmt)
            job.reply = reply if job.drop is None else None
