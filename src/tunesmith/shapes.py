"""Real model sizes without a download: `shape:NAME` references to published models' shapes with random weights.

    ref = resolve_model("shape:llama-3.1-8b")      # config.json + the built-in tokenizer, no weights on disk
    model = load_model(ref, dtype="bf16")          # built from the config on the GPU (CPU without one), random
    shape_from_config(shape_config("llama-3.1-8b"))  # the memory plan's view of it (tunesmith.cost)

Speed and memory of training and generation do not depend on the weights' values, so a benchmark or a GPU check
can run an 8B-shaped model on a machine that never reached a model hub. A shape's directory (under
`~/.cache/tunesmith/shapes/NAME`) holds the published config (hidden size, layers, heads, KV heads, intermediate size,
vocabulary, RoPE, tied embeddings: each cited below), the built-in model's tokenizer and chat template (SmolLM2's
49,152 ids fit in every shape's vocabulary, which keeps its own size so embedding and output-head memory is real;
without the built-in package, the tiny test tokenizer), and no weights: `load_model` builds the model on the target
device with seeded random weights, never materialising an 8B model in CPU RAM. Paths that can only read weights
from disk (bitsandbytes quantizing while loading, for QLoRA) call `weights_dir`, which writes seeded random bf16
safetensors into the directory once.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tunesmith.errors import Problem, TunesmithError

PREFIX = "shape:"
MARKER = "tunesmith-shape.json"
WEIGHTS_DONE = "tunesmith-weights.json"  # written after the random weights
SEED = 0

# The published configs (config.json on the hub), the fields that set compute and memory. Sources, read 2026:
# - meta-llama/Llama-3.2-1B config.json (as mirrored in kevinstephano/thunder_model_blocks hf_llama/llama_config.py
#   and oumi configs/recipes/llama3_2/README.md): hidden 2048, 16 layers, 32 heads, 8 KV heads, head_dim 64,
#   intermediate 8192, vocab 128256, rope_theta 500000 with llama3 scaling (factor 32, original 8192), tied.
# - Qwen/Qwen2.5-1.5B config.json (as mirrored on huggingface.co/GramTrans/GramTrans_DSL_LR1 from qwen2.5-1.5b and
#   onnx-community/Qwen2.5-1.5B-Instruct): hidden 1536, 28 layers, 12 heads, 2 KV heads, intermediate 8960,
#   vocab 151936, rope_theta 1e6, rms_norm_eps 1e-6, max_position_embeddings 131072, tied; q/k/v carry a bias.
# - meta-llama/Llama-3.1-8B config.json (as mirrored in citsjtu2020/LLM-Prof sglang/Model_Config.md and oumi
#   configs/recipes/llama3_1/README.md): hidden 4096, 32 layers, 32 heads, 8 KV heads, intermediate 14336,
#   vocab 128256, rope_theta 500000 with llama3 scaling (factor 8, original 8192), not tied.
_LLAMA3_ROPE = {
    "high_freq_factor": 4.0,
    "low_freq_factor": 1.0,
    "original_max_position_embeddings": 8192,
    "rope_type": "llama3",
}


# The config.json fields that set a llama-like model's compute and memory, in `dims`' order.
DIM_FIELDS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "vocab_size",
    "tie_word_embeddings",
)


def dims(hidden: int, layers: int, heads: int, kv_heads: int, intermediate: int, vocab: int, tied: bool) -> dict:
    """`DIM_FIELDS` with these values."""
    return dict(zip(DIM_FIELDS, (hidden, layers, heads, kv_heads, intermediate, vocab, tied), strict=True))


_LLAMA3 = dict(model_type="llama", rope_theta=500000.0, max_position_embeddings=131072, rms_norm_eps=1e-5)
SHAPES: dict[str, dict[str, Any]] = {
    "llama-3.2-1b": {
        **_LLAMA3,
        **dims(2048, 16, 32, 8, 8192, 128256, tied=True),
        "head_dim": 64,
        "rope_scaling": {"factor": 32.0, **_LLAMA3_ROPE},
    },
    "qwen2.5-1.5b": {
        "model_type": "qwen2",
        **dims(1536, 28, 12, 2, 8960, 151936, tied=True),
        "rope_theta": 1000000.0,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-6,
        "use_sliding_window": False,
    },
    "llama-3.1-8b": {
        **_LLAMA3,
        **dims(4096, 32, 32, 8, 14336, 128256, tied=False),
        "rope_scaling": {"factor": 8.0, **_LLAMA3_ROPE},
    },
    # Not a published model: the same code path at test size (the built-in tokenizer's vocabulary).
    "llama-tiny": {**_LLAMA3, **dims(64, 2, 4, 2, 128, 49152, tied=True), "max_position_embeddings": 8192},
}
# Parameter counts of the published models (transformers' count of the built model; tied weights once).
PUBLISHED_PARAMS = {"llama-3.2-1b": 1_235_814_400, "qwen2.5-1.5b": 1_543_714_304, "llama-3.1-8b": 8_030_261_248}


def is_shape_ref(ref: str) -> bool:
    return isinstance(ref, str) and ref.startswith(PREFIX)


def shape_name(ref: str) -> str:
    name = ref[len(PREFIX) :] if is_shape_ref(ref) else ref
    if name not in SHAPES:
        raise TunesmithError(
            "Unknown model shape", [Problem(ref, "no such shape", f"one of: {', '.join(PREFIX + n for n in SHAPES)}")]
        )
    return name


def shape_config(name: str, vocab_size: int | None = None):
    """The transformers config of a shape (`vocab_size` overrides the vocabulary: tests only)."""
    from transformers import AutoConfig

    fields = dict(SHAPES[shape_name(name)])
    model_type = fields.pop("model_type")
    if vocab_size is not None:
        fields["vocab_size"] = vocab_size
    return AutoConfig.for_model(model_type, **fields)


def _tokenizer():
    """(tokenizer, which): the built-in model's tokenizer read from its GGUF (no weights converted), or the tiny test
    tokenizer when the built-in package is not installed."""
    from tunesmith.builtin import BUILTINS, CHATML_TEMPLATE, builtin_gguf, make_tiny_tokenizer

    name = next(iter(BUILTINS))
    try:
        gguf = builtin_gguf(name)
    except TunesmithError:
        return make_tiny_tokenizer(), "tiny (the built-in package is not installed)"
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if not tok.chat_template:
        tok.chat_template = CHATML_TEMPLATE
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok, f"builtin:{name}"


def shape_dir(name: str) -> Path:
    """The shape's directory (config, generation config, tokenizer, marker), written once into the cache."""
    from transformers import GenerationConfig

    from tunesmith.builtin import cache_home

    name = shape_name(name)
    target = cache_home() / "shapes" / name
    if (target / MARKER).exists():
        return target
    tok, which = _tokenizer()
    config = shape_config(name)
    if len(tok) > config.vocab_size:
        raise TunesmithError(
            "Tokenizer too large for the shape",
            [Problem(PREFIX + name, f"{len(tok)} token ids, vocabulary {config.vocab_size}", "use a larger shape")],
        )
    eos = tok.convert_tokens_to_ids(tok.eos_token)
    bos = tok.convert_tokens_to_ids(tok.bos_token) if tok.bos_token else None
    config.bos_token_id, config.eos_token_id, config.pad_token_id = bos, eos, tok.pad_token_id
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        config.save_pretrained(tmp)
        GenerationConfig(bos_token_id=bos, eos_token_id=eos, pad_token_id=tok.pad_token_id).save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / MARKER).write_text(
            json.dumps({"shape": name, "seed": SEED, "tokenizer": which, "config": SHAPES[name]}, indent=1)
        )
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first: keep theirs
            if not (target / MARKER).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def identity(name: str) -> str:
    """What a shape's outputs depend on: its config and seed (the weights are made from them)."""
    import hashlib

    blob = json.dumps({"shape": SHAPES[shape_name(name)], "seed": SEED}, sort_keys=True).encode()
    return f"shape:{name}:" + hashlib.sha256(blob).hexdigest()[:16]


def is_shape_dir(path: Path) -> bool:
    return (Path(path) / MARKER).exists()


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def build_model(path: Path, dtype: str = "fp32", attention: str | None = None, device: str | None = None):
    """The shape's causal LM with seeded random weights, built directly on `device` (default: the GPU when there is
    one) in `dtype`: the weights are never staged in CPU RAM on a GPU machine. `device="meta"`: shapes only."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    config = AutoConfig.from_pretrained(path)
    if attention:
        config._attn_implementation = attention
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    device = device or default_device()
    torch.manual_seed(SEED)
    if device.startswith("cuda"):
        torch.cuda.manual_seed_all(SEED)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype)
    try:
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config)
    finally:
        torch.set_default_dtype(previous)
    if (Path(path) / "generation_config.json").exists():
        model.generation_config = GenerationConfig.from_pretrained(path)
    return model


def weights_dir(path: Path) -> Path:
    """A shape directory with weights on disk: seeded random bf16 safetensors written once (for loaders that read
    only from disk, such as bitsandbytes quantizing while loading). Any other model directory is returned as is."""
    path = Path(path)
    if not is_shape_dir(path) or (path / WEIGHTS_DONE).exists():
        return path
    model = build_model(path, dtype="bf16")
    tmp = Path(tempfile.mkdtemp(prefix=".weights.", dir=path))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        del model
        for file in tmp.iterdir():  # weights and their index; the config and generation config are already there
            if file.suffix == ".safetensors" or file.name.endswith(".index.json"):
                os.replace(file, path / file.name)
        (path / WEIGHTS_DONE).write_text(json.dumps({"dtype": "bf16", "seed": SEED}))  # last: the files are whole
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
