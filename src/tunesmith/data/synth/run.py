"""`synthesize`: a run from arguments to the written JSONL and its summary, step by step."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from tunesmith.data.distill import teacher_name
from tunesmith.data.records import Record
from tunesmith.data.synth.acceptance import check_records, drop_duplicates, make_record
from tunesmith.data.synth.generation import answer_messages, write_messages
from tunesmith.data.synth.plan import (
    OPERATORS,
    Job,
    plan_jobs,
    seed_system_message,
    usable_seed,
)
from tunesmith.data.synth.reply_format import ReplyFormat
from tunesmith.data.synth.summary import rejected_row, summary_of
from tunesmith.data.synth.teacher import Meter, Runner
from tunesmith.errors import Problem, TunesmithError
from tunesmith.files import atomic_write_jsonl
from tunesmith.generate.cache import GenerationCache
from tunesmith.schemas import schema_problem


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
    operators = _operator_names(operators)
    schema = _schema_of(task, schema)
    usable = [r for r in seeds if usable_seed(r)]
    _check_arguments(seeds, usable, n, operators, few_shot, schema)
    fmt = ReplyFormat.of(task, schema, usable)
    jobs = plan_jobs(usable, n, operators, seed, few_shot)
    meter = Meter()
    _ask_teacher(jobs, usable, fmt, _system_prompts(task), teacher, cache, meter, max_new_tokens, batch_size)
    teacher_id = teacher_name(teacher)
    generated, warnings = _accept(jobs, usable, fmt, teacher_id, seed, near_dup_threshold)
    _write(jobs, out, rejected_out, teacher_id, seed)
    skipped = len(seeds) - len(usable)
    return summary_of(jobs, n, generated, meter, warnings, teacher_id, skipped, out, time.perf_counter() - began)


def _operator_names(operators: list[str] | dict[str, float] | str) -> list[str] | dict[str, float]:
    """A comma-separated string ("typos,refuse", as a command line gives it) as a list; a list or dict as it is."""
    if isinstance(operators, str):
        return [o.strip() for o in operators.split(",") if o.strip()]
    return operators


def _schema_of(task, schema: dict | None) -> dict | None:
    """The schema given, else the task's inline `json_schema`; a schema file path is the caller's to load."""
    if schema is not None or task is None or task.json_schema is None:
        return schema
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
    return task.json_schema


def _check_arguments(
    seeds: list[Record], usable: list[Record], n: int, operators, few_shot: int, schema: dict | None
) -> None:
    """Every bad argument at once, in one `TunesmithError`."""
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


def _system_prompts(task) -> Callable[[Job], str | None]:
    """A job's system prompt for the teacher: the task's, else its seed's own."""
    task_system = task.system_prompt if task is not None else None

    def system_of(job: Job) -> str | None:
        own = seed_system_message(job.seed)
        return task_system or (str(own.get("content") or "") if own else None)

    return system_of


def _ask_teacher(
    jobs: list[Job],
    usable: list[Record],
    fmt: ReplyFormat,
    system_of: Callable[[Job], str | None],
    teacher,
    cache,
    meter: Meter,
    max_new_tokens: int,
    batch_size: int,
) -> None:
    """Both teacher phases over the jobs: a new message each, then its answer."""
    # Without a cache, an in-memory one still spares repeated calls when a batch has to be redone case by case.
    memory = GenerationCache(":memory:") if cache is None else None
    run = Runner(teacher, cache if cache is not None else memory, meter, max_new_tokens, batch_size)
    try:
        write_messages(jobs, usable, teacher, system_of, run)
        answer_messages(jobs, teacher, system_of, fmt, run)
    finally:
        if memory is not None:
            memory.close()


def _accept(
    jobs: list[Job], usable: list[Record], fmt: ReplyFormat, teacher_id: str, rng_seed: int, threshold: float
) -> tuple[int, Counter]:
    """Records made of the answered jobs, then the doctor and deduplication; returns (jobs the teacher completed in
    format, the counts of the doctor's warnings on the records it kept)."""
    for job in jobs:
        if job.drop is None:
            job.record = make_record(job, teacher_id, rng_seed)
    generated = sum(j.drop is None for j in jobs)
    warnings = check_records(jobs, fmt, threshold) if generated else Counter()
    drop_duplicates(jobs, usable, threshold)
    return generated, warnings


def _write(jobs: list[Job], out: str | Path, rejected_out: str | Path | None, teacher_id: str, rng_seed: int) -> None:
    """The kept records to `out`, renumbered by output line; the dropped jobs to `rejected_out` when given."""
    kept = [j for j in jobs if j.drop is None]
    atomic_write_jsonl(out, (replace(j.record, source=str(out), line=i + 1).to_json() for i, j in enumerate(kept)))
    if rejected_out is not None:
        atomic_write_jsonl(rejected_out, (rejected_row(j, teacher_id, rng_seed) for j in jobs if j.drop))
