"""Shared-prefix batches: the tokens every row of a batch begins with (a task's system prompt and the chat
template around it) run through the decoder once, not once per row.

    hidden = shared_prefix_hidden(decoder, inputs)   # [batch, length, hidden], or None: run the decoder as usual
    lengths = grouped_lengths(rows)                  # sampler keys that batch rows of one system prompt together

Most fine-tuning data for one behaviour carries one system prompt: on Banking77 as a new user converts it, 31 of
an example's 65 tokens are the same in every example. Here the batch becomes one sequence: the common prefix once,
then each row's own tokens without their padding, each at the position it has in its row, under an attention mask
that lets a row's tokens see the prefix and their own row's earlier tokens, nothing else. One decoder call, no
padding, and the prefix's work paid once a batch. The hidden states are put back in the batch's shape, the prefix's
copied (a view) to every row, so its gradients add up into its one computation: the loss and its gradients are
those of the whole batch (equal within float rounding: a test checks it in fp32).

Where one packed sequence would make attention too dear (long rows: attention grows with the square of the packed
length, more than PACK_ATTENTION times the batch's own), or the model's attention cannot take such a mask (not
eager or SDPA, positions not rotary, a sliding window shorter than the sequence, layers that are not attention),
the prefix is decoded for one row with the cache on, the cache expanded (a view, no copy) to the batch, and the
rows' own tokens decoded on top of it: two decoder calls, the padding kept, the same loss.

It applies when a batch has at least MIN_ROWS rows, the rows are right-padded with an attention mask (not
padding-free or packed batches), the prefix is at least MIN_SHARED tokens and carries no label, gradient
checkpointing is off, and (for the cache path) the model's cache is transformers' plain dynamic cache
(sliding-window and hybrid caches are left alone).
"""

from __future__ import annotations

from typing import Any

MIN_SHARED = 8  # a shorter common prefix saves too little to be worth it
MIN_ROWS = 4  # nor a smaller batch (not measured under 4). Banking77, bf16, 2 cores, AMD EPYC, packed: batch 4
# 1.32x the tokens/s of no sharing at 13% less peak memory; batch 8 1.27-1.38x, and 1.01-1.19x the expanded cache's
# (24- and 16-step runs of benchmarks/train_throughput.py; the cache: 1.14x over a whole run at batch 8)
PACK_ATTENTION = 4  # one packed sequence while its attention scores number at most this times the batch's own
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
    real = mask.bool()
    packed_length = int(real.sum()) - (batch - 1) * shared
    if _right_padded(real) and _packable(decoder, packed_length, batch * length * length):
        return _packed_hidden(decoder, input_ids, real, positions, shared)
    return _cached_hidden(decoder, input_ids, mask, positions, shared)


def _right_padded(real) -> bool:
    """Every row's tokens come first, its padding after them."""
    import torch

    lengths = real.sum(1, keepdim=True)
    return bool((real == (torch.arange(real.shape[1], device=real.device) < lengths)).all())


def _packable(decoder, packed_length: int, batch_scores: int) -> bool:
    """Whether one packed sequence of `packed_length` tokens suits this decoder: an attention implementation that
    takes a 4D mask as given (eager, SDPA), positions that come from the position ids alone (rotary, not ALiBi's
    from the mask), every layer an attention layer, a sliding window (if any) no shorter than the sequence, and no
    more than PACK_ATTENTION times the attention scores of the padded batch."""
    config = getattr(decoder, "config", None)
    if getattr(config, "_attn_implementation", None) not in ("eager", "sdpa"):
        return False
    if getattr(config, "rope_parameters", None) is None or getattr(config, "alibi", False):
        return False
    if any(kind not in ("full_attention", "sliding_attention") for kind in getattr(config, "layer_types", None) or []):
        return False
    window = getattr(config, "sliding_window", None)
    if window and getattr(config, "use_sliding_window", True) and window < packed_length:
        return False
    return packed_length * packed_length <= PACK_ATTENTION * batch_scores


def _packed_hidden(decoder, input_ids, real, positions, shared: int):
    """The batch as one sequence: the prefix (row 0's first `shared` tokens), then each row's tokens after it,
    unpadded; a row's tokens attend to the prefix and to their own row's earlier tokens."""
    import torch

    batch, length = input_ids.shape
    take = real.clone()
    take[1:, :shared] = False  # row 0 brings the prefix; the others only their own tokens
    rows = torch.arange(batch, device=real.device).unsqueeze(1).expand(batch, length)[take]
    cols = torch.arange(length, device=real.device).unsqueeze(0).expand(batch, length)[take]
    owner = torch.where(cols < shared, -1, rows)  # -1: the prefix, seen by every row
    seen = (owner.unsqueeze(1) == owner.unsqueeze(0)) | (owner.unsqueeze(0) == -1)
    allowed = torch.ones_like(seen).tril_() & seen  # in packed order a row's tokens follow the prefix in turn
    if decoder.config._attn_implementation == "eager":  # eager adds its mask to the scores
        mask = torch.zeros(allowed.shape, device=real.device).masked_fill_(~allowed, torch.finfo(torch.float32).min)
    else:
        mask = allowed
    hidden = decoder(
        input_ids=input_ids[take].unsqueeze(0),
        position_ids=positions[take].unsqueeze(0),
        attention_mask=mask[None, None],
        use_cache=False,
    ).last_hidden_state[0]
    rows_hidden = hidden.new_zeros(batch, length, hidden.shape[-1]).masked_scatter(take.unsqueeze(-1), hidden)
    return torch.cat([hidden[:shared].expand(batch, -1, -1), rows_hidden[:, shared:]], dim=1)


def _cached_hidden(decoder, input_ids, mask, positions, shared: int):
    """The prefix decoded for one row with the cache on, the cache expanded to the batch, the rows' own tokens
    decoded on top of it (None where the model's cache is not transformers' plain dynamic one)."""
    import torch
    from transformers.cache_utils import DynamicLayer

    batch = input_ids.shape[0]
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
