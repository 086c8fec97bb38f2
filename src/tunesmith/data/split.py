"""A leakage-free split: seeded, stratified by label, and never splitting one input across sides.

    train, heldout = split_records(records, fraction=0.2, seed=42, label_of=lambda r: ...)
    split = three_way_split(kept, cfg.data, label_of, clusters, test=None, validation=None)

Three sets: `train`; `validation`, on which every choice made while training is taken (the checkpoint kept, early
stopping, the recipe search); and the held-out `test` set, read once, at the end, for the gate. A user's own test
or validation files replace the split-off ones; training records that repeat one of their inputs are taken out of
training and reported as leakage.

Conversations whose user input is the same (after normalizing case, punctuation and whitespace) form one group
(or, with `groups_of`, whole near-duplicate clusters do), and a group goes wholly to one side, so the held-out set
never contains a prompt the model was trained on.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from tunesmith.data.consistency import json_object
from tunesmith.data.dedup import input_key, input_text, near_duplicate_pairs
from tunesmith.data.findings import Code, Finding, Severity
from tunesmith.data.records import Record


def reply_label(rec: Record, field: str | None) -> str | None:
    """The stratification label: a field of a JSON reply, the whole reply (`label`), or None."""
    if not field:
        return None
    reply = rec.reply or ""
    if field == "label":
        return reply.strip()
    obj = json_object(reply)  # cached: the reply checks parsed the same text a moment ago
    value = obj.get(field) if obj is not None else None
    return None if value is None else str(value)


class ReplyLabel:
    """`reply_label` bound to a field, as a picklable callable (a lambda cannot cross to a worker process)."""

    def __init__(self, field: str | None) -> None:
        self.field = field

    def __call__(self, rec: Record) -> str | None:
        return reply_label(rec, self.field)


def split_records(
    records: list[Record],
    fraction: float = 0.2,
    seed: int = 42,
    label_of: Callable[[Record], str | None] = lambda r: None,
    groups_of: list | None = None,
) -> tuple[list[Record], list[Record]]:
    """Split into (train, held-out). Stratified per label (`held_out_counts`); a group stays on one side.

    Groups are equal inputs by default; pass `groups_of` (a group id per record, e.g. near-duplicate clusters from
    `tunesmith.data.dedup.near_duplicate_clusters`) to keep whole clusters together.
    """
    groups: dict[str, list[Record]] = defaultdict(list)
    for i, rec in enumerate(records):
        groups[str(groups_of[i]) if groups_of is not None else input_key(rec)].append(rec)
    strata: dict[str, list[list[Record]]] = defaultdict(list)
    for members in groups.values():
        strata[str(label_of(members[0]))].append(members)
    rng = random.Random(seed)
    counts = held_out_counts({label: len(bucket) for label, bucket in strata.items()}, fraction, seed)
    train, heldout = [], []
    for label in sorted(strata):
        bucket = strata[label]
        rng.shuffle(bucket)
        for i, members in enumerate(bucket):
            (heldout if i < counts[label] else train).extend(members)
    order = {id(r): i for i, r in enumerate(records)}
    return sorted(train, key=lambda r: order[id(r)]), sorted(heldout, key=lambda r: order[id(r)])


def held_out_counts(sizes: dict[str, int], fraction: float, seed: int) -> dict[str, int]:
    """Groups to hold out per label (`sizes`: groups per label). The total is `fraction` of all groups, rounded half
    up and at least one where there are two groups or more; each label gets its share rounded down, and the rest go
    one each to the labels with the largest remainders (ties in a seeded order). Rounding label by label held out
    nothing where every label had one group (a JSON field such as a vendor's name) and half where each had two."""
    total = sum(sizes.values())
    target = math.floor(total * fraction + 0.5)
    if total >= 2 and fraction > 0:
        target = min(max(target, 1), total - 1)
    counts = {label: math.floor(n * fraction) for label, n in sizes.items()}
    labels = sorted(sizes)
    random.Random(f"{seed}-held-out").shuffle(labels)
    labels.sort(key=lambda label: counts[label] - sizes[label] * fraction)  # largest remainder first; stable
    for label in labels[: max(0, target - sum(counts.values()))]:
        counts[label] += 1
    return counts


def leakage(train: list[Record], heldout: list[Record], threshold: float = 0.8) -> list:
    """LEAKAGE findings: held-out records whose input equals or nearly equals a training input."""
    texts = [input_text(r) for r in train] + [input_text(r) for r in heldout]
    n = len(train)
    seen = set()
    out = []
    for i, j, score in near_duplicate_pairs(texts, threshold):
        if i < n <= j and j not in seen:
            seen.add(j)
            out.append(
                Finding(
                    Code.LEAKAGE,
                    Severity.ERROR,
                    heldout[j - n].where,
                    "messages",
                    f"held-out input is {score:.0%} similar to training input {train[i].where}",
                    "keep near-duplicates on one side (tunesmith's split does this)",
                )
            )
    return out


@dataclass
class ThreeWaySplit:
    """Train, validation and test records, with the leakage findings that shaped them."""

    train: list[Record]
    validation: list[Record]
    test: list[Record]
    findings: list = field(default_factory=list)  # LEAKAGE findings: training twins of test/validation inputs


def three_way_split(
    kept: list[Record],
    data,
    label_of: Callable[[Record], str | None],
    clusters: list,
    test: list[Record] | None = None,
    validation: list[Record] | None = None,
) -> ThreeWaySplit:
    """Split `kept` (near-duplicate `clusters` kept whole) into train / validation / test by `data` (the
    `DataConfig`): `data.heldout_fraction` goes to test unless `test` records are given, then
    `data.validation_fraction` of the rest (at most `data.validation_max`) to validation unless `validation` records
    are given. Training records whose input equals or nearly equals a given test or validation input are dropped
    and reported."""
    group = dict(zip(map(id, kept), clusters))
    train_side = kept
    if test is None:
        train_side, test = split_records(kept, data.heldout_fraction, data.seed, label_of, clusters)
    # Inputs of a user's own test or validation files never stay in training (nor in the validation split).
    train_side, findings = drop_twins(train_side, _given(test, validation or [], kept), data.near_dup_threshold)
    if validation is None:
        share = validation_share(len(train_side), data.validation_fraction, data.validation_max)
        validation = []
        if share:
            train_side, validation = split_records(
                train_side, share, data.seed + 1, label_of, [group[id(r)] for r in train_side]
            )
    return ThreeWaySplit(train_side, validation, test, findings)


def _given(test: list[Record], validation: list[Record], kept: list[Record]) -> list[Record]:
    """The test and validation records that did not come from `kept` (a user's own files)."""
    ours = set(map(id, kept))
    return [r for r in test + validation if id(r) not in ours]


def validation_share(n_train_side: int, fraction: float, cap: int) -> float:
    """The share of the training side that goes to validation: `fraction`, capped at `cap` records."""
    if not fraction or n_train_side < 2:
        return 0.0
    return min(fraction, cap / n_train_side)


def drop_twins(train: list[Record], others: list[Record], threshold: float = 0.8) -> tuple[list[Record], list]:
    """`train` without the records whose input equals or nearly equals one of `others` (a test or validation
    file's), and a LEAKAGE finding (file:line of both) for each record dropped."""
    if not others or not train:
        return train, []
    n = len(train)
    by_key = {input_key(r): r for r in others}
    twins: dict[int, tuple[Record, float]] = {
        i: (by_key[input_key(r)], 1.0) for i, r in enumerate(train) if input_key(r) in by_key
    }
    texts = [input_text(r) for r in train] + [input_text(r) for r in others]
    for i, j, score in near_duplicate_pairs(texts, threshold):
        if i < n <= j and i not in twins:
            twins[i] = (others[j - n], score)
    findings = [
        Finding(
            Code.LEAKAGE,
            Severity.WARNING,
            train[i].where,
            "messages",
            f"training input is {score:.0%} similar to {other.where}; taken out of training",
            "a test or validation input must never be trained on; drop it from one of the files to keep this record",
        )
        for i, (other, score) in sorted(twins.items())
    ]
    return [r for i, r in enumerate(train) if i not in twins], findings


def split_heldout(
    records: list[Record],
    fraction: float = 0.2,
    seed: int = 42,
    stratify_by: str | None = None,
    near_dup_threshold: float = 0.8,
) -> tuple[list[Record], list[Record], list]:
    """`data split`: (train, held-out, leaks) — a stratified held-out share whose near-duplicate clusters never
    straddle the split, and what still leaks across it."""
    from tunesmith.data.dedup import near_duplicate_clusters

    train, heldout = split_records(
        records,
        fraction,
        seed,
        lambda r: reply_label(r, stratify_by),
        near_duplicate_clusters(records, near_dup_threshold),
    )
    return train, heldout, leakage(train, heldout, near_dup_threshold)
