"""Model shapes: what memory and time depend on, counted from a model's config alone.

A named llama-shaped size (`7B`, `70B`: each a published model's own config), a local directory, a built-in, a
`.gguf`, a `shape:` of `tunesmith.shapes` or a hub id (its config.json only) becomes a `ModelShape`: the model is
built on torch's `meta` device, so no weights are read or allocated and a 70B model can be planned on a laptop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tunesmith.errors import Problem, TunesmithError
from tunesmith.models import decoder_layer
from tunesmith.shapes import DIM_FIELDS, SHAPES, dims


def _published(name: str) -> dict[str, Any]:
    """A named size from a published config that `tunesmith.shapes` already holds (one copy of its numbers)."""
    return {k: SHAPES[name][k] for k in DIM_FIELDS}


# Llama-shaped configs for planning models one does not have: each is a published model's own config.
NAMED_SIZES: dict[str, dict[str, Any]] = {
    "135M": dims(576, 30, 9, 3, 1536, 49152, tied=True),  # SmolLM2-135M (the built-in)
    "1B": _published("llama-3.2-1b"),  # Llama 3.2 1B
    "3B": dims(3072, 28, 24, 8, 8192, 128256, tied=True),  # Llama 3.2 3B
    "7B": dims(4096, 32, 32, 32, 11008, 32000, tied=False),  # Llama 2 7B
    "8B": _published("llama-3.1-8b"),  # Llama 3.1 8B
    "13B": dims(5120, 40, 40, 40, 13824, 32000, tied=False),  # Llama 2 13B
    "34B": dims(8192, 48, 64, 8, 22016, 32000, tied=False),  # Code Llama 34B
    "70B": dims(8192, 80, 64, 8, 28672, 128256, tied=False),  # Llama 3.1 70B
}
BUILTIN_SIZES = {"builtin:smollm2-135m-instruct": "135M"}


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

    def lora_params(
        self, r: int, target_modules: str | list[str] = "all-linear", layers: list[int] | None = None
    ) -> int:
        """Adapter parameters, r x (in + out) per targeted linear layer, matched as peft matches them (in the decoder
        layers `layers` only, where given)."""
        return sum(
            r * (i + o)
            for name, i, o in self.linears
            if _targeted(name, target_modules, self.head) and (layers is None or decoder_layer(name) in layers)
        )


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
