"""Training compute: FLOPs per token per parameter of each method, and the speed a GPU's peak bf16 FLOP/s buys."""

from __future__ import annotations

# Training FLOPs per token per parameter: forward 2N, backward 4N (Kaplan et al. 2020). LoRA skips the frozen
# weights' gradients (backward 2N); gradient checkpointing runs the forward a second time (+2N).
FLOPS_PER_TOKEN = {"full": 6.0, "lora": 4.0, "qlora": 4.0}
FORWARD_FLOPS = 2.0
CHECKPOINTING_FLOPS = 2.0
# bitsandbytes de-quantizes every 4-bit weight on each use; QLoRA steps run ~1.3x slower than bf16 LoRA in common
# reports (tunesmith's figure: the guide gives none).
QLORA_SLOWDOWN = 1.3
# Model FLOPs utilization of single-GPU bf16 training with good kernels (Unsloth-class); vanilla stacks land lower.
MFU = 0.4


def per_billion(peak_bf16_tflops: float) -> float:
    """Training tokens/s per billion parameters of a full fine-tune: peak dense bf16 FLOP/s x MFU / (6 FLOPs x 1e9)."""
    return peak_bf16_tflops * 1e12 * MFU / (FLOPS_PER_TOKEN["full"] * 1e9)


def flops_per_token(method: str, checkpointing: bool, backward_share: float = 1.0) -> float:
    """Training FLOPs per token per parameter of a method (QLoRA's de-quantization counted as extra FLOPs). With
    adapters on the top layers only, the backward pass (and checkpointing's second forward) runs through
    `backward_share` of the model."""
    backward = FLOPS_PER_TOKEN[method] - FORWARD_FLOPS + (CHECKPOINTING_FLOPS if checkpointing else 0.0)
    base = FORWARD_FLOPS + backward * backward_share
    return base * (QLORA_SLOWDOWN if method == "qlora" else 1.0)
