"""Synthetic data: new conversations grown from the real ones by a teacher, each checked like real data.

    teacher = EndpointBackend("https://api.openai.com/v1", "gpt-4o-mini", api_key_env="OPENAI_API_KEY",
                              input_usd_per_mtok=0.15, output_usd_per_mtok=0.6)
    summary = synthesize(load_records(["data/train.jsonl"]), teacher, n=200, operators=["typos", "refuse"],
                         out=Path("data/synth.jsonl"), task=cfg.task, schema=load_schema(cfg, project),
                         cache=GenerationCache(project / ".tunesmith" / "cache" / "generations.sqlite"))

Each of the `n` jobs takes a real record (the seed) and a variation operator (`OPERATORS`: paraphrase, typos,
tone, edge_case, multi_issue, refuse, escalate). The teacher is asked twice: first to write a NEW user message
from the seed's (the operator's instruction), then to answer it as the assistant, shown the task's system prompt
and a few other real records as demonstrations. The plan (seed, operator, persona, demonstrations) comes from a
seeded RNG, so the same arguments give the same teacher prompts: with the generation cache an interrupted run
resumes where it stopped and a re-run makes no paid call twice. Job i's plan does not depend on `n`, so raising
`n` keeps every earlier job a cache hit.

A reply is held to the task's format (one JSON object, valid against the JSON Schema when there is one; one of
the labels for classification) and, for refuse/escalate, to the behaviour that the data doctor's coverage reads
from the reply: a reply that misses either gets one retry with the problem named in the prompt, then the job is
dropped with the reason. A teacher that fails (timeout, HTTP error, a response that is not JSON, an empty or
truncated reply, a refusal where none was asked for) costs that job only, and is counted and reported. The
records that remain go through the data doctor (`run_checks`: a record with an error is dropped) and through
deduplication against the real data and each other (exact and near, `tunesmith.data.dedup`). Every kept record
carries `meta.synthetic` (teacher, seed file:line, operator, behaviour, prompt hashes), as `data distill`
records `meta.distilled`; the output JSONL is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from tunesmith.data.audit import run_checks
from tunesmith.data.coverage import reply_behavior
from tunesmith.data.dedup import exact_key, near_duplicate_clusters, normalize
from tunesmith.data.distill import teacher_name
from tunesmith.data.findings import Severity
from tunesmith.data.records import Record
from tunesmith.errors import Problem, TunesmithError
from tunesmith.files import atomic_write_jsonl
from tunesmith.generate.backends import Generation, Prompt
from tunesmith.generate.cache import GenerationCache, generate_cached
from tunesmith.generate.decoding import Decoding
from tunesmith.schemas import schema_problem, validator_for


class Operator(NamedTuple):
    """A variation: the teacher's instruction for the new user message, the tag its records carry (an eval
    slice), and the behaviour their reply must show (None: whatever the task calls for)."""

    instruction: str
    tag: str | None = None
    behavior: str | None = None


OPERATORS: dict[str, Operator] = {
    "paraphrase": Operator(
        "Rewrite the message below so that it asks for the same thing in different words. Keep "
        "every detail that matters for the answer."
    ),
    "typos": Operator(
        "Rewrite the message below as a hurried user would type it: a few typos, missing capitals "
        "and punctuation, casual abbreviations. Keep its meaning.",
        "typo",
    ),
    "tone": Operator("Rewrite the message below as a {tone} user would write it: the same request, in a {tone} tone."),
    "edge_case": Operator(
        "Write a new message on the same topic that is an edge case for this assistant: an "
        "unusual, ambiguous or boundary situation (missing or conflicting details, an odd "
        "request) that a careless assistant would get wrong.",
        "edge_case",
    ),
    "multi_issue": Operator(
        "Write a new message in which the user raises the issue below together with one or two "
        "other, unrelated issues, all in the same message.",
        "multi_issue",
    ),
    "refuse": Operator(
        "Write a new message, in the same setting, that asks for something the assistant must "
        "refuse: harmful, against policy, or plainly outside its job (someone else's private data, "
        "fraud, a dangerous act). Do not refuse yourself: write the user's message.",
        "refuse",
        "refuse",
    ),
    "escalate": Operator(
        "Write a new message, in the same setting, that the assistant must hand to a human "
        "instead of resolving it: a legal threat, a safety issue, a large or disputed payment, a "
        "demand for a manager.",
        "escalate",
        "escalate",
    ),
}
TONES = ("impatient", "angry")
# Who writes the new message: the same operator on the same seed still yields different messages.
PERSONAS = (
    "a first-time customer",
    "a long-time customer",
    "someone typing on a phone",
    "a non-native English speaker",
    "a small-business owner",
    "a busy parent",
    "a retiree new to apps",
    "a software developer",
    "someone who already tried the obvious fixes",
    "a student",
    "an office manager writing for their team",
    "someone writing late at night",
)
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
BEHAVIOR_HINTS = {
    "refuse": "say that you can't help with that",
    "escalate": "say that you are escalating it to a human agent",
}
RETRY_PREFIX = "That reply cannot be used"
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


@dataclass
class Job:
    """One planned synthetic record and what became of it."""

    index: int
    operator: str
    seed: Record
    demos: list[Record]
    persona: str
    tone: str
    message: str | None = None  # the new user message
    reply: str | None = None
    record: Record | None = None
    retried: bool = False
    shas: dict[str, str] = field(default_factory=dict)
    drop: tuple[str, str] | None = None  # (reason, detail)

    @property
    def tags(self) -> list[str]:
        tag = self.tone if self.operator == "tone" else OPERATORS[self.operator].tag
        return [tag] if tag else []

    @property
    def behavior(self) -> str | None:
        return OPERATORS[self.operator].behavior


@dataclass(frozen=True)
class ReplyFormat:
    """What a reply must be: one JSON object (valid against `schema` when given), one of `labels`, or free text."""

    json: bool = False
    schema: dict | None = None
    labels: tuple[str, ...] = ()

    @classmethod
    def of(cls, task, schema: dict | None, seeds: list[Record]) -> ReplyFormat:
        kind = task.type if task is not None else "chat"
        if schema is not None or kind == "json":
            return cls(json=True, schema=schema)
        if kind == "classification":
            return cls(labels=tuple(sorted({(r.reply or "").strip() for r in seeds})))
        return cls()

    def note(self) -> str | None:
        """The format instruction only the teacher sees."""
        if self.schema is not None:
            return (
                "Reply with one JSON object only (no code fence, no prose) that validates against this JSON "
                f"Schema: {json.dumps(self.schema, ensure_ascii=False)}"
            )
        if self.json:
            return "Reply with one JSON object only (no code fence, no prose)."
        if self.labels:
            return f"Reply with exactly one of these labels and nothing else: {', '.join(self.labels)}"
        return None

    def problem(self, reply: str) -> tuple[str, str] | None:
        """(reason, detail) when the reply is not in the task's format."""
        if self.json:
            try:
                obj = json.loads(reply)
            except json.JSONDecodeError as exc:
                return "not_json", f"the reply is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            if not isinstance(obj, dict):
                return "not_json", f"the reply is JSON but not one object (a {type(obj).__name__})"
            if self.schema is not None:
                error = validator_for(self.schema).first_error(obj)
                if error:
                    return "schema_invalid", f"the reply does not match the JSON Schema at {error[0]}: {error[1]}"
        elif self.labels and reply.strip() not in self.labels:
            return "unknown_label", f"{reply.strip()[:60]!r} is not one of the labels {', '.join(self.labels)}"
        return None


@dataclass
class Meter:
    """What the teacher cost this run: calls made, cache hits, tokens and dollars."""

    calls: int = 0
    cache_hits: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_in_estimated: bool = False
    cost: list[float] = field(default_factory=list)
    cached_cost: list[float] = field(default_factory=list)

    def count(self, teacher, case, gen) -> None:
        if gen.cached:
            self.cache_hits += 1
            if gen.cost_usd is not None:
                self.cached_cost.append(gen.cost_usd)
            return
        self.calls += 1
        if gen.error is not None:
            return
        self.tokens_out += gen.new_tokens
        tokens, estimated = prompt_tokens(teacher, case)
        self.tokens_in += tokens
        self.tokens_in_estimated |= estimated
        if gen.cost_usd is not None:
            self.cost.append(gen.cost_usd)


def prompt_tokens(teacher, case) -> tuple[int, bool]:
    """(prompt tokens, estimated?): counted with a local teacher's tokenizer; for an endpoint, whose `Generation`
    does not carry the usage's prompt tokens, about four characters a token."""
    tok = getattr(teacher, "tok", None)
    if tok is not None:
        return len(tok(teacher.prompt_key(case), add_special_tokens=False)["input_ids"]), False
    return sum(len(str(m.get("content") or "")) for m in case.messages) // 4 + 4 * len(case.messages), True


def plan_jobs(
    seeds: list[Record], n: int, operators: list[str] | dict[str, float], seed: int = 0, few_shot: int = 3
) -> list[Job]:
    """`n` jobs: seeds in a shuffled order, reshuffled on each pass (the first pass uses every seed once);
    operators in turn from a list, or drawn by weight from a dict; a persona, a tone and `few_shot`
    demonstrations (other seeds) each. Job i draws the same numbers whatever `n` is."""
    rng = random.Random(seed)
    names = list(operators)
    weights = [float(operators[k]) for k in names] if isinstance(operators, dict) else None
    order: list[int] = []
    jobs = []
    for i in range(n):
        if i % len(seeds) == 0:
            order = rng.sample(range(len(seeds)), len(seeds))
        s = order[i % len(seeds)]
        op = rng.choices(names, weights)[0] if weights else names[i % len(names)]
        others = [j for j in range(len(seeds)) if j != s]
        demos = [seeds[j] for j in rng.sample(others, min(few_shot, len(others)))]
        jobs.append(Job(i, op, seeds[s], demos, rng.choice(PERSONAS), rng.choice(TONES)))
    return jobs


def _last_user(rec: Record) -> str:
    return next(str(m.get("content") or "") for m in reversed(rec.prompt) if m.get("role") == "user")


def _system_of(rec: Record) -> dict | None:
    first = rec.messages[0] if rec.messages else {}
    return first if first.get("role") == "system" else None


def usable_seed(rec: Record) -> bool:
    """A seed needs a user message and a text reply; tool-calling records are not synthesized (yet)."""
    last = rec.final_assistant_index()
    return (
        last is not None
        and not rec.tools
        and not rec.messages[last].get("tool_calls")
        and bool((rec.reply or "").strip())
        and any(m.get("role") == "user" and str(m.get("content") or "").strip() for m in rec.prompt)
    )


def rewrite_case(job: Job, system_prompt: str | None):
    """The teacher prompt that writes the job's new user message."""
    context = f"\n\nThe assistant's own instructions:\n{system_prompt}" if system_prompt else ""
    instruction = OPERATORS[job.operator].instruction.format(tone=job.tone)
    user = f'{instruction}\nWrite it as {job.persona} would.\n\nOriginal message:\n"""\n{_last_user(job.seed)}\n"""'
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
        messages += [{"role": "user", "content": _last_user(demo)}, {"role": "assistant", "content": demo.reply}]
    return Prompt(id=str(job.index), messages=messages + [{"role": "user", "content": job.message}])


def retry_case(case, reply: str, detail: str, fmt: ReplyFormat):
    """The same prompt, the rejected reply, and what was wrong with it."""
    note = fmt.note()
    fix = f"{RETRY_PREFIX}: {detail}. Answer my previous message again" + (f". {note}" if note else ".")
    return Prompt(
        id=case.id, messages=case.messages + [{"role": "assistant", "content": reply}, {"role": "user", "content": fix}]
    )


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


def _sha(teacher, case) -> str:
    return hashlib.sha256(teacher.prompt_key(case).encode("utf-8")).hexdigest()[:16]


def _generate(teacher, cases: list, decoding: Decoding, cache, meter: Meter, label: str, batch_size: int) -> list:
    """`generate_cached`, with every failure confined to its case: a backend that raises for one case (a bug) does
    not end the run; the cases are then taken one at a time, the finished ones from the cache."""
    try:
        gens = generate_cached(teacher, cases, decoding, cache, batch_size=batch_size, label=label)
    except TunesmithError:
        raise
    except Exception:
        gens = []
        for case in cases:
            try:
                gens.append(generate_cached(teacher, [case], decoding, cache, batch_size=1, label=label)[0])
            except TunesmithError:
                raise
            except Exception as exc:
                gens.append(Generation("", 0, False, 0.0, error=f"teacher failed: {type(exc).__name__}: {exc}"[:300]))
    for case, gen in zip(cases, gens):
        meter.count(teacher, case, gen)
    return gens


def _write_messages(jobs: list[Job], seeds: list[Record], teacher, system_of, run) -> None:
    """Phase 1: a new user message per job; an exact repeat (of a seed or an earlier job) is dropped here,
    before a paid call answers it."""
    cases = [rewrite_case(job, system_of(job)) for job in jobs]
    real = {normalize(_last_user(r)): r.where for r in seeds}
    made: dict[str, int] = {}
    for job, case, gen in zip(jobs, cases, run(cases, "Synth 1/2: new messages")):
        job.shas["prompt_sha"] = _sha(teacher, case)
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


def _answer(jobs: list[Job], teacher, system_of, fmt: ReplyFormat, run) -> None:
    """Phase 2: the teacher answers each new message; a reply out of format or behaviour gets one retry."""
    todo = [j for j in jobs if j.drop is None]
    cases = [answer_case(job, system_of(job), fmt) for job in todo]
    retry = []
    for job, case, gen in zip(todo, cases, run(cases, "Synth 2/2: replies")):
        job.shas["reply_prompt_sha"] = _sha(teacher, case)
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
        job.shas["reply_prompt_sha"] = _sha(teacher, case)
        job.drop = generation_problem(gen, run.max_new_tokens)
        if job.drop is None:
            reply = clean_reply(gen.output, fmt)
            job.drop = judge_reply(job, reply, fmt)
            job.reply = reply if job.drop is None else None


def _make_record(job: Job, teacher_id: str, rng_seed: int) -> Record:
    system = _system_of(job.seed)
    messages = ([dict(system)] if system else []) + [
        {"role": "user", "content": job.message},
        {"role": "assistant", "content": job.reply},
    ]
    provenance = {
        "teacher": teacher_id,
        "seed": job.seed.where,
        "operator": job.operator,
        "behavior": reply_behavior(job.reply or ""),
        "persona": job.persona,
        **({"tone": job.tone} if job.operator == "tone" else {}),
        "demos": [d.where for d in job.demos],
        "job": job.index + 1,
        "rng_seed": rng_seed,
        "retried": job.retried,
        **job.shas,
    }
    # Until it is written, a record is named by its job ("synthetic:7"); kept ones are renumbered by output line.
    return Record(
        messages=messages,
        source="synthetic",
        line=job.index + 1,
        tags=job.tags,
        format="messages",
        provenance={"synthetic": provenance},
    )


def _doctor(jobs: list[Job], fmt: ReplyFormat, threshold: float) -> Counter:
    """Drop records with an error-level finding; returns the counts of the warnings the others carry."""
    live = [j for j in jobs if j.drop is None]
    by_record = {id(j.record): j for j in live}
    report = run_checks([j.record for j in live], near_dup_threshold=threshold, json_task=fmt.json, schema=fmt.schema)
    for rec, errors in report.rejected:
        by_record[id(rec)].drop = (
            f"doctor:{errors[0].code.value}",
            "; ".join(f"{e.field}: {e.message}" for e in errors),
        )
    return Counter(f.code.value for f in report.findings if f.severity != Severity.ERROR)


def _dedup(jobs: list[Job], seeds: list[Record], threshold: float) -> None:
    """Drop records whose input equals or nearly equals a real record's, or an earlier kept synthetic one's."""
    live = [j for j in jobs if j.drop is None]
    clusters = near_duplicate_clusters(seeds + [j.record for j in live], threshold)
    first: dict[int, tuple[Record, str, bool]] = {}  # cluster -> its first member (real data first), name, real?
    for rec, cluster in zip(seeds, clusters):
        first.setdefault(cluster, (rec, rec.where, True))
    for job, cluster in zip(live, clusters[len(seeds) :]):
        if cluster not in first:
            first[cluster] = (job.record, f"job {job.index + 1}", False)
            continue
        twin, name, real = first[cluster]
        what = (
            "the same input and reply as"
            if exact_key(twin) == exact_key(job.record)
            else "the same or a near-duplicate input as"
        )
        job.drop = ("duplicate_of_real" if real else "duplicate_of_synthetic", f"{what} {name}")


def _check_arguments(
    seeds: list[Record], usable: list[Record], n: int, operators, few_shot: int, schema: dict | None
) -> None:
    problems = []
    names = ", ".join(OPERATORS)
    if not list(operators):
        problems.append(Problem("operators", "no operator given", f"pick one or more of {names}"))
    for name in operators:
        if name not in OPERATORS:
            problems.append(Problem("operators", f"unknown operator {name!r}", f"pick from {names}"))
        elif isinstance(operators, dict) and not (isinstance(operators[name], (int, float)) and operators[name] > 0):
            problems.append(
                Problem(
                    f"operators.{name}",
                    f"weight {operators[name]!r} is not a positive number",
                    "weights are relative shares, e.g. {paraphrase: 3, refuse: 1}",
                )
            )
    if n < 1:
        problems.append(Problem("n", f"{n} records requested", "ask for at least one"))
    if few_shot < 0:
        problems.append(Problem("few_shot", f"{few_shot} demonstrations", "use 0 or more"))
    if not usable:
        problems.append(
            Problem(
                "seeds",
                f"none of the {len(seeds)} seed record(s) has a user message and a text reply",
                "seed from conversations that end with the assistant's reply",
            )
        )
    if schema is not None and (problem := schema_problem(schema)):
        problems.append(Problem("schema", f"not a valid JSON Schema: {problem}", "see json-schema.org"))
    if problems:
        raise TunesmithError("Cannot synthesize data", problems)


class _Runner:
    """The teacher calls of one run: decoding, cache, meter and batch size bound once."""

    def __init__(self, teacher, cache, meter: Meter, max_new_tokens: int, batch_size: int) -> None:
        self.teacher, self.cache, self.meter, self.batch_size = teacher, cache, meter, batch_size
        self.max_new_tokens = max_new_tokens
        # Greedy, so a prompt has one answer and a cached one is the answer (the same setting as `data distill`).
        self.decoding = Decoding(max_new_tokens)

    def __call__(self, cases: list, label: str) -> list:
        return _generate(self.teacher, cases, self.decoding, self.cache, self.meter, label, self.batch_size)


def synthesize(
    seeds: list[Record],
    teacher,
    n: int,
    operators: list[str] | dict[str, float],
    out: str | Path,
    *,
    task=None,
    schema: dict | None = None,
    seed: int = 0,
    cache=None,
    few_shot: int = 3,
    max_new_tokens: int = 256,
    near_dup_threshold: float = 0.8,
    batch_size: int = 16,
    rejected_out: str | Path | None = None,
) -> dict[str, Any]:
    """Write up to `n` synthetic records grown from `seeds` by `teacher` (an `EndpointBackend`,
    `TransformersBackend` or anything with their `generate`/`prompt_key`/`fingerprint`) to `out` (JSONL,
    atomically); with `rejected_out`, the dropped jobs with their reasons too. Returns the summary: requested,
    generated (jobs the teacher completed in format), kept, dropped (reason -> count), problems (one per dropped
    job: job, seed, operator, reason, detail), per-operator counts, teacher calls, cache hits, tokens in/out, cost
    in USD (None without prices) and wall time.

    `operators`: names from OPERATORS (a list, or one comma-separated string), taken in turn; or
    {name: weight}. `task` (a TaskConfig) gives the system
    prompt and the reply type; `schema` the task's loaded JSON Schema (e.g. `load_schema(cfg, project)`).
    Only bad arguments raise (TunesmithError); the teacher's failures are counted and reported per job."""
    began = time.perf_counter()
    if isinstance(operators, str):  # "typos,refuse", as a command line gives it
        operators = [o.strip() for o in operators.split(",") if o.strip()]
    if schema is None and task is not None and task.json_schema is not None:
        if not isinstance(task.json_schema, dict):
            raise TunesmithError(
                "Cannot synthesize data",
                [
                    Problem(
                        "task.json_schema",
                        "is a file path; synthesize takes the schema itself",
                        "pass schema=load_schema(cfg, project) (tunesmith.data.project)",
                    )
                ],
            )
        schema = task.json_schema
    usable = [r for r in seeds if usable_seed(r)]
    _check_arguments(seeds, usable, n, operators, few_shot, schema)
    fmt = ReplyFormat.of(task, schema, usable)
    task_system = task.system_prompt if task is not None else None

    def system_of(job: Job) -> str | None:
        own = _system_of(job.seed)
        return task_system or (str(own.get("content") or "") if own else None)

    jobs = plan_jobs(usable, n, operators, seed, few_shot)
    meter = Meter()
    # Without a cache, an in-memory one still spares repeated calls when a batch has to be redone case by case.
    memory = GenerationCache(":memory:") if cache is None else None
    run = _Runner(teacher, cache if cache is not None else memory, meter, max_new_tokens, batch_size)
    try:
        _write_messages(jobs, usable, teacher, system_of, run)
        _answer(jobs, teacher, system_of, fmt, run)
    finally:
        if memory is not None:
            memory.close()
    teacher_id = teacher_name(teacher)
    for job in jobs:
        if job.drop is None:
            job.record = _make_record(job, teacher_id, seed)
    generated = sum(j.drop is None for j in jobs)
    warnings = _doctor(jobs, fmt, near_dup_threshold) if generated else Counter()
    _dedup(jobs, usable, near_dup_threshold)
    kept = [j for j in jobs if j.drop is None]
    atomic_write_jsonl(out, (replace(j.record, source=str(out), line=i + 1).to_json() for i, j in enumerate(kept)))
    if rejected_out is not None:
        atomic_write_jsonl(rejected_out, (_rejected_row(j, teacher_id, seed) for j in jobs if j.drop))
    return _summary(
        jobs, n, generated, meter, warnings, teacher_id, len(seeds) - len(usable), out, time.perf_counter() - began
    )


def _rejected_row(job: Job, teacher_id: str, rng_seed: int) -> dict:
    rec = job.record
    if rec is None:  # dropped before it had a reply: what there is of it
        rec = Record(
            messages=[{"role": "user", "content": job.message}] if job.message else [],
            source="synthetic",
            line=job.index + 1,
            tags=job.tags,
            provenance={
                "synthetic": {
                    "teacher": teacher_id,
                    "seed": job.seed.where,
                    "operator": job.operator,
                    "job": job.index + 1,
                    "rng_seed": rng_seed,
                    **job.shas,
                }
            },
        )
    return {**rec.to_json(), "reasons": [{"code": job.drop[0], "message": job.drop[1]}]}


def _summary(
    jobs: list[Job],
    n: int,
    generated: int,
    meter: Meter,
    warnings: Counter,
    teacher_id: str,
    skipped: int,
    out: str | Path,
    wall: float,
) -> dict[str, Any]:
    dropped = Counter(j.drop[0] for j in jobs if j.drop)
    operators: dict[str, dict[str, int]] = {}
    for job in jobs:
        counts = operators.setdefault(job.operator, {"requested": 0, "kept": 0})
        counts["requested"] += 1
        counts["kept"] += job.drop is None
    priced = bool(meter.cost or meter.cached_cost)
    return {
        "requested": n,
        "generated": generated,
        "kept": n - sum(dropped.values()),
        "dropped": dict(sorted(dropped.items())),
        "problems": [
            {"job": j.index + 1, "seed": j.seed.where, "operator": j.operator, "reason": j.drop[0], "detail": j.drop[1]}
            for j in jobs
            if j.drop
        ],
        "operators": operators,
        "doctor_warnings": dict(sorted(warnings.items())),
        "teacher": teacher_id,
        "teacher_calls": meter.calls,
        "cache_hits": meter.cache_hits,
        "tokens_in": meter.tokens_in,
        "tokens_in_estimated": meter.tokens_in_estimated,
        "tokens_out": meter.tokens_out,
        "cost_usd": sum(meter.cost) if priced else None,
        "cached_cost_usd": sum(meter.cached_cost) if priced else None,
        "seeds_skipped": skipped,
        "wall_s": round(wall, 3),
        "out": str(out),
    }


def project_of(paths: list[Path], project: Path | None = None) -> Path | None:
    """The project a data command belongs to: `project`, else `paths` when it is one project directory."""
    return project or (paths[0] if len(paths) == 1 and (Path(paths[0]) / "tunesmith.yaml").exists() else None)


def teacher_backend(
    paths: list[Path],
    project: Path | None = None,
    teacher: str | None = None,
    adapter: Path | None = None,
    endpoint: str | None = None,
    endpoint_model: str | None = None,
    api_key_env: str | None = None,
    concurrency: int = 4,
    prices: tuple[float | None, float | None] = (None, None),
):
    """The teacher of `data distill` and `data synth`: an OpenAI-compatible endpoint, or a local model (default:
    the project's base model, `project_of(paths, project)`)."""
    from tunesmith.config import load_config
    from tunesmith.generate import backends
    from tunesmith.models import resolve_model

    if endpoint:
        if not endpoint_model:
            raise TunesmithError(
                "Missing endpoint model",
                [Problem("--endpoint-model", "required with --endpoint", "the model name the server serves")],
            )
        return backends.EndpointBackend(
            endpoint,
            endpoint_model,
            api_key_env,
            concurrency=concurrency,
            input_usd_per_mtok=prices[0],
            output_usd_per_mtok=prices[1],
        )
    home = project_of(paths, project)
    ref = teacher or (load_config(home)[0].model.base if home else "builtin:smollm2-135m-instruct")
    return backends.TransformersBackend(resolve_model(ref), adapter=adapter)


def synth_setup(paths: list[Path], project: Path | None = None):
    """(config, JSON Schema, generation cache file) of `data synth`: the project's (`project_of(paths, project)`),
    else tunesmith's defaults, no schema and the user-wide cache."""
    from tunesmith.config import Config, load_config
    from tunesmith.data.project import load_schema
    from tunesmith.models import cache_home

    home = project_of(paths, project)
    cfg = load_config(home)[0] if home else Config()
    schema = load_schema(cfg, home) if home else None
    cache_dir = (home / ".tunesmith" / "cache") if home else cache_home() / "cache"
    return cfg, schema, cache_dir / "generations.sqlite"
