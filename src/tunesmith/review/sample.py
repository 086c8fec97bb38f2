"""Sample scoring of a synthetic set: draw a seeded random sample, and estimate the whole set's pass rate from it.

    start_sample_review("data/synth.jsonl", "review/synth", fraction=0.1, seed=0)
    ...                                           # score it in the app: tunesmith review review/synth
    sample_summary("review/synth")                # {"pass_rate": 0.9, "ci_low": 0.77, "ci_high": 0.96, ...}

The sample is `fraction` of the set (default 10%), at least MIN_SAMPLE records (or the whole set when it is
smaller), drawn with `random.Random(seed)` in a random order, so any prefix of it is a random sample too.

An item passes when its rating is "keep", or a score of at least `min_score` (default 3 of 5); "reject" and lower
scores fail. The latest key wins: `2` then `k` is a keep. The pass rate of the whole set is estimated from the
decided items with a Wilson score interval (95% by default); sampling is without replacement, so the interval,
which ignores the finite-population correction, is slightly conservative. The set is accepted when the interval's
lower bound reaches `threshold` (default 0.7) and rejected otherwise; `mix` then acts on that verdict.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from statistics import NormalDist

from tunesmith.data.formats import load_records
from tunesmith.errors import Problem, TunesmithError
from tunesmith.files import atomic_write_json, file_sha256
from tunesmith.review.state import (
    SampleItem,
    SampleSource,
    SampleState,
    is_decided,
    load_review,
    load_state,
    now,
    save_state,
    state_path,
)

DEFAULT_FRACTION = 0.1
MIN_SAMPLE = 5
MIN_SCORE = 3
THRESHOLD = 0.7
SUMMARY_FILE = "summary.json"


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """(low, high): the Wilson score interval of a binomial proportion; (0, 1) when n is 0. Unlike the normal
    approximation it stays inside [0, 1] and is sensible for 0/n and n/n, which small review samples often are."""
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At 0/n and n/n a bound is exactly 0 or 1; the formula leaves rounding dust there.
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == n else min(1.0, center + half)
    return low, high


def sample_size(records: int, fraction: float) -> int:
    """How many records to review: `fraction` of them rounded up, at least MIN_SAMPLE, at most all."""
    return min(records, max(MIN_SAMPLE, math.ceil(round(fraction * records, 9))))


def passes(item: SampleItem, min_score: int = MIN_SCORE) -> bool:
    """Kept, or scored at least `min_score`."""
    rating = item.decision.rating
    return rating == "keep" or (isinstance(rating, int) and rating >= min_score)


def _check_params(fraction: float, min_score: int, threshold: float) -> None:
    problems = []
    if not 0 < fraction <= 1:
        problems.append(Problem("fraction", f"{fraction} is not in (0, 1]", "e.g. 0.1 reviews 10% of the set"))
    if not 1 <= min_score <= 5:
        problems.append(Problem("min_score", f"{min_score} is not a score 1-5", "e.g. 3"))
    if not 0 <= threshold <= 1:
        problems.append(Problem("threshold", f"{threshold} is not a pass rate in [0, 1]", "e.g. 0.7"))
    if problems:
        raise TunesmithError("Invalid sample review settings", problems)


def start_sample_review(
    synth_path: str | Path,
    review_dir: str | Path,
    fraction: float = DEFAULT_FRACTION,
    seed: int = 0,
    min_score: int = MIN_SCORE,
    threshold: float = THRESHOLD,
) -> dict:
    """Draw the sample of `synth_path` (chat records, `messages` or any format tunesmith reads) into `review_dir`
    and return its summary. Starting again with the same set, fraction and seed resumes the existing review;
    anything else in an existing review directory is an error (a review is never overwritten)."""
    _check_params(fraction, min_score, threshold)
    synth_path = Path(synth_path).resolve()
    records = load_records([synth_path])
    sha = file_sha256(synth_path)
    if state_path(review_dir).exists():
        return _resume(review_dir, synth_path, sha, fraction, seed)
    no_reply = [r.where for r in records if r.final_assistant_index() is None]
    if no_reply:
        raise TunesmithError.capped(
            f"{len(no_reply)} record(s) have no reply to review",
            [Problem(w, "no assistant turn", "a synthetic record ends with the assistant's reply") for w in no_reply],
        )
    picked = random.Random(seed).sample(range(len(records)), sample_size(len(records), fraction))
    items = [
        SampleItem(
            id=f"r{i}", index=i, where=records[i].where, hash=records[i].content_hash(), messages=records[i].messages
        )
        for i in picked
    ]
    source = SampleSource(
        path=str(synth_path),
        sha256=sha,
        records=len(records),
        fraction=fraction,
        min_score=min_score,
        threshold=threshold,
    )
    state = SampleState(format=1, kind="sample", created=now(), seed=seed, source=source, items=items)
    save_state(review_dir, state)
    return write_sample_summary(review_dir, state)


def _resume(review_dir: str | Path, synth_path: Path, sha: str, fraction: float, seed: int) -> dict:
    state = load_state(review_dir)[0]
    same = (
        state.kind == "sample"
        and state.source.sha256 == sha
        and state.source.fraction == fraction
        and state.seed == seed
    )
    if not same:
        what = (
            f"a sample of {state.source.path} (fraction {state.source.fraction}, seed {state.seed})"
            if state.kind == "sample"
            else "an A/B preference review"
        )
        raise TunesmithError(
            "A different review exists there",
            [
                Problem(
                    str(state_path(review_dir)),
                    f"it holds {what}, not a sample of {synth_path} (fraction {fraction}, seed {seed})",
                    "continue it (tunesmith review DIR), or use another review directory",
                )
            ],
        )
    return summarize_sample(state)


def summarize_sample(
    state: SampleState, min_score: int | None = None, threshold: float | None = None, confidence: float = 0.95
) -> dict:
    """The review's counts and the estimated pass rate of the whole set with its Wilson interval; the verdict
    (accept / reject) compares the interval's lower bound with `threshold` (None until something is decided)."""
    min_score = state.source.min_score if min_score is None else min_score
    threshold = state.source.threshold if threshold is None else threshold
    decided = [it for it in state.items if is_decided(it)]
    ratings = [it.decision.rating for it in decided]
    passed = sum(passes(it, min_score) for it in decided)
    out = {
        "kind": "sample",
        "source": state.source.path,
        "population": state.source.records,
        "sampled": len(state.items),
        "decided": len(decided),
        "undecided": len(state.items) - len(decided),
        "complete": len(decided) == len(state.items),
        "passed": passed,
        "kept": ratings.count("keep"),
        "rejected": ratings.count("reject"),
        "scores": {str(s): ratings.count(s) for s in range(1, 6)},
        "edited": sum(1 for it in state.items if it.decision.edited is not None),
        "min_score": min_score,
        "threshold": threshold,
        "confidence": confidence,
        "interval": "wilson",
        "fraction": state.source.fraction,
        "seed": state.seed,
        "pass_rate": None,
        "ci_low": None,
        "ci_high": None,
        "verdict": None,
    }
    if decided:
        low, high = wilson_interval(passed, len(decided), confidence)
        out.update(
            pass_rate=passed / len(decided),
            ci_low=low,
            ci_high=high,
            verdict="accept" if low >= threshold else "reject",
        )
    return out


def sample_summary(
    review_dir: str | Path, min_score: int | None = None, threshold: float | None = None, confidence: float = 0.95
) -> dict:
    """`summarize_sample` of the sample review in `review_dir` (journal included)."""
    state = load_review(review_dir, "sample")
    return summarize_sample(state, min_score, threshold, confidence)


def write_sample_summary(review_dir: str | Path, state: SampleState) -> dict:
    """Write `summary.json` (atomically) next to the state and return it."""
    summary = summarize_sample(state)
    atomic_write_json(Path(review_dir) / SUMMARY_FILE, summary)
    return summary
