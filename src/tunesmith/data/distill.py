"""Distillation data: the same prompts, answered by a teacher — the base model itself (self-distillation), a larger
local model, or an OpenAI-compatible endpoint.

    records = distill_records(records, backend, teacher_system="Answer in JSON.", max_new_tokens=256)

Two uses. Context distillation: a teacher prompted with instructions the student will not see (`teacher_system`)
writes the replies, so training moves the behaviour into the weights. Keeping the rest: the base's own replies
to general prompts, mixed into training (`train.general_data` + `train.general_share`), hold general behaviour in
place while the task is learned. Each record keeps its source and line, and gains the teacher and the system
prompt it was given in `meta.distilled`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tunesmith.data.records import Record
from tunesmith.errors import Problem, TunesmithError
from tunesmith.generate.backends import Prompt
from tunesmith.generate.cache import generate_cached
from tunesmith.generate.decoding import Decoding

SELF = "builtin:self"  # train.general_data entry: the base model's own replies to GENERAL_PROMPTS
GENERAL_PROMPTS = Path(__file__).parent / "builtin" / "general_prompts.jsonl"
ANCHOR_TOKENS = 64  # the start of a reply is where a tuned model drifts (into the task's format); 64 tokens hold it


def distill_records(
    records: list[Record],
    backend,
    teacher_system: str | None = None,
    max_new_tokens: int = 256,
    batch_size: int = 16,
    cache=None,
) -> tuple[list[Record], list[str]]:
    """(records with the teacher's final replies, errors): a record whose generation failed is left out and its
    error (with file:line) returned; prompts never include the old reply."""
    cases = []
    for i, rec in enumerate(records):
        prompt = rec.prompt
        shown = prompt
        if teacher_system:
            shown = [{"role": "system", "content": teacher_system}] + [m for m in prompt if m["role"] != "system"]
        cases.append(Prompt(id=str(i), messages=shown, tools=rec.tools, where=rec.where))
    gens = generate_cached(backend, cases, Decoding(max_new_tokens), cache, batch_size=batch_size, label="Distilling")
    out, errors = [], []
    for rec, gen in zip(records, gens):
        if gen.error or not gen.output.strip():
            errors.append(f"{rec.where}: {gen.error or 'the teacher emitted nothing'}")
            continue
        # The student sees the record's own prompt (with its own system prompt, if any), not the teacher's.
        messages = rec.prompt + [{"role": "assistant", "content": gen.output}]
        # A reply cut at the token limit is marked unfinished: training learns its text, not to stop there.
        out.append(
            Record(
                messages=messages,
                source=rec.source,
                line=rec.line,
                tools=rec.tools,
                tags=list(rec.tags),
                id=rec.id,
                format=rec.format,
                provenance={
                    **rec.provenance,
                    "distilled": {"teacher": teacher_name(backend), "teacher_system": teacher_system},
                    **({"unfinished": True} if gen.hit_limit else {}),
                },
            )
        )
    return out, errors


def teacher_name(backend) -> str:
    """What produced the replies, for provenance: the endpoint and model, or the local model's identity."""
    import json

    who = json.loads(backend.fingerprint)
    return who.get("model") if "endpoint" not in who else f"{who['endpoint']} {who['model']}"


def general_prompts() -> list[Record]:
    """The built-in general prompts (1,000 everyday questions and requests: explanations, writing, advice, code,
    arithmetic, rewriting), written apart from the general probe's prompts so the probe still measures forgetting.
    In the order they are used: the first 200 (the built-in set of earlier versions), then 800 more of every
    kind, shuffled, so a small data set's mix takes the first ones and a large one's all of them."""
    import json

    lines = GENERAL_PROMPTS.read_text(encoding="utf-8").splitlines()
    return [
        Record(messages=json.loads(line)["messages"], source=f"builtin:{GENERAL_PROMPTS.name}", line=i)
        for i, line in enumerate(lines, 1)
        if line.strip()
    ]


def general_stand_ins(count: int) -> list[Record]:
    """The first `count` built-in general prompts, each with a stand-in reply of ANCHOR_TOKENS words where the
    base model's own reply is not made yet: what `tunesmith cost` counts for `builtin:self` without generating (the
    built-in model's replies mostly reach that limit: 874 of 1,000)."""
    filler = {"role": "assistant", "content": " ".join(["word"] * ANCHOR_TOKENS)}
    return [
        replace(r, messages=[*r.messages, filler], provenance={**r.provenance, "unfinished": True})
        for r in general_prompts()[:count]
    ]


def self_distilled_general(
    backend, cache=None, max_new_tokens: int = ANCHOR_TOKENS, count: int | None = None
) -> list[Record]:
    """`builtin:self`: the base model's own greedy replies to the first `count` built-in general prompts (all by
    default), the first `max_new_tokens` of each (a cut reply is marked unfinished). Mixed into training
    (`train.general_share`, which marks them `general`), they hold general behaviour in place: on Banking77 the
    model tuned without them answered everyday requests with `{"intent": ...}` objects. A prompt the base leaves
    unanswered is skipped; none answered is an error."""
    prompts = general_prompts()[:count]
    records, errors = distill_records(prompts, backend, max_new_tokens=max_new_tokens, cache=cache)
    if not records:
        raise TunesmithError(
            "The base model answered none of the built-in general prompts",
            [
                Problem(
                    "train.general_data: builtin:self",
                    errors[0] if errors else "no replies",
                    "use your own general data (train.general_data: [files]) or set train.general_share: 0",
                )
            ],
        )
    return records
