"""Paired statistics for base-vs-tuned comparisons: bootstrap intervals, McNemar's exact test, and a blind
preference's win rate.

Both models answer the same cases, so intervals come from resampling cases (the pair stays together).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any


def mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def bootstrap_delta(
    base: Sequence[float], tuned: Sequence[float], samples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(delta, low, high): mean(tuned - base) with a paired percentile bootstrap interval. For pass/fail outcomes
    (every value 0 or 1) the interval is widened to cover Newcombe's score interval for paired proportions
    (`paired_score_interval`): on a handful of cases the bootstrap collapses (six cases passed on both sides give
    [0, 0], which "stays within 2 points" of anything), the score interval does not (-0.39 to +0.39 there)."""
    if len(base) != len(tuned):
        raise ValueError("paired samples must have equal length")
    n = len(base)
    if n == 0:
        return 0.0, 0.0, 0.0
    diffs = [t - b for b, t in zip(base, tuned)]
    low, high = bootstrap_mean_interval(diffs, samples, confidence, seed)
    if _pass_fail(base, tuned):
        score_low, score_high = paired_score_interval(base, tuned, confidence)
        low, high = min(low, score_low), max(high, score_high)
    return sum(diffs) / n, low, high


def bootstrap_mean_interval(
    values: Sequence[float], samples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of `values` (not empty)."""
    n = len(values)
    rng = random.Random(seed)
    stats = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(samples))
    alpha = (1 - confidence) / 2
    return stats[int(math.floor(alpha * (samples - 1)))], stats[int(math.ceil((1 - alpha) * (samples - 1)))]


def paired_score_interval(
    base: Sequence[float], tuned: Sequence[float], confidence: float = 0.95
) -> tuple[float, float]:
    """Newcombe's hybrid score interval (his method 10, 1998) for the difference of two paired proportions,
    mean(tuned) - mean(base) on pass/fail outcomes: Wilson intervals of each side, combined with the correlation of
    the pairs. It keeps its width where a bootstrap over few cases has none."""
    from scipy.stats import binomtest

    n = len(base)
    a, b, c, d = pair_counts(base, tuned)
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = binomtest(a + b, n).proportion_ci(confidence, method="wilson")
    l2, u2 = binomtest(a + c, n).proportion_ci(confidence, method="wilson")
    spread = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(spread) if spread else 0.0
    below = math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    above = math.sqrt(max(0.0, (u2 - p2) ** 2 - 2 * phi * (u2 - p2) * (p1 - l1) + (p1 - l1) ** 2))
    return p2 - p1 - below, p2 - p1 + above


def paired_direction(
    base: Sequence[float], tuned: Sequence[float], low: float, high: float, confidence: float = 0.95
) -> tuple[int, float]:
    """(direction, McNemar's p) of a paired change whose bootstrap interval is [low, high]: +1 when tuned is
    significantly above base, -1 below, 0 neither. The interval must clear zero and, for pass/fail outcomes (every
    value 0 or 1), McNemar's exact test must agree: on a handful of cases the interval collapses (one case fixed of
    one gives [1, 1]). The p-value is on the outcomes read as pass/fail."""
    p = mcnemar_exact([bool(x) for x in base], [bool(y) for y in tuned])
    side = 1 if low > 0 else -1 if high < 0 else 0
    if side and _pass_fail(base, tuned) and p >= 1 - confidence:
        side = 0
    return side, p


def paired_change(
    base: Sequence[float], tuned: Sequence[float], samples: int = 2000, confidence: float = 0.95
) -> tuple[float, float, float, int, float]:
    """(delta, low, high, direction, McNemar's p) of a paired change: `bootstrap_delta`'s interval and
    `paired_direction`'s rule on it, the one reading every comparison of base and tuned outcomes shares."""
    delta, low, high = bootstrap_delta(base, tuned, samples, confidence)
    direction, p = paired_direction(base, tuned, low, high, confidence)
    return delta, low, high, direction, p


def _pass_fail(base: Sequence[float], tuned: Sequence[float]) -> bool:
    """Every outcome is 0 or 1."""
    return set(base) | set(tuned) <= {0.0, 1.0}


def mcnemar_exact(base: Sequence[bool], tuned: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value on paired pass/fail outcomes (binomial test on the discordant pairs)."""
    _, b, c, _ = pair_counts(base, tuned)
    return sign_test(b, c)


def pair_counts(base: Sequence[float], tuned: Sequence[float]) -> tuple[int, int, int, int]:
    """(both passed, base only, tuned only, neither) over paired pass/fail outcomes."""
    counts = Counter((bool(x), bool(y)) for x, y in zip(base, tuned))
    return counts[True, True], counts[True, False], counts[False, True], counts[False, False]


def sign_test(b: int, c: int) -> float:
    """Two-sided exact sign test: the p-value of a split as uneven as `b` against `c` when either side is a coin
    toss (McNemar on discordant pairs; wins against losses, ties left out)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def preference_counts(judged: Sequence[str]) -> dict[str, int]:
    """{wins, losses, ties} of judged preference outcomes ("win", "loss" or "tie": B against A)."""
    return {"wins": judged.count("win"), "losses": judged.count("loss"), "ties": judged.count("tie")}


def preference(outcomes: Sequence[str], samples: int = 2000, confidence: float = 0.95) -> dict[str, Any]:
    """A preference read off judged outcomes ("win", "loss", "tie", or "error" where judging failed): `outcomes`
    as given, how many were judged, the counts, and B's win rate with its interval and verdict."""
    judged = [o for o in outcomes if o != "error"]
    return {
        "judged": len(judged),
        **preference_counts(judged),
        "outcomes": list(outcomes),
        **win_rate(judged, samples, confidence),
    }


def win_rate(judged: Sequence[str], samples: int = 2000, confidence: float = 0.95) -> dict[str, float | str]:
    """B's win rate over judged outcomes (a tie counts half) with its bootstrap interval, and the verdict: better or
    worse when the interval lies above or below one half and the exact sign test on wins against losses agrees
    (one judged win alone gives the interval [1, 1]). Empty when nothing was judged."""
    scores = [1.0 if o == "win" else 0.0 if o == "loss" else 0.5 for o in judged]
    if not scores:
        return {}
    rate = sum(scores) / len(scores)
    low, high = bootstrap_mean_interval(scores, samples, confidence)
    verdict = "better" if low > 0.5 else "worse" if high < 0.5 else "no significant difference"
    if sign_test(judged.count("win"), judged.count("loss")) >= 1 - confidence:
        verdict = "no significant difference"
    return {"win_rate": rate, "ci_low": low, "ci_high": high, "verdict": verdict}
