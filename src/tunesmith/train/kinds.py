"""Rows of two kinds in one SFT training set: the task's, and general data mixed in against forgetting
(`train.general_data`).

    row[KIND_COLUMN] = True                          # build_dataset: this row is general data
    collate = with_kinds(collate)                    # the flags travel in the batch (the loss logged per kind)
    sampler = SpreadGeneral(sampler, flags, batch)   # general batches spread evenly through a pass

Length-grouped batching (transformers' `LengthGroupedSampler`) sorts each mega-batch of 50 batches by length, and
the general rows (longer, and without the task's system prompt) sort together: every mega-batch began with a run of
batches of general rows only (about 5 in a row at a 10% share). On 2,000 Banking77 queries the task's own training
loss jumped right after each such run (0.12 -> 0.55 at step 155 after general batches at steps 145-155). Spreading
keeps the batches as length grouping made them (little padding, one system prompt a batch) and places the general
ones evenly among the task's, so no run of them pulls the model off the task for several steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from tunesmith.config import Config

KIND_COLUMN = "general"  # a training row's flag: general data (True) or the task's (False)
KIND_BATCHING = ("grouped", "random")  # batches of whole rows, which can carry the flag (not padding-free or packed)


def spreads_general(cfg: Config) -> bool:
    """Whether `train.spread_general` changes a run's training order: SFT with grouped batches and general data
    mixed in, with the spreading on (anything else trains as it did before the switch)."""
    t = cfg.train
    return t.spread_general and mixes_general(cfg) and t.objective == "sft" and t.batching == "grouped"


def mixes_general(cfg: Config) -> bool:
    """Whether training mixes general data into the task's (`train.general_data` at a share above 0)."""
    return bool(cfg.train.general_data) and cfg.train.general_share > 0


def general_kl_skipped(cfg: Config) -> str | None:
    """Why `train.general_kl` does not act on this run's general rows, or None when it does (or is off). Its term
    needs SFT with an adapter (the base is the model with the adapter switched off), general data mixed in, batches
    of whole rows (which carry each row's kind) and one process; elsewhere the general rows train with
    cross-entropy on their replies, as with `general_kl: 0`, and the run says so."""
    t = cfg.train
    reasons = (
        (t.objective != "sft", f"objective {t.objective} has no general rows of its own"),
        (t.method == "full", "method full has no adapter to switch off for the base"),
        (not mixes_general(cfg), "no general data is mixed in"),
        (t.batching not in KIND_BATCHING, f"batching {t.batching} does not keep whole rows"),
        (t.nproc > 1 or bool(t.accelerate_config), "it runs in one training process"),
    )
    return next((why for hit, why in reasons if hit), None) if t.general_kl else None


def general_kl(cfg: Config) -> float:
    """The weight of the general rows' KL term in this run (0: cross-entropy on their replies)."""
    return 0.0 if general_kl_skipped(cfg) else cfg.train.general_kl


def spread_general(order: list[int], general: Sequence[bool], batch: int) -> list[int]:
    """`order` (row indices, `batch` rows a step) with its batches of mostly general rows spread evenly among the
    others. Each batch keeps its rows; the first batch stays first (length grouping puts the longest row there, so
    a run out of memory fails at once) and a last partial batch stays last (the batches keep their boundaries)."""
    full = len(order) // batch * batch
    batches = [order[i : i + batch] for i in range(batch, full, batch)]
    mostly_general = [2 * sum(general[i] for i in b) > len(b) for b in batches]
    task = [b for b, g in zip(batches, mostly_general) if not g]
    spread = [b for b, g in zip(batches, mostly_general) if g]
    if not task or not spread:
        return list(order)
    # each kind's batches at evenly spaced points of the pass, in their own order; a task batch first on a tie
    placed = [((i + 0.5) / len(task), 0, i) for i in range(len(task))]
    placed += [((j + 0.5) / len(spread), 1, j) for j in range(len(spread))]
    merged = [(task if kind == 0 else spread)[i] for _, kind, i in sorted(placed)]
    return [*order[:batch], *(row for b in merged for row in b), *order[full:]]


class SpreadGeneral:
    """A training sampler's order with the general batches spread evenly (`spread_general`): the same rows, the
    same batches, the same seeded order before spreading (an exact resume skips the same batches)."""

    def __init__(self, sampler, general: Sequence[bool], batch: int):
        self.sampler, self.general, self.batch = sampler, list(general), batch

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[int]:
        return iter(spread_general(list(self.sampler), self.general, self.batch))


def with_kinds(collate):
    """A collator that takes each row's general flag out before `collate` and puts it in the batch as a tensor
    (False for rows without one: the validation set's)."""
    import torch

    def collate_with_kinds(examples):
        flags = [bool(example.pop(KIND_COLUMN, False)) for example in examples]
        batch = collate(examples)
        batch[KIND_COLUMN] = torch.tensor(flags)
        return batch

    return collate_with_kinds
