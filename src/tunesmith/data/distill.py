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

from tunesmith.data.records import Record


def distill_records(records: list[Record], backend, teacher_system: str | None = None, max_new_tokens: int = 256,
                    batch_size: int = 16, cache=None) -> tuple[list[Record], list[str]]:
    """(records with the teacher's final replies, errors): a record whose generation failed is left out and its
    error (with file:line) returned; prompts never include the old reply."""
    from tunesmith.eval.cache import generate_cached
    from tunesmith.eval.suite import EvalCase

    cases = []
    for i, rec in enumerate(records):
        prompt = rec.prompt
        shown = prompt
        if teacher_system:
            shown = [{"role": "system", "content": teacher_system}] + [m for m in prompt if m["role"] != "system"]
        cases.append(EvalCase(id=str(i), messages=shown, tools=rec.tools))
    decoding = {"max_new_tokens": max_new_tokens, "no_repeat_ngram_size": None, "greedy": True}
    gens = generate_cached(backend, cases, decoding, cache, batch_size=batch_size, label="Distilling")
    out, errors = [], []
    for rec, gen in zip(records, gens):
        if gen.error or not gen.output.strip():
            errors.append(f"{rec.where}: {gen.error or 'the teacher emitted nothing'}")
            continue
        # The student sees the record's own prompt (with its own system prompt, if any), not the teacher's.
        messages = rec.prompt + [{"role": "assistant", "content": gen.output}]
        out.append(Record(messages=messages, source=rec.source, line=rec.line, tools=rec.tools, tags=list(rec.tags),
                          id=rec.id, format=rec.format, provenance={**rec.provenance, "distilled": {
                              "teacher": teacher_name(backend), "teacher_system": teacher_system}}))
    return out, errors


def teacher_name(backend) -> str:
    """What produced the replies, for provenance: the endpoint and model, or the local model's identity."""
    import json

    who = json.loads(backend.fingerprint)
    return who.get("model") if "endpoint" not in who else f"{who['endpoint']} {who['model']}"
