"""The memory plan on real shapes: the 8B QLoRA estimate against a count made by hand from the published config,
and the activation term against the tensors autograd actually keeps (saved-tensor hooks, on a CPU: the same modules
save the same tensors on a GPU)."""

from __future__ import annotations

import pytest
import torch

from tunesmith.cost import GIB, NF4_BYTES, Recipe, estimate_memory, fit_on, model_shape

# Llama-3.1-8B's config.json: hidden 4096, 32 layers, 32 heads, 8 KV heads (head_dim 128), intermediate 14336,
# vocab 128256, untied head.
H, LAYERS, KV, INTER, V = 4096, 32, 8 * 128, 14336, 128256


def test_the_8b_qlora_estimate_matches_a_count_by_hand():
    per_layer_linear = H * H + 2 * H * KV + H * H + 3 * H * INTER  # q, k, v, o, gate, up, down
    quantized = LAYERS * per_layer_linear
    rest = 2 * V * H + (2 * LAYERS + 1) * H  # embeddings, head (fp32 after k-bit preparation), norms
    lora = 16 * LAYERS * ((H + H) + 2 * (H + KV) + (H + H) + 3 * (H + INTER))  # r x (in + out) per adapted layer
    assert quantized + rest == 8_030_261_248  # the published model's parameter count
    for seq, checkpointing in ((512, True), (2048, True), (512, False), (2048, False)):
        tokens = 4 * seq
        weights = quantized * NF4_BYTES + rest * 4
        trainable = lora * (4 + 4 + 8)  # fp32 adapter, its gradient, two AdamW moments
        stored_layer = tokens * (2 * (6 * H + 2 * KV + 4 * INTER) + 16 * H)  # bf16 saved tensors + fp32 norm copies
        residual = tokens * H * 4
        acts = LAYERS * residual + stored_layer + residual if checkpointing else LAYERS * stored_layer + residual
        logits = min(tokens, 4096) * 32768 * 2 * 2  # TRL's fused head: one tile, forward and backward
        by_hand = (weights + trainable + acts + logits) / GIB
        est = estimate_memory(
            model_shape("shape:llama-3.1-8b"),
            Recipe(method="qlora", batch_size=4, seq_len=seq, gradient_checkpointing=checkpointing),
        )
        assert est.total - est.overhead == pytest.approx(by_hand, rel=1e-6), (seq, checkpointing)
    # the sane range: a 4-bit 8B base is ~3.6 GiB + 3.9 GiB of fp32 embeddings and head; checkpointed batches of
    # 4 x 512 add ~1.5 GiB, 4 x 2048 ~6 GiB
    small = estimate_memory(
        model_shape("shape:llama-3.1-8b"),
        Recipe(method="qlora", batch_size=4, seq_len=512, gradient_checkpointing=True),
    )
    assert 9 < small.total < 12
    # an 8B QLoRA at 2048 tokens, batch 8 fits a 24 GB card only with gradient checkpointing (~57 GiB without)
    fit = fit_on(model_shape("shape:llama-3.1-8b"), Recipe(method="qlora", batch_size=8, seq_len=2048), 24)
    assert fit.fits and fit.change == "gradient checkpointing" and fit.estimate.total_with(False) > 24


def _saved_bytes_per_token(layers: int, seq: int) -> float:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tunesmith.models import bf16_linear_weights
    from tunesmith.shapes import shape_config

    config = shape_config("llama-3.2-1b", vocab_size=512)  # the head's size does not change a layer's tensors
    config.num_hidden_layers = layers
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    bf16_linear_weights(model)  # tunesmith's LoRA recipe: bf16 frozen linears, fp32 embeddings and norms
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear"))
    model.train()
    params = {p.data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(t):
        if t.data_ptr() not in params:
            kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    ids = torch.randint(0, 512, (1, seq))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
        model(input_ids=ids)
    return sum(kept.values()) / seq


def test_the_activation_term_matches_what_autograd_keeps():
    seq = 128
    measured = _saved_bytes_per_token(2, seq) - _saved_bytes_per_token(1, seq)  # one layer's saved tensors
    shape = model_shape("shape:llama-3.2-1b")
    est = estimate_memory(shape, Recipe(method="lora", batch_size=1, seq_len=seq))
    per_layer = (est.activations_stored * GIB - seq * shape.hidden * 4) / shape.layers / seq
    assert per_layer == pytest.approx(measured, rel=0.10), (per_layer, measured)
