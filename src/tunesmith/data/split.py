"""A leakage-free held-out split: seeded, stratified by label, and never splitting one input across sides.

    train, heldout = split_records(records, fraction=0.2, seed=42, label_of=lambda r: ...)

Conversations whose user input is the same (after normalizing case and whitespace) form one group, and a group
goes wholly to one side, so the held-out set never contains a prompt the model was trained on.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import defaultdict
from typing import Callable

from tunesmith.data.records import Record


def input_key(rec: Record) -> str:
    """Normalized hash of what the model is asked (non-system turns before the final reply)."""
    parts = [re.sub(r"\s+", " ", str(m.get("content", "")).strip().lower())
             for m in rec.prompt if m.get("role") != "system"]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def reply_label(rec: Record, field: str | None) -> str | None:
    """The stratification label: a field of a JSON reply, the whole reply (`label`), or None."""
    if not field:
        return None
    reply = rec.reply or ""
    if field == "label":
        return reply.strip()
    try:
        obj = json.loads(reply)
    except json.JSONDecodeError:
        return None
    value = obj.get(field) if isinstance(obj, dict) else None
    return None if value is None else str(value)


def split_records(records: list[Record], fraction: float = 0.2, seed: int = 42,
                  label_of: Callable[[Record], str | None] = lambda r: None) -> tuple[list[Record], list[Record]]:
    """Split into (train, held-out). Stratified per label; groups of equal inputs stay together."""
    groups: dict[str, list[Record]] = defaultdict(list)
    for rec in records:
        groups[input_key(rec)].append(rec)
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
