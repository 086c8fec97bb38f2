"""A leakage-free held-out split: seeded, stratified by label, and never splitting one input across sides.

    train, heldout = split_records(records, fraction=0.2, seed=42, label_of=lambda r: ...)

Conversations whose user input is the same (after normalizing case, punctuation and whitespace) form one group
(or, with `groups_of`, whole near-duplicate clusters do), and a group goes wholly to one side, so the held-out set
never contains a prompt the model was trained on.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Callable

from tunesmith.data.dedup import input_key
from tunesmith.data.records import Record


def reply_label(rec: Record, field: str | None) -> str | None:
    """The stratification label: a field of a JSON reply, the whole reply (`label`), or None."""
    if not field:
        return None
    from tunesmith.data.consistency import json_object

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


def split_records(records: list[Record], fraction: float = 0.2, seed: int = 42,
                  label_of: Callable[[Record], str | None] = lambda r: None,
                  groups_of: list | None = None) -> tuple[list[Record], list[Record]]:
    """Split into (train, held-out). Stratified per label; a group stays on one side.

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
    train, heldout = [], []
    for label in sorted(strata):
        bucket = strata[label]
        rng.shuffle(bucket)
        # Round to nearest, but a label with 2+ groups always has one case held out so it is measured.
        n_out = round(len(bucket) * fraction)
        if n_out == 0 and len(bucket) >= 2:
            n_out = 1
        for i, members in enumerate(bucket):
            (heldout if i < n_out else train).extend(members)
    order = {id(r): i for i, r in enumerate(records)}
    return sorted(train, key=lambda r: order[id(r)]), sorted(heldout, key=lambda r: order[id(r)])


def leakage(train: list[Record], heldout: list[Record], threshold: float = 0.8) -> list:
    """LEAKAGE findings: held-out records whose input equals or nearly equals a training input."""
    from tunesmith.data.checks import Code, Finding, Severity
    from tunesmith.data.dedup import input_text, near_duplicate_pairs

    texts = [input_text(r) for r in train] + [input_text(r) for r in heldout]
    n = len(train)
    seen = set()
    out = []
    for i, j, score in near_duplicate_pairs(texts, threshold):
        if i < n <= j and j not in seen:
            seen.add(j)
            out.append(Finding(Code.LEAKAGE, Severity.ERROR, heldout[j - n].where, "messages",
                               f"held-out input is {score:.0%} similar to training input {train[i].where}",
                               "keep near-duplicates on one side (tunesmith's split does this)"))
    return out
