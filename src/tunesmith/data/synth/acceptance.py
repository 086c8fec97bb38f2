"""Acceptance of the generated records: each made into a `Record` with its provenance, then the data doctor
(errors drop a record) and deduplication against the real data and each other."""

from __future__ import annotations

from collections import Counter

from tunesmith.data.audit import run_checks
from tunesmith.data.coverage import reply_behavior
from tunesmith.data.dedup import exact_key, near_duplicate_clusters
from tunesmith.data.findings import Severity
from tunesmith.data.records import Record
from tunesmith.data.synth.plan import (
    Job,
    seed_system_message,
)
from tunesmith.data.synth.reply_format import ReplyFormat


def make_record(job: Job, teacher_id: str, rng_seed: int) -> Record:
    system = seed_system_message(job.seed)
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


def check_records(jobs: list[Job], fmt: ReplyFormat, threshold: float) -> Counter:
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


def drop_duplicates(jobs: list[Job], seeds: list[Record], threshold: float) -> None:
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
