"""The training file from real records and a reviewed synthetic set.

    summary = mix(["data/train.jsonl"], "data/synth.jsonl", "review/synth", "data/mixed.jsonl", max_share=0.5)

Only a sample of the synthetic set was reviewed, so the review acts on the set in two ways:

1. **The set as a whole** is judged by its estimated pass rate (see `tunesmith.review.sample`): it is accepted
   when the Wilson interval's lower bound reaches the threshold. A rejected set is an error, nothing is written,
   unless the user chooses to mix it anyway (`accept=True`). The review must be complete (every sampled item
   decided) either way; the synthetic file must be the one that was sampled (same SHA-256).
2. **The reviewed records** count individually: a sampled record that fails (rejected, or scored below
   `min_score`) is always dropped; one that passes is kept, with the reviewer's edited reply, if any, in place of
   its final assistant turn. Records nobody reviewed are kept as they are: the estimate vouches for them.

Mixing keeps every real record, in its order, then adds synthetic records up to a cap on their share of the final
file: at most `max_share / (1 - max_share)` synthetic records per real one (`max_share=0.5`: as many synthetic as
real). Reviewed, passing records are taken first (a person checked them), the rest by a seeded random choice; the
chosen ones follow the real records in the synthetic file's order. Every record keeps its provenance (`meta.source`,
`meta.line` and whatever `meta` it had); synthetic ones carry `meta.synthetic` (set to `true` when the file had
none), and reviewed ones `meta.review` (`rating`, `edited`, and the `original_reply` an edit replaced). The file
is written atomically.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

from tunesmith.data.formats import load_records
from tunesmith.data.records import Record
from tunesmith.errors import Problem, TunesmithError
from tunesmith.files import atomic_write_jsonl, file_sha256
from tunesmith.review.sample import passes, summarize_sample
from tunesmith.review.state import SampleItem, SampleState, load_review, state_path


def synthetic_cap(real: int, max_share: float, available: int) -> int:
    """How many synthetic records to add to `real` ones so they are at most `max_share` of the result."""
    if max_share >= 1:
        return available
    share = Fraction(max_share).limit_denominator(10**6)  # 0.3 is 3/10, not 0.29999...
    return min(available, math.floor(share * real / (1 - share)))


def mix(
    real_paths: Iterable[str | Path],
    synth_path: str | Path | None,
    review_dir: str | Path,
    out: str | Path,
    max_share: float = 0.5,
    seed: int = 0,
    min_score: int | None = None,
    threshold: float | None = None,
    accept: bool = False,
) -> dict:
    """Write the training file `out`: every real record plus the reviewed synthetic set's records up to
    `max_share` of the file (see the module docstring); returns a summary of what went in and why.
    `synth_path` None means the file the review sampled; `min_score` / `threshold` override the review's."""
    if not 0 <= max_share <= 1:
        raise TunesmithError(
            "Invalid mix",
            [
                Problem(
                    "max_share",
                    f"{max_share} is not a share in [0, 1]",
                    "e.g. 0.5: at most half of the training file synthetic",
                )
            ],
        )
    state = load_review(review_dir, "sample")
    review = summarize_sample(state, min_score, threshold)
    _check_review(review_dir, review, accept)
    synth_path = Path(synth_path if synth_path is not None else state.source.path)
    synth = _synthetic_records(synth_path, state, review_dir)
    real = load_records(real_paths)
    pool, dropped = _filter(state, synth, review["min_score"])
    reviewed = [p for p in pool if p[2] is not None]
    rest = [p for p in pool if p[2] is None]
    n = synthetic_cap(len(real), max_share, len(pool))
    rng = random.Random(seed)
    chosen = rng.sample(reviewed, n) if n <= len(reviewed) else reviewed + rng.sample(rest, n - len(reviewed))
    chosen.sort(key=lambda p: p[0])
    rows = [rec.to_json() for rec in real] + [_synthetic_row(rec, meta) for _, rec, meta in chosen]
    atomic_write_jsonl(out, rows)
    total = len(rows)
    return {
        "out": str(out),
        "records": total,
        "real": len(real),
        "synthetic": n,
        "synthetic_share": n / total if total else 0.0,
        "max_synthetic_share": max_share,
        "seed": seed,
        "synthetic_available": len(synth),
        "synthetic_eligible": len(pool),
        "capped": len(pool) - n,
        "dropped": dropped,
        "edited": sum(1 for _, _, m in chosen if m and m["edited"]),
        "reviewed_included": sum(1 for _, _, m in chosen if m is not None),
        "accepted_by": "review" if review["verdict"] == "accept" else "user",
        "review": review,
    }


def _check_review(review_dir: str | Path, review: dict, accept: bool) -> None:
    where = str(state_path(review_dir))
    if not review["complete"]:
        raise TunesmithError(
            "The review is not finished",
            [
                Problem(
                    where,
                    f"{review['undecided']} of {review['sampled']} sampled records are undecided",
                    f"finish it: tunesmith review {review_dir}",
                )
            ],
        )
    if review["verdict"] == "reject" and not accept:
        raise TunesmithError(
            "The synthetic set did not pass review",
            [
                Problem(
                    where,
                    f"estimated pass rate {review['pass_rate']:.2f} (95% interval {review['ci_low']:.2f}-"
                    f"{review['ci_high']:.2f}, {review['passed']} of {review['decided']} sampled records passed); "
                    f"the lower bound is below the threshold {review['threshold']}",
                    "improve the generator and review a new sample, review a larger sample (a narrower interval), "
                    "or mix it anyway (accept=True, --accept)",
                )
            ],
        )


def _synthetic_records(path: Path, state: SampleState, review_dir: str | Path) -> list[Record]:
    """The synthetic set, checked to be the file (and records) the sample was drawn from."""
    if not path.is_file() or file_sha256(path) != state.source.sha256:
        raise TunesmithError(
            "The synthetic set changed since it was sampled",
            [
                Problem(
                    str(path),
                    f"not the file reviewed in {state_path(review_dir)} (its SHA-256 differs)",
                    "mix the file that was reviewed, or start a new review of this one",
                )
            ],
        )
    records = load_records([path])
    for i, item in enumerate(state.items):
        if item.index >= len(records) or records[item.index].content_hash() != item.hash:
            raise TunesmithError(
                "Invalid review state",
                [
                    Problem(
                        f"{state_path(review_dir)} [items[{i}].index]",
                        f"record {item.index} of {path} is not the one reviewed",
                        "restore the index, or start a new review",
                    )
                ],
            )
    return records


def _filter(state: SampleState, synth: list[Record], min_score: int) -> tuple[list[tuple], dict]:
    """(pool of (index, record, review meta or None), dropped counts): failed sampled records left out, edits in."""
    by_index: dict[int, SampleItem] = {it.index: it for it in state.items}
    pool, dropped = [], {"rejected": 0, "below_min_score": 0}
    for i, rec in enumerate(synth):
        item = by_index.get(i)
        if item is None:
            pool.append((i, rec, None))
        elif not passes(item, min_score):
            dropped["rejected" if item.decision.rating == "reject" else "below_min_score"] += 1
        else:
            pool.append((i, *_reviewed(rec, item)))
    return pool, dropped


def _reviewed(rec: Record, item: SampleItem) -> tuple[Record, dict]:
    meta: dict = {"rating": item.decision.rating, "edited": item.decision.edited is not None}
    if item.decision.edited is None:
        return rec, meta
    last = rec.final_assistant_index()
    messages = [dict(m) for m in rec.messages]
    meta["original_reply"] = messages[last].get("content")
    messages[last]["content"] = item.decision.edited
    return Record(
        messages=messages,
        source=rec.source,
        line=rec.line,
        tools=rec.tools,
        tags=rec.tags,
        id=rec.id,
        format=rec.format,
        rejected=rec.rejected,
        provenance=dict(rec.provenance),
    ), meta


def _synthetic_row(rec: Record, review: dict | None) -> dict:
    row = rec.to_json()
    row["meta"].setdefault("synthetic", True)
    if review is not None:
        row["meta"]["review"] = review
    return row
