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

One module per concern, each reading on from the ones before it:

- `shape`: model shapes (named sizes, configs counted on the `meta` device);
- `memory`: the memory plan (bytes per component, `Recipe`, `estimate_memory`, `fit_on`);
- `flops`: training compute per token and method;
- `gpus`: the GPU table and price files;
- `hours`: training time and dollars per GPU class, and how they read;
- `measured`: the project's token count, the probe of real steps and its extrapolation;
- `success`: cost per successful task of a project's evaluations, and of a run's models side by side.

The numbers that carry the guide's claims (prices, the 100-120 GB of a full 7B fine-tune, 6-10 GB for a 7B QLoRA)
are pinned by tests/test_cost.py.
"""

from tunesmith.cost.flops import CHECKPOINTING_FLOPS, FLOPS_PER_TOKEN, MFU, QLORA_SLOWDOWN, flops_per_token, per_billion
from tunesmith.cost.gpus import DEFAULT_GPUS, Gpu, GpuEntry, PriceFile, find_gpu, gpus
from tunesmith.cost.hours import (
    SMALL_MODEL_PARAMS,
    TIME_SPREAD,
    dollars,
    epochs_of,
    format_line,
    gpu_rows,
    hours_text,
    money,
    train_hours,
    trained_tokens,
    usd_text,
)
from tunesmith.cost.measured import ProjectTokens, count_tokens, extrapolate, measure
from tunesmith.cost.memory import (
    ACT_BYTES,
    ACT_ELEMENTS,
    ADAM_BYTES,
    BF16,
    CUDA_OVERHEAD_GIB,
    FP32,
    GIB,
    LOGIT_TILE,
    METHOD_NAMES,
    NF4_BYTES,
    RESIDUAL_FP32_BYTES,
    USABLE_SHARE,
    Fit,
    MemoryEstimate,
    Recipe,
    estimate_memory,
    fit_on,
)
from tunesmith.cost.shape import BUILTIN_SIZES, NAMED_SIZES, ModelShape, model_shape, named_shape, shape_from_config
from tunesmith.cost.success import cost_per_success, eval_costs, success_cost, token_cost, token_counter

__all__ = [
    "ACT_BYTES",
    "ACT_ELEMENTS",
    "ADAM_BYTES",
    "BF16",
    "BUILTIN_SIZES",
    "CHECKPOINTING_FLOPS",
    "CUDA_OVERHEAD_GIB",
    "DEFAULT_GPUS",
    "FLOPS_PER_TOKEN",
    "FP32",
    "GIB",
    "LOGIT_TILE",
    "METHOD_NAMES",
    "MFU",
    "NAMED_SIZES",
    "NF4_BYTES",
    "QLORA_SLOWDOWN",
    "RESIDUAL_FP32_BYTES",
    "SMALL_MODEL_PARAMS",
    "TIME_SPREAD",
    "USABLE_SHARE",
    "Fit",
    "Gpu",
    "GpuEntry",
    "MemoryEstimate",
    "ModelShape",
    "PriceFile",
    "ProjectTokens",
    "Recipe",
    "cost_per_success",
    "count_tokens",
    "dollars",
    "epochs_of",
    "estimate_memory",
    "eval_costs",
    "extrapolate",
    "find_gpu",
    "fit_on",
    "flops_per_token",
    "format_line",
    "gpu_rows",
    "gpus",
    "hours_text",
    "measure",
    "model_shape",
    "money",
    "named_shape",
    "per_billion",
    "shape_from_config",
    "success_cost",
    "token_cost",
    "token_counter",
    "train_hours",
    "trained_tokens",
    "usd_text",
]
