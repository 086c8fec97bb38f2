"""Shared-prefix batches: the tokens every row of a batch begins with (a task's system prompt and the chat
template around it) run through the decoder once, not once per row.

    hidden = shared_prefix_hidden(decoder, inputs)   # [batch, length, hidden], or None: run the decoder as usual
    lengths = grouped_lengths(rows)                  # sampler keys that batch rows of one system prompt together

Most fine-tuning data for one behaviour carries one system prompt: on Banking77 as a new user converts it, 31 of
an example's 65 tokens are the same in every example. Here the common prefix is decoded for one row with the
cache on, the cache is expanded (a view, no copy) to the batch, and the rows' own tokens are decoded on top of it
with the positions and attention mask they have in the whole sequence. Gradients flow through the expanded cache
into the prefix's one computation, so the loss and its gradients are those of the whole batch (equal within float
rounding: a test checks it in fp32), while the decoder's work on the prefix is paid once per batch.

It applies when a batch has at least MIN_ROWS rows (below that the second decoder call costs what it saves), the
rows are right-padded with an attention mask (not padding-free or packed batches), the prefix is at least
MIN_SHARED tokens and carries no label, gradient checkpointing is off (it drops the cache), and the
model's cache is transformers' plain dynamic cache (sliding-window and hybrid caches are left alone).
"""

from __future__ import annotations

from typing import Any

MIN_SHARED = 8  # a shorter common prefix is not worth a second decoder call (~0.2 s of fixed cost a step on a CPU)
MIN_ROWS = 8  # nor a smaller batch. Banking77, bf16, 2 cores: batch 8 1.14x over a whole run on an AMD EPYC
# (1.08-1.24x in 16-step pairs; an Intel host's micro-benchmark saw no gain), batch 16 1.14x (Intel)
GROUP_TOKENS = 16  # rows whose first this many tokens agree are batched together (their system prompt, mostly)
_GROUP_STRIDE = 1 << 20  # a row's sort key: its group's rank times this, plus its length


def grouped_lengths(rows: list[list[int]]) -> list[int] | None:
    """Sort keys for transformers' length-grouped sampler that keep rows of one leading-token group (one system
    prompt) apart from the others' and, within a group, sort them by length: each mega-batch of the sampler then
    splits into batches of one group, which share their prefix. None when every row is in one group (plain
    lengths do). General data mixed into a task's (`train.general_data`, without the task's prompt) is why: one
    general row in a batch of 16 would leave the batch no shared prefix, and at a 10% share most batches would
    hold one."""
    keys = [tuple(row[:GROUP_TOKENS]) for row in rows]
    rank = {key: i for i, key in enumerate(dict.fromkeys(keys))}
    if len(rank) < 2:
        return None
    return [rank[key] * _GROUP_STRIDE + len(row) for key, row in zip(keys, rows)]


def shared_prefix_length(input_ids, attention_mask, labels) -> int:
    """How many leading tokens every row shares, unpadded and unlabeled (0 for a single row)."""
    if input_ids.shape[0] < 2:
        return 0
    same = (input_ids == input_ids[:1]).all(0) & (attention_mask == 1).all(0)
    if labels is not None:
        same &= (labels == -100).all(0)
    differs = (~same).nonzero()
    return int(differs[0]) if len(differs) else int(input_ids.shape[1])


def shared_prefix_hidden(decoder, inputs: dict[str, Any]):
    """The decoder's last hidden states for the whole batch, the shared prefix decoded once; None when the batch
    has no usable shared prefix (the caller runs the decoder as usual)."""
    import torch
    from transformers.cache_utils import DynamicLayer

    input_ids, mask = inputs.get("input_ids"), inputs.get("attention_mask")
    extra = set(inputs) - {"input_ids", "attention_mask", "labels", "position_ids", "use_cache"}
    if input_ids is None or mask is None or extra or getattr(decoder, "is_activation_checkpointing", False):
        return None
    batch, length = input_ids.shape
    if batch < MIN_ROWS:
        return None
    shared = min(shared_prefix_length(input_ids, mask, inputs.get("labels")), length - 1)
    if shared < MIN_SHARED:
        return None
    positions = inputs.get("position_ids")
    if positions is None:
        positions = torch.arange(length, device=input_ids.device).unsqueeze(0).expand(batch, -1)
    prefix = decoder(input_ids=input_ids[:1, :shared], position_ids=positions[:1, :shared], use_cache=True)
    cache = prefix.cache
    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer) is not DynamicLayer for layer in layers):
        return None
    for layer in layers:  # one row's keys and values seen by every row; their gradients add up into it
        layer.keys = layer.keys.expand(batch, -1, -1, -1)
        layer.values = layer.values.expand(batch, -1, -1, -1)
    rest = decoder(
        input_ids=input_ids[:, shared:],
        attention_mask=mask,
        position_ids=positions[:, shared:],
        cache=cache,
        use_cache=True,
    ).last_hidden_state
    return torch.cat([prefix.last_hidden_state.expand(batch, -1, -1), rest], dim=1)
