"""Synthetic data: new conversations grown from the real ones by a teacher, each checked like real data.

    teacher = EndpointBackend("https://api.openai.com/v1", "gpt-4o-mini", api_key_env="OPENAI_API_KEY",
                              input_usd_per_mtok=0.15, output_usd_per_mtok=0.6)
    summary = synthesize(load_records(["data/train.jsonl"]), teacher, n=200, operators=["typos", "refuse"],
                         out=Path("data/synth.jsonl"), task=cfg.task, schema=load_schema(cfg, project),
                         cache=GenerationCache.of_project(project))

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

One module per concern, in the order a run goes: `plan.py` (operators, personas, the seeded jobs), `reply_format.py`
(what a reply must be), `prompts.py` (the teacher's prompts), `teacher.py` (the calls, their failures and their
cost), `candidates.py` (what the teacher wrote, cleaned and judged), `generation.py` (the two teacher phases),
`acceptance.py` (records, the data doctor, deduplication), `summary.py` (the summary and the rejected rows),
`run.py` (`synthesize`), `setup.py` (the teacher, config and cache the commands use).
"""

from tunesmith.data.synth.candidates import TEACHER_REFUSAL, clean_message, clean_reply
from tunesmith.data.synth.plan import OPERATORS, PERSONAS, TONES, Job, Operator, plan_jobs, usable_seed
from tunesmith.data.synth.prompts import BEHAVIOR_NOTES, RETRY_PREFIX, REWRITER, answer_case, retry_case, rewrite_case
from tunesmith.data.synth.reply_format import ReplyFormat
from tunesmith.data.synth.run import synthesize
from tunesmith.data.synth.setup import operator_mix, project_of, synth_setup, teacher_backend
from tunesmith.data.synth.teacher import Meter, prompt_tokens

__all__ = [
    "BEHAVIOR_NOTES",
    "OPERATORS",
    "PERSONAS",
    "RETRY_PREFIX",
    "REWRITER",
    "TEACHER_REFUSAL",
    "TONES",
    "Job",
    "Meter",
    "Operator",
    "ReplyFormat",
    "answer_case",
    "clean_message",
    "clean_reply",
    "operator_mix",
    "plan_jobs",
    "project_of",
    "prompt_tokens",
    "retry_case",
    "rewrite_case",
    "synth_setup",
    "synthesize",
    "teacher_backend",
    "usable_seed",
]
