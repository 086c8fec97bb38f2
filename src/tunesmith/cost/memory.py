"""The memory plan: GPU memory of one training process by component, and whether a recipe fits a card.

Memory follows tunesmith's own recipes (`tunesmith.train.trainer`): a full fine-tune keeps fp32 weights, gradients and
AdamW moments under bf16 autocast; LoRA stores the frozen linear weights in bf16 (`train.base_precision`), embeddings
and norms in fp32; QLoRA stores the linear weights in 4-bit NF4 with double quantization, and peft's k-bit
preparation casts the rest to fp32. `fit_on` turns on gradient checkpointing, then halves the micro-batch, until the
recipe fits.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from tunesmith.config.train import LoraOptions
from tunesmith.cost.shape import ModelShape
from tunesmith.errors import Problem, TunesmithError

GIB = 1024**3

# Bytes per parameter or activation element.
FP32, BF16 = 4, 2
# NF4 codes (4 bits) + absmax per 64-weight block quantized to 8 bits + an fp32 constant per 256 blocks (QLoRA, §3).
NF4_BYTES = (4 + 8 / 64 + 32 / (64 * 256)) / 8
ADAM_BYTES = 2 * FP32  # AdamW keeps two fp32 moments per trainable parameter
ACT_BYTES = BF16  # activations under bf16 autocast
# Saved tensors per token and layer of a llama-shaped block, in elements (SDPA/flash attention: no seq x seq scores):
# attention: norm input, q/k/v input, q, k, v, attention output (= o_proj input)  -> 4h + 2kv
# MLP:       norm input, gate/up input, gate, up, silu(gate), silu(gate)*up        -> 2h + 4i
# (Korthikanti et al. 2022 count 34h bytes for a GPT block with a 4h MLP; this is the SwiGLU analogue.)
ACT_ELEMENTS = {"h": 6, "kv": 2, "i": 4}
# The residual stream stays fp32 in every tunesmith recipe (embeddings and norms fp32; peft's k-bit preparation casts
# them to fp32 too), and each RMSNorm keeps fp32 copies of its input and normalized output: 16 more bytes per hidden
# element per layer and token. Measured with saved-tensor hooks on the Llama-3.2-1B, Qwen2.5-1.5B and Llama-3.1-8B
# shapes (LoRA r=16, bf16 base, bf16 autocast): 122.6/120.2/237.9 KB per token and layer against 124.9/115.7/233.5 KB
# counted here (tests/test_memory_plan.py measures it again).
RESIDUAL_FP32_BYTES = 16
# TRL's fused LM head scores the loss in tiles of 4,096 tokens x 32,768 vocabulary columns (trl/kernels/
# chunked_logprob.py: TOKEN_CHUNK_SIZE, chunk_size), so full logits are never materialized; forward + backward tile.
LOGIT_TILE = (4096, 32768, 2)
CUDA_OVERHEAD_GIB = 1.0  # CUDA context, cuBLAS workspace, allocator blocks: ~0.5-1.5 GiB on current drivers
USABLE_SHARE = 0.9  # a plan "fits" in 90% of the card: the allocator fragments, steps spike (tunesmith's margin)
METHOD_NAMES = {"full": "full", "lora": "LoRA", "qlora": "QLoRA"}  # the training methods, as they read


@dataclass(frozen=True)
class Recipe:
    """The training settings memory and time depend on (`train.*` and `data.max_seq_len` of a project)."""

    method: str = "lora"
    batch_size: int = 8
    grad_accum: int = 1
    seq_len: int = 1024
    lora_r: int = 16
    target_modules: str | list[str] = "all-linear"
    gradient_checkpointing: bool = False
    base_precision: str = "bf16"
    epochs: float | str = 1.0  # or "auto" (see tunesmith.train.trainer.resolve_epochs)
    max_steps: int | None = None
    nproc: int = 1
    labels: int | None = None  # a label task's labels, which `epochs: auto` counts examples per (None: not one)
    lora_layers: int | list[int] | None = None  # `train.lora.layers`: None = every decoder layer

    def adapted_layers(self, n_layers: int) -> list[int] | None:
        """The decoder layers that carry adapters (None: all of them, or a full fine-tune's every weight)."""
        if self.method == "full" or self.lora_layers is None:
            return None
        return LoraOptions(layers=self.lora_layers).layer_indices(n_layers)

    def backward_share(self, n_layers: int) -> float:
        """The share of the decoder layers the backward pass runs through: it stops below the lowest adapted one."""
        adapted = self.adapted_layers(n_layers)
        return 1.0 if not adapted or not n_layers else (n_layers - min(adapted)) / n_layers

    @classmethod
    def from_config(cls, cfg) -> Recipe:
        t = cfg.train
        return cls(
            t.method,
            t.batch_size,
            t.grad_accum,
            cfg.data.max_seq_len,
            t.lora.r,
            t.lora.target_modules,
            t.gradient_checkpointing,
            t.base_precision,
            t.epochs,
            t.max_steps,
            t.nproc,
            lora_layers=t.lora.layers,
        )


@dataclass(frozen=True)
class MemoryEstimate:
    """GPU memory of one training process, in GiB, by component."""

    method: str
    trainable_params: int
    weights: float
    adapter: float
    gradients: float
    optimizer: float
    activations: float  # as configured (with or without checkpointing)
    activations_checkpointed: float
    activations_stored: float  # without checkpointing
    logits: float
    overhead: float
    gradient_checkpointing: bool

    @property
    def total(self) -> float:
        return (
            self.weights
            + self.adapter
            + self.gradients
            + self.optimizer
            + self.activations
            + self.logits
            + self.overhead
        )

    def total_with(self, checkpointing: bool) -> float:
        acts = self.activations_checkpointed if checkpointing else self.activations_stored
        return self.total - self.activations + acts

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "total": self.total,
            "total_checkpointed": self.total_with(True),
            "total_stored": self.total_with(False),
        }


def estimate_memory(shape: ModelShape, recipe: Recipe, method: str | None = None) -> MemoryEstimate:
    """Memory of `recipe` (optionally with another `method`) on `shape`, micro-batches padded to the full length."""
    method = method or recipe.method
    if method not in METHOD_NAMES:
        raise TunesmithError("Unknown method", [Problem(f"method {method}", "not lora, qlora or full")])
    n, quantized = shape.params, shape.quantized_params
    rest = n - quantized  # embeddings, the output head, norms
    if method == "full":
        trainable, weights, adapter = n, n * FP32, 0
    else:
        trainable = shape.lora_params(recipe.lora_r, recipe.target_modules, recipe.adapted_layers(shape.layers))
        adapter = trainable * FP32
        if method == "lora":
            weights = quantized * (BF16 if recipe.base_precision == "bf16" else FP32) + rest * FP32
        else:  # peft's k-bit preparation casts everything that is not 4-bit to fp32
            weights = quantized * NF4_BYTES + rest * FP32
    tokens = recipe.batch_size * recipe.seq_len
    per_layer = tokens * (
        ACT_BYTES
        * (
            ACT_ELEMENTS["h"] * shape.hidden
            + ACT_ELEMENTS["kv"] * shape.kv_dim
            + ACT_ELEMENTS["i"] * shape.intermediate
        )
        + RESIDUAL_FP32_BYTES * shape.hidden
    )
    residual = tokens * shape.hidden * FP32  # a layer's input (the fp32 residual stream): all checkpointing keeps
    stored = shape.layers * per_layer + residual
    # Checkpointing keeps each layer's input and recomputes one layer at a time in the backward pass.
    checkpointed = shape.layers * residual + per_layer + residual
    tile_tokens, tile_vocab, copies = LOGIT_TILE
    logits = min(tokens, tile_tokens) * min(shape.vocab, tile_vocab) * BF16 * copies
    acts = checkpointed if recipe.gradient_checkpointing else stored
    return MemoryEstimate(
        method,
        trainable,
        weights / GIB,
        adapter / GIB,
        trainable * FP32 / GIB,
        trainable * ADAM_BYTES / GIB,
        acts / GIB,
        checkpointed / GIB,
        stored / GIB,
        logits / GIB,
        CUDA_OVERHEAD_GIB,
        recipe.gradient_checkpointing,
    )


@dataclass(frozen=True)
class Fit:
    """Whether a recipe fits a card, and if only with changes, the recipe that does (same global batch)."""

    fits: bool
    recipe: Recipe
    estimate: MemoryEstimate
    change: str | None = None  # what had to change, e.g. "gradient checkpointing, batch 2 x accumulation 4"

    def to_json(self) -> dict[str, Any]:
        r = self.recipe
        return {
            "fits": self.fits,
            "change": self.change,
            "total_gib": self.estimate.total,
            "batch_size": r.batch_size,
            "grad_accum": r.grad_accum,
            "gradient_checkpointing": r.gradient_checkpointing,
        }


def fit_on(shape: ModelShape, recipe: Recipe, memory_gib: float, method: str | None = None) -> Fit:
    """The recipe as configured if it fits in USABLE_SHARE of `memory_gib`; else with gradient checkpointing; else
    with the micro-batch halved (and accumulation doubled, so the global batch stays) until it fits or is 1."""
    recipe = replace(recipe, method=method or recipe.method)
    budget = memory_gib * USABLE_SHARE
    tried = [recipe]
    if not recipe.gradient_checkpointing:
        tried.append(replace(recipe, gradient_checkpointing=True))
    batch, global_batch = recipe.batch_size, recipe.batch_size * recipe.grad_accum
    while batch > 1:
        batch = batch // 2
        tried.append(
            replace(recipe, gradient_checkpointing=True, batch_size=batch, grad_accum=math.ceil(global_batch / batch))
        )
    for candidate in tried:
        est = estimate_memory(shape, candidate)
        if est.total <= budget:
            return Fit(True, candidate, est, _change(recipe, candidate))
    return Fit(False, tried[-1], estimate_memory(shape, tried[-1]), _change(recipe, tried[-1]))


def _change(before: Recipe, after: Recipe) -> str | None:
    parts = []
    if after.gradient_checkpointing and not before.gradient_checkpointing:
        parts.append("gradient checkpointing")
    if after.batch_size != before.batch_size:
        parts.append(f"batch {after.batch_size} x accumulation {after.grad_accum}")
    return ", ".join(parts) or None
