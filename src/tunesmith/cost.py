"""What a fine-tune will need: GPU memory per method, training time on a table of GPU classes, and dollars.

    shape = model_shape("7B")                                   # or a model reference / directory / hub id
    mem = estimate_memory(shape, Recipe(method="qlora", gradient_checkpointing=True))
    hours = train_hours(shape.params, tokens=5_000_000, method="qlora", checkpointing=True, gpu=gpus()["RTX 4090"])
    format_line("7B", "qlora", "RTX 4090", (2, 4), (1.10, 2.20))   # "7B, QLoRA, RTX 4090, 2-4 h, $1.10-2.20"

Parameters are counted from the model's config alone (the model is built on torch's `meta` device: no weights are
read or allocated), so a 70B model can be planned on a laptop. Memory follows tunesmith's own recipes
(`tunesmith.train.trainer`): a full fine-tune keeps fp32 weights, gradients and AdamW moments under bf16 autocast; LoRA
stores the frozen linear weights in bf16 (`train.base_precision`), embeddings and norms in fp32; QLoRA stores the
linear weights in 4-bit NF4 with double quantization, and peft's k-bit preparation casts the rest to fp32.
`measure()` (`tunesmith cost --probe`) times real optimizer steps of the project's recipe on this machine instead.

The numbers that carry the guide's claims (prices, the 100-120 GB of a full 7B fine-tune, 6-10 GB for a 7B QLoRA)
are pinned by tests/test_cost.py.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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

# Training FLOPs per token per parameter: forward 2N, backward 4N (Kaplan et al. 2020). LoRA skips the frozen
# weights' gradients (backward 2N); gradient checkpointing runs the forward a second time (+2N).
FLOPS_PER_TOKEN = {"full": 6.0, "lora": 4.0, "qlora": 4.0}
CHECKPOINTING_FLOPS = 2.0
# bitsandbytes de-quantizes every 4-bit weight on each use; QLoRA steps run ~1.3x slower than bf16 LoRA in common
# reports (tunesmith's figure: the guide gives none).
QLORA_SLOWDOWN = 1.3
# Model FLOPs utilization of single-GPU bf16 training with good kernels (Unsloth-class); vanilla stacks land lower.
MFU = 0.4
# The table's speeds assume a model big enough to keep the GPU busy; below this, launch overheads dominate and the
# estimate is optimistic (tunesmith's caution: `--probe` measures instead).
SMALL_MODEL_PARAMS = 1e9
# The guide's times span 2x (7B QLoRA on an RTX 4090: "2-4 hours"; 13B on an A100: "3-6 hours"): the slow end of
# every estimate is the fast end times this (data loading, padding, logging, checkpoints, weaker kernels).
TIME_SPREAD = 2.0


def per_billion(peak_bf16_tflops: float) -> float:
    """Training tokens/s per billion parameters of a full fine-tune: peak dense bf16 FLOP/s x MFU / (6 FLOPs x 1e9)."""
    return peak_bf16_tflops * 1e12 * MFU / (FLOPS_PER_TOKEN["full"] * 1e9)


@dataclass(frozen=True)
class Gpu:
    """A GPU class: memory, rough bf16 training speed (tokens/s per billion parameters, full fine-tune) and the
    hourly price range to rent one (None: unknown)."""

    name: str
    memory_gib: float
    tokens_per_s_per_b: float
    hourly_usd: tuple[float, float] | None


# Peak dense bf16 tensor TFLOP/s from the vendors' datasheets (GeForce cards: with fp32 accumulation).
# Prices: the guide ("cloud GPU rates as of May 2026: RTX 4090 at roughly $0.55/hr, A100 at $0.76-$1.39/hr, H100 at
# $1.33/hr"); the cards it does not price carry rough community-cloud figures, marked "est." (override: --prices).
DEFAULT_GPUS: tuple[Gpu, ...] = (
    Gpu("RTX 3060", 12, per_billion(25.6), (0.05, 0.10)),  # est.; the guide's minimum card for a 7B QLoRA
    Gpu("RTX 4090", 24, per_billion(165.2), (0.55, 0.55)),  # guide
    Gpu("RTX A5000", 24, per_billion(111.1), (0.20, 0.40)),  # est.; the guide's other 16-24 GB "sweet spot" card
    Gpu("L40S", 48, per_billion(362.1), (0.80, 1.20)),  # est.
    Gpu("A100 40GB", 40, per_billion(312), (0.76, 1.39)),  # guide
    Gpu("A100 80GB", 80, per_billion(312), (0.76, 1.39)),  # guide (it prices "A100" without a memory size)
    Gpu("H100 80GB", 80, per_billion(989), (1.33, 1.33)),  # guide
    Gpu("H200", 141, per_billion(989), (2.00, 3.50)),  # est.
)

# Llama-shaped configs for planning models one does not have: each is a published model's own config.
NAMED_SIZES: dict[str, dict[str, Any]] = {
    "135M": dict(
        hidden_size=576,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        intermediate_size=1536,
        vocab_size=49152,
        tie_word_embeddings=True,
    ),  # SmolLM2-135M (the built-in)
    "1B": dict(
        hidden_size=2048,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        intermediate_size=8192,
        vocab_size=128256,
        tie_word_embeddings=True,
    ),  # Llama 3.2 1B
    "3B": dict(
        hidden_size=3072,
        num_hidden_layers=28,
        num_attention_heads=24,
        num_key_value_heads=8,
        intermediate_size=8192,
        vocab_size=128256,
        tie_word_embeddings=True,
    ),  # Llama 3.2 3B
    "7B": dict(
        hidden_size=4096,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        intermediate_size=11008,
        vocab_size=32000,
        tie_word_embeddings=False,
    ),  # Llama 2 7B
    "8B": dict(
        hidden_size=4096,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        intermediate_size=14336,
        vocab_size=128256,
        tie_word_embeddings=False,
    ),  # Llama 3.1 8B
    "13B": dict(
        hidden_size=5120,
        num_hidden_layers=40,
        num_attention_heads=40,
        num_key_value_heads=40,
        intermediate_size=13824,
        vocab_size=32000,
        tie_word_embeddings=False,
    ),  # Llama 2 13B
    "34B": dict(
        hidden_size=8192,
        num_hidden_layers=48,
        num_attention_heads=64,
        num_key_value_heads=8,
        intermediate_size=22016,
        vocab_size=32000,
        tie_word_embeddings=False,
    ),  # Code Llama 34B
    "70B": dict(
        hidden_size=8192,
        num_hidden_layers=80,
        num_attention_heads=64,
        num_key_value_heads=8,
        intermediate_size=28672,
        vocab_size=128256,
        tie_word_embeddings=False,
    ),  # Llama 3.1 70B
}
BUILTIN_SIZES = {"builtin:smollm2-135m-instruct": "135M"}
METHOD_NAMES = {"full": "full", "lora": "LoRA", "qlora": "QLoRA"}


# ---------------------------------------------------------------------------------------------------- model shape


@dataclass(frozen=True)
class ModelShape:
    """What memory and time depend on: parameter count, block dimensions, and every linear layer's shape."""

    name: str
    params: int
    layers: int
    hidden: int
    kv_dim: int
    intermediate: int
    vocab: int
    linears: tuple[tuple[str, int, int], ...]  # (module name, in features, out features)
    head: str | None = None  # the output layer's module name (never quantized, not an "all-linear" LoRA target)
    size: str | None = None  # a named size ("7B") when planned from the table

    @property
    def label(self) -> str:
        """`7B` for a named size, else the count rounded: `135M`, `6.7B`."""
        if self.size:
            return self.size
        for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
            if self.params >= scale:
                return (
                    f"{self.params / scale:.1f}".rstrip("0").rstrip(".") + unit
                    if self.params < 10 * scale
                    else f"{self.params / scale:.0f}{unit}"
                )
        return str(self.params)

    @property
    def quantized_params(self) -> int:
        """Parameters bitsandbytes stores in 4 bits: every linear layer but the output head."""
        return sum(i * o for name, i, o in self.linears if name != self.head)

    def lora_params(self, r: int, target_modules: str | list[str] = "all-linear") -> int:
        """Adapter parameters, r x (in + out) per targeted linear layer, matched as peft matches them."""
        return sum(r * (i + o) for name, i, o in self.linears if _targeted(name, target_modules, self.head))


def _targeted(name: str, targets: str | list[str], head: str | None) -> bool:
    if targets == "all-linear":
        return name != head
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def shape_from_config(config, name: str = "", size: str | None = None, trust_remote_code: bool = False) -> ModelShape:
    """Count a model's parameters by building it on the `meta` device (shapes only, no memory, no weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise TunesmithError(
            "Cannot size this model",
            [
                Problem(
                    name or getattr(config, "model_type", "model"),
                    f"{type(exc).__name__}: {str(exc)[:200]}",
                    f"plan with a named size instead: --model-size {', '.join(NAMED_SIZES)}",
                )
            ],
        ) from None
    head_module = model.get_output_embeddings()
    linears, head = [], None
    for mod_name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            linears.append((mod_name, module.in_features, module.out_features))
        elif type(module).__name__ == "Conv1D":  # GPT-2 style: weight is (in, out)
            linears.append((mod_name, *module.weight.shape))
        if module is head_module:
            head = mod_name
    text = config.get_text_config() if hasattr(config, "get_text_config") else config

    def dim(*names: str, default: int = 0) -> int:
        return next((int(getattr(text, n)) for n in names if getattr(text, n, None)), default)

    hidden = dim("hidden_size", "n_embd", "d_model")
    heads = dim("num_attention_heads", "n_head", default=1)
    head_dim = dim("head_dim", default=hidden // max(heads, 1))
    return ModelShape(
        name=name or getattr(config, "_name_or_path", "") or config.model_type,
        params=sum(p.numel() for p in model.parameters()),  # tied weights are one parameter
        layers=dim("num_hidden_layers", "n_layer", "num_layers"),
        hidden=hidden,
        kv_dim=dim("num_key_value_heads", default=heads) * head_dim,
        intermediate=dim("intermediate_size", "n_inner", "ffn_dim", default=4 * hidden),
        vocab=dim("vocab_size"),
        linears=tuple(linears),
        head=head,
        size=size,
    )


def named_shape(size: str) -> ModelShape:
    """The llama-shaped model of a named size (`7B`, `70B`, ...)."""
    from transformers import LlamaConfig

    key = size.strip().upper()
    if key not in NAMED_SIZES:
        raise TunesmithError(
            "Unknown model size",
            [Problem(f"--model-size {size}", "not in the size table", f"one of {', '.join(NAMED_SIZES)}")],
        )
    return shape_from_config(LlamaConfig(**NAMED_SIZES[key]), f"llama-shaped {key}", size=key)


def model_shape(ref: str, trust_remote_code: bool = False) -> ModelShape:
    """Shape of a named size, a local model directory, a built-in or `.gguf` (converted once, as everywhere in
    tunesmith), or a hub id (its config.json only: no weights are downloaded)."""
    from transformers import AutoConfig

    if ref.strip().upper() in NAMED_SIZES:
        return named_shape(ref)
    if ref.startswith("shape:"):  # a published model's shape (tunesmith.shapes): its config, nothing loaded
        from tunesmith.shapes import shape_config, shape_name

        return shape_from_config(shape_config(shape_name(ref)), ref)
    if ref in BUILTIN_SIZES:  # known without converting its GGUF
        return replace(named_shape(BUILTIN_SIZES[ref]), name=ref, size=None)
    path = Path(ref).expanduser()
    if ref.startswith("builtin:") or path.suffix == ".gguf" or path.is_dir():
        from tunesmith.models import resolve_model

        model_dir = resolve_model(ref, trust_remote_code).path
        config = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
        return shape_from_config(config, ref, trust_remote_code=trust_remote_code)
    try:
        config = AutoConfig.from_pretrained(ref, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise TunesmithError(
            "Cannot read the model's config",
            [
                Problem(
                    ref,
                    f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else 'no detail'}",
                    f"pass a local model directory, a built-in, or a size: {', '.join(NAMED_SIZES)}",
                )
            ],
        ) from None
    return shape_from_config(config, ref, trust_remote_code=trust_remote_code)


# ------------------------------------------------------------------------------------------------------- memory


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

    @classmethod
    def from_config(cls, cfg) -> Recipe:
        t = cfg.train
        return cls(
            t.method,
            t.batch_size,
            t.grad_accum,
            cfg.data.max_seq_len,
            t.lora_r,
            t.target_modules,
            t.gradient_checkpointing,
            t.base_precision,
            t.epochs,
            t.max_steps,
            t.nproc,
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
    if method not in FLOPS_PER_TOKEN:
        raise TunesmithError("Unknown method", [Problem(f"method {method}", "not lora, qlora or full")])
    n, quantized = shape.params, shape.quantized_params
    rest = n - quantized  # embeddings, the output head, norms
    if method == "full":
        trainable, weights, adapter = n, n * FP32, 0
    else:
        trainable = shape.lora_params(recipe.lora_r, recipe.target_modules)
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


# ----------------------------------------------------------------------------------------------------- GPU table


class GpuEntry(BaseModel):
    """One GPU of a price file; a GPU not in the table needs all three fields."""

    model_config = ConfigDict(extra="forbid")
    memory_gib: float | None = Field(None, gt=0, description="GPU memory in GiB.")
    tokens_per_s_per_b: float | None = Field(
        None, gt=0, description="bf16 training tokens/s per billion parameters (full fine-tune)."
    )
    hourly_usd: float | tuple[float, float] | None = Field(None, description="Hourly price: a number, or [low, high].")


class PriceFile(BaseModel):
    """`--prices FILE`: GPUs merged over the built-in table by name."""

    model_config = ConfigDict(extra="forbid")
    gpus: dict[str, GpuEntry] = Field(default_factory=dict, description="GPU name -> its fields.")


def gpus(prices: str | Path | None = None) -> dict[str, Gpu]:
    """The GPU table, with the entries of a price file (YAML or JSON) merged over it by name:

    gpus:
      RTX 4090: {hourly_usd: 0.39}                                # override one field
      My A6000: {memory_gib: 48, tokens_per_s_per_b: 5000, hourly_usd: [0.45, 0.80]}   # a new card: all three
    """
    table = {g.name: g for g in DEFAULT_GPUS}
    if prices is None:
        return table
    import yaml
    from pydantic import ValidationError

    path = Path(prices)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except OSError as exc:
        raise TunesmithError(
            "Cannot read the price file",
            [Problem(str(path), exc.strerror or str(exc), "pass an existing YAML or JSON file")],
        ) from None
    except yaml.YAMLError as exc:
        raise TunesmithError(
            "The price file is not YAML or JSON", [Problem(str(path), str(exc).splitlines()[0], "fix the syntax")]
        ) from None
    try:
        parsed = PriceFile.model_validate(raw if raw is not None else {})
    except ValidationError as err:
        problems = [
            Problem(
                f"{path}: " + ".".join(str(p) for p in e["loc"]),
                e["msg"],
                "see `tunesmith cost --help` for the file's shape",
            )
            for e in err.errors()
        ]
        raise TunesmithError(f"Bad price file: {len(problems)} problem(s)", problems) from None
    problems = []
    for name, entry in parsed.gpus.items():
        known = table.get(name)
        price = entry.hourly_usd
        if isinstance(price, (int, float)):
            price = (float(price), float(price))
        if price is not None and (price[0] < 0 or price[1] < price[0]):
            problems.append(
                Problem(
                    f"{path}: gpus.{name}.hourly_usd",
                    f"{list(price)} is not a range low <= high, >= 0",
                    "e.g. hourly_usd: [0.76, 1.39]",
                )
            )
            continue
        if known is None:
            missing = [f for f in ("memory_gib", "tokens_per_s_per_b", "hourly_usd") if getattr(entry, f) is None]
            if missing:
                problems += [
                    Problem(
                        f"{path}: gpus.{name}.{f}",
                        "required for a GPU not in the table",
                        f"known GPUs: {', '.join(table)}",
                    )
                    for f in missing
                ]
                continue
            table[name] = Gpu(name, entry.memory_gib, entry.tokens_per_s_per_b, price)
        else:
            table[name] = Gpu(
                name,
                entry.memory_gib or known.memory_gib,
                entry.tokens_per_s_per_b or known.tokens_per_s_per_b,
                price if price is not None else known.hourly_usd,
            )
    if problems:
        raise TunesmithError(f"Bad price file: {len(problems)} problem(s)", problems)
    return table


def find_gpu(table: dict[str, Gpu], name: str) -> Gpu:
    """A GPU by name or by a part of its name that only it has (`4090`, `h100`, `a100-80`), ignoring case, spaces
    and punctuation."""

    def norm(text: str) -> str:
        return re.sub(r"[^a-z0-9]", "", text.lower())

    want = norm(name)
    exact = [g for n, g in table.items() if norm(n) == want]
    found = exact or [g for n, g in table.items() if want and want in norm(n)]
    if len(found) == 1:
        return found[0]
    what = "matches several GPUs" if found else "is not in the GPU table"
    raise TunesmithError(
        "Unknown GPU", [Problem(f"--gpu {name}", what, f"one of: {', '.join(table)} (or add it with --prices FILE)")]
    )


# ---------------------------------------------------------------------------------------------- time and dollars


def flops_per_token(method: str, checkpointing: bool) -> float:
    """Training FLOPs per token per parameter of a method (QLoRA's de-quantization counted as extra FLOPs)."""
    base = FLOPS_PER_TOKEN[method] + (CHECKPOINTING_FLOPS if checkpointing else 0.0)
    return base * (QLORA_SLOWDOWN if method == "qlora" else 1.0)


def train_hours(params: int, tokens: float, method: str, checkpointing: bool, gpu: Gpu) -> tuple[float, float]:
    """(fast, slow) hours to train on `tokens` tokens (epochs included) with one GPU of this class."""
    rate = gpu.tokens_per_s_per_b / (params / 1e9) * FLOPS_PER_TOKEN["full"] / flops_per_token(method, checkpointing)
    fast = tokens / rate / 3600
    return fast, fast * TIME_SPREAD


def dollars(hours: tuple[float, float], hourly_usd: tuple[float, float] | None) -> tuple[float, float] | None:
    """(low, high) dollars: the fast time at the low price, the slow time at the high price."""
    if hourly_usd is None:
        return None
    return hours[0] * hourly_usd[0], hours[1] * hourly_usd[1]


def _short(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}".rstrip("0").rstrip(".")


def hours_text(hours: tuple[float, float]) -> str:
    """`2-4 h`, `20-40 min`, `<1 min`."""
    low, high = hours
    if high < 1 / 60:
        return "<1 min"
    if high < 1:
        lo, hi = max(1, round(low * 60)), max(1, round(high * 60))
        return f"{lo} min" if lo == hi else f"{lo}-{hi} min"
    lo, hi = _short(low), _short(high)
    return f"{lo} h" if lo == hi else f"{lo}-{hi} h"


def money(x: float) -> str:
    """Two decimals, or two significant digits below a cent: `1.10`, `0.0034`, `0.000052`."""
    if x == 0 or x >= 0.01:
        return f"{x:.2f}"
    if x < 1e-6:
        return "<0.000001"
    return f"{x:.{1 - math.floor(math.log10(x))}f}"


def usd_text(usd: tuple[float, float] | None) -> str:
    """`$1.10-2.20`, `$1.33`, or `price unknown`."""
    if usd is None:
        return "price unknown"
    lo, hi = money(usd[0]), money(usd[1])
    return f"${lo}" if lo == hi else f"${lo}-{hi}"


def format_line(size: str, method: str, gpu: str, hours: tuple[float, float], usd: tuple[float, float] | None) -> str:
    """The one-line answer: `7B, QLoRA, RTX 4090, 2-4 h, $1.10-2.20`."""
    return f"{size}, {METHOD_NAMES.get(method, method)}, {gpu}, {hours_text(hours)}, {usd_text(usd)}"


def trained_tokens(tokens_per_epoch: int, examples: int, recipe: Recipe) -> float:
    """Tokens the run trains on: epochs x the split's tokens, or max_steps' share of an epoch (it overrides)."""
    if recipe.max_steps:
        per_step = recipe.batch_size * recipe.grad_accum * recipe.nproc
        steps_per_epoch = max(1, math.ceil(examples / per_step))
        return tokens_per_epoch * recipe.max_steps / steps_per_epoch
    return tokens_per_epoch * epochs_of(recipe, examples)


def epochs_of(recipe: Recipe, examples: int | None) -> float:
    """The recipe's passes over `examples` records (`auto` resolved as training resolves it)."""
    from tunesmith.train.trainer import resolve_epochs

    return resolve_epochs(recipe.epochs, examples or None)


def gpu_rows(shape: ModelShape, recipe: Recipe, tokens: float | None, table: dict[str, Gpu]) -> list[dict[str, Any]]:
    """One row per GPU class: does the recipe fit (and with what change), how long, how much, the one-liner."""
    rows = []
    for gpu in table.values():
        fit = fit_on(shape, recipe, gpu.memory_gib)
        row: dict[str, Any] = {
            "gpu": gpu.name,
            "memory_gib": gpu.memory_gib,
            "hourly_usd": gpu.hourly_usd,
            **fit.to_json(),
        }
        if tokens is not None and fit.fits:
            hours = train_hours(
                shape.params, tokens / recipe.nproc, recipe.method, fit.recipe.gradient_checkpointing, gpu
            )
            usd = dollars(hours, gpu.hourly_usd)
            usd = None if usd is None else (usd[0] * recipe.nproc, usd[1] * recipe.nproc)
            row.update(
                hours=list(hours),
                usd=None if usd is None else list(usd),
                line=format_line(shape.label, recipe.method, gpu.name, hours, usd),
            )
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------ the project


@dataclass
class ProjectTokens:
    """The training split of a project, tokenized as the trainer sees it."""

    examples: int
    tokens_per_epoch: int
    trained_tokens: float
    records: list = field(default_factory=list, repr=False)
    model_ref: Any = None  # the resolved model the tokens were counted with


def count_tokens(cfg, records: list, model_ref, recipe: Recipe) -> ProjectTokens:
    """The tokens of every training example (`records`, general data mixed in) with the model's chat template,
    truncated to `data.max_seq_len`, as the trainer sees them. `tunesmith cost PROJECT` counts the project's
    training split (checked, split and mixed with its general data, as `tunesmith train` does) with this."""
    from tunesmith.models import load_tokenizer
    from tunesmith.train.sft import build_dataset

    _, stats = build_dataset(load_tokenizer(model_ref), records, cfg)
    return ProjectTokens(
        stats["examples"],
        stats["tokens"],
        trained_tokens(stats["tokens"], stats["examples"], recipe),
        records,
        model_ref,
    )


def measure(cfg, model_ref, records: list, steps: int = 3) -> dict[str, Any]:
    """Time `steps` real optimizer steps of the project's SFT recipe on this machine (`build_trainer`, in a
    throwaway directory). The first step (allocation, warm-up) is left out of the rate when there are two or more."""
    import contextlib
    import sys
    import tempfile
    import time

    import torch
    from transformers import TrainerCallback

    from tunesmith.train.sft import build_trainer

    if steps < 1:
        raise TunesmithError("Bad --probe-steps", [Problem("--probe-steps", f"{steps}", "at least 1")])

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.marks: list[tuple[float, int]] = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.marks.append((time.perf_counter(), state.num_input_tokens_seen))

        def on_step_end(self, args, state, control, **kwargs):
            self.marks.append((time.perf_counter(), state.num_input_tokens_seen))

    cuda = torch.cuda.is_available()
    # The progress bar goes to stderr, so `tunesmith cost --probe --json` prints clean JSON on stdout.
    with tempfile.TemporaryDirectory(prefix="tunesmith-probe-") as tmp, contextlib.redirect_stdout(sys.stderr):
        trainer, _, _, _ = build_trainer(
            cfg,
            model_ref,
            records,
            Path(tmp),
            max_steps=steps,
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            logging_steps=1,
        )
        clock = Clock()
        trainer.add_callback(clock)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
        precision = "bf16" if trainer.args.bf16 else "fp32"
    marks = clock.marks
    first = 1 if len(marks) >= 3 else 0  # skip the warm-up step when at least two others remain
    (t0, n0), (t1, n1) = marks[first], marks[-1]
    seconds, tokens = t1 - t0, n1 - n0
    return {
        "steps": len(marks) - 1,
        "measured_steps": len(marks) - 1 - first,
        "tokens": int(tokens),
        "seconds": seconds,
        "tokens_per_s": tokens / seconds if seconds > 0 else None,
        "device": f"cuda: {torch.cuda.get_device_name(0)}" if cuda else "cpu",
        "precision": precision,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / GIB if cuda else None,
        "objective": cfg.train.objective,
    }


def extrapolate(
    probe: dict[str, Any], tokens: float, nproc: int = 1, hourly_usd: float | None = None
) -> dict[str, Any]:
    """The probe's rate applied to the run's tokens: hours on this machine and, with its price, dollars."""
    rate = probe.get("tokens_per_s")
    if not rate:
        return {"hours": None, "usd": None}
    hours = tokens / rate / 3600 / nproc
    return {"hours": hours, "usd": None if hourly_usd is None else hours * hourly_usd * nproc}


# -------------------------------------------------------------------------------------- cost per successful task


def success_cost(rows: list[dict[str, Any]], hourly_usd: float | None = None, suite: str = "heldout") -> dict[str, Any]:
    """Inference cost per successful task of one evaluation (its `results.jsonl` rows) on the task suite: per-token
    prices when the endpoint had them, else the measured latency times `hourly_usd`. A success is a case whose
    task_correct (or IFEval prompt_strict) score is true, as in `tunesmith.eval.evaluate.aggregate`."""
    task = [r for r in rows if r.get("suite") == suite] or rows
    answered = [r for r in task if r.get("output") is not None]
    successes = sum(
        1 for r in task if (r.get("scores") or {}).get("task_correct", (r.get("scores") or {}).get("prompt_strict"))
    )
    seconds = sum(float(r.get("latency_s") or 0.0) for r in answered)
    priced = [r["cost_usd"] for r in answered if r.get("cost_usd") is not None]
    cost, basis = None, None
    if priced:
        cost, basis = float(sum(priced)), "per-token prices"
    elif hourly_usd is not None:
        cost, basis = seconds / 3600 * hourly_usd, f"latency x ${hourly_usd}/h"
    return {
        "suite": task[0].get("suite") if task else suite,
        "cases": len(task),
        "successes": successes,
        "success_rate": successes / len(task) if task else None,
        "seconds": seconds,
        "cost_usd": cost,
        "cost_per_success_usd": cost / successes if cost is not None and successes else None,
        "basis": basis,
    }


def eval_costs(project: Path, hourly_usd: float | None = None, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """Cost per successful task of a project's evaluations: base and tuned of its last `tunesmith run` (`summary`,
    by default `.tunesmith/summary.json`, with the training cost), and every `tunesmith eval run`."""
    from tunesmith import runs
    from tunesmith.data.io import read_jsonl

    def rows_of(run_dir: Path) -> list[dict] | None:
        f = Path(run_dir) / "results.jsonl"
        return [o for _, o in read_jsonl(f)] if f.exists() else None

    out: list[dict[str, Any]] = []
    summary = summary if summary is not None else runs.load_summary(project)
    seen = set()
    if summary:
        for stage in summary.get("stages", []):
            if stage["stage"] not in ("eval-base", "eval-tuned"):
                continue
            who = stage["stage"].split("-", 1)[1]
            rows = rows_of(Path(stage["run"]))
            seen.add(Path(stage["run"]).name)
            if rows is not None:
                out.append({"model": who, "run": Path(stage["run"]).name, **success_cost(rows, hourly_usd)})
            else:  # the run directory is gone: what the summary kept
                m = (summary.get(f"{who}_metrics") or {}).get("heldout") or {}
                acc, cases = m.get("task_accuracy"), m.get("cases")
                out.append(
                    {
                        "model": who,
                        "run": None,
                        "suite": "heldout",
                        "cases": cases,
                        "successes": round(acc * cases) if acc is not None and cases else None,
                        "success_rate": acc,
                        "cost_usd": m.get("cost_usd"),
                        "cost_per_success_usd": m.get("cost_per_success_usd"),
                        "basis": "summary.json",
                    }
                )
    for row in runs.list_runs(project):
        if row["stage"] == "eval" and row["status"] == "completed" and row["name"] not in seen:
            rows = rows_of(Path(row["path"]))
            if rows is not None:
                label = (row["result"] or {}).get("model") or row["name"]
                out.append({"model": str(label), "run": row["name"], **success_cost(rows, hourly_usd)})
    return {
        "evaluations": out,
        "train_cost_usd": (summary or {}).get("train_cost_usd"),
        "train_wall_s": ((summary or {}).get("train") or {}).get("wall_s"),
        "hourly_usd": hourly_usd,
    }
