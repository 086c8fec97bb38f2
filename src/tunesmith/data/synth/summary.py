"""What a run reports: the summary (kept, dropped by reason, per operator, teacher calls, tokens, cost) and the
rows of the rejected file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from tunesmith.data.records import Record
from tunesmith.data.synth.plan import (
    Job,
)
from tunesmith.data.synth.teacher import Meter


def rejected_row(job: Job, teacher_id: str, rng_seed: int) -> dict:
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


def summary_of(
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
