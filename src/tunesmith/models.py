"""Resolve a model reference to a local directory of safetensors, and load model and tokenizer from it.

    ref = resolve_model("builtin:smollm2-135m-instruct")   # converted once from the bundled GGUF, then cached
    model, tok = load_model(ref), load_tokenizer(ref)

References: `builtin:NAME`, `shape:NAME` (a published model's shape with random weights: `tunesmith.shapes`), a
local model directory, a `.gguf` file, or a hub id (`org/name`). GGUF files are
de-quantized once into `~/.cache/tunesmith/models/<name>-<sha>/` (written to a temp dir, then renamed), keyed by
the file's hash, so later loads take seconds. Loading never runs a model's own code unless the config allows it,
and only safetensors weights are loaded.

For tests, `make_tiny_model(dir)` writes a random Llama of a few thousand parameters with a small local tokenizer
(or a real one), offline, in well under a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.builtin import BUILTINS, builtin_gguf, cache_home, make_tiny_tokenizer
from tunesmith.errors import Problem, TunesmithError


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: the reference the user wrote, a local directory, and a content identity for caching."""

    ref: str
    path: Path
    identity: str
    trust_remote_code: bool = False


def cached_sha256(path: Path) -> str:
    """sha256 of a file, remembered by (path, size, mtime) so big weights are hashed once."""
    from tunesmith.files import atomic_write_json, file_sha256

    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    index_file = cache_home() / "hashes.json"
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError):
        index = {}
    if key not in index:
        index[key] = file_sha256(path)
        with contextlib.suppress(OSError):
            atomic_write_json(index_file, index)
    return index[key]


@contextlib.contextmanager
def _rich_gguf_progress(description: str):
    """Show transformers' GGUF de-quantization loop as a rich progress bar with ETA."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    original = gguf_utils.tqdm
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        transient=False,
    ) as progress:

        def tracked(iterable, desc=None, **_: Any):
            items = list(iterable)
            task = progress.add_task(description, total=len(items))
            for item in items:
                yield item
                progress.advance(task)

        gguf_utils.tqdm = tracked
        try:
            yield
        finally:
            gguf_utils.tqdm = original


def convert_gguf(gguf: Path) -> Path:
    """De-quantize a GGUF file once into a cached safetensors model directory; return that directory."""
    digest = cached_sha256(gguf)
    target = cache_home() / "models" / f"{gguf.stem}-{digest[:12]}"
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        with _rich_gguf_progress(f"Converting {gguf.name} to safetensors (once)"):
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The tensors are already de-quantized floats; drop the GGUF quantizer so they save as plain safetensors.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.generation_config.eos_token_id = tok.convert_tokens_to_ids(tok.eos_token)
        model.generation_config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / "tunesmith-source.json").write_text(json.dumps({"gguf": str(gguf), "sha256": digest}))
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first: keep theirs
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def dir_identity(path: Path) -> str:
    """Content hash of a directory: every file's relative path and sha256 (cached by size and mtime)."""
    import hashlib

    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        h.update(f"{file.relative_to(path)}:{cached_sha256(file)}\n".encode())
    return h.hexdigest()


def _check_loadable_dir(path: Path) -> None:
    if not (path / "config.json").exists():
        raise TunesmithError(
            "Not a model directory",
            [Problem(str(path), "no config.json", "point to a directory saved with save_pretrained")],
        )
    pickled = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickled and not any(path.glob("*.safetensors")):
        raise TunesmithError(
            "Pickled weights refused",
            [
                Problem(
                    str(path),
                    f"only pickled weights ({', '.join(pickled)}); tunesmith loads safetensors only",
                    "convert them with a trusted tool to safetensors first",
                )
            ],
        )
    if pickled:
        _warn_once(
            f"pickles:{path}",
            f"{path}: pickled files refused, never opened ({', '.join(pickled)}); loading the safetensors only",
        )


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl")


def check_adapter_dir(adapter: str | Path) -> Path:
    """A PEFT adapter directory (with its adapter_config.json) whose weights are safetensors: checked before any
    work starts, and again before peft opens it (one with only pickled weights is refused: peft would otherwise
    unpickle `adapter_model.bin`)."""
    path = Path(adapter)
    if not path.is_dir():
        what = "is a file, not an adapter directory" if path.exists() else "does not exist"
        raise TunesmithError(
            "Adapter not found", [Problem(str(path), what, "give the directory holding adapter_config.json")]
        )
    if not (path / "adapter_config.json").is_file():
        raise TunesmithError(
            "Not a PEFT adapter",
            [Problem(str(path), "has no adapter_config.json", "give a directory written by save_pretrained")],
        )
    if not (path / "adapter_model.safetensors").exists():
        pickled = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickled:
            raise TunesmithError(
                "Pickled adapter refused",
                [
                    Problem(
                        str(path),
                        f"only pickled weights ({', '.join(pickled)}); tunesmith loads safetensors only",
                        "save the adapter with safe_serialization=True (adapter_model.safetensors)",
                    )
                ],
            )
    return path


def _from_hub(ref: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]
        try:
            return Path(snapshot_download(ref, allow_patterns=patterns, local_files_only=True))
        except Exception:
            return Path(snapshot_download(ref, allow_patterns=patterns))
    except Exception as exc:
        raise TunesmithError(
            "Cannot fetch model from the hub",
            [
                Problem(
                    ref,
                    f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else 'no detail'}",
                    "download it where the hub is reachable and pass the local directory, or use "
                    "builtin:smollm2-135m-instruct",
                )
            ],
        ) from None


_WARNED: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    """Print a warning on stderr once per `key` and process."""
    import sys

    if key not in _WARNED:
        _WARNED.add(key)
        print(f"warning: {message}", file=sys.stderr)


def _warn_remote_code(ref: str) -> None:
    """Say once per model and process that the model's own code may run (the config turned it on)."""
    _warn_once(
        f"remote:{ref}",
        f"model.trust_remote_code is on: Python code shipped with {ref} may run while "
        "loading; turn it off unless you trust its author",
    )


def resolve_model(ref: str, trust_remote_code: bool = False) -> ModelRef:
    """Turn a model reference into a local directory of safetensors plus a content identity. `trust_remote_code`
    stays off unless asked for; when on, a warning is printed."""
    if trust_remote_code:
        _warn_remote_code(ref)
    if ref.startswith("shape:"):  # a published model's shape with random weights (tunesmith.shapes)
        from tunesmith import shapes

        name = shapes.shape_name(ref)
        return ModelRef(ref, shapes.shape_dir(name), shapes.identity(name), False)
    if ref.startswith("builtin:"):
        gguf = builtin_gguf(ref.split(":", 1)[1])
        return ModelRef(ref, convert_gguf(gguf), "gguf:" + cached_sha256(gguf), trust_remote_code)
    path = Path(ref).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise TunesmithError("GGUF file not found", [Problem(ref, "no such file", "check the path")])
        return ModelRef(ref, convert_gguf(path), "gguf:" + cached_sha256(path), trust_remote_code)
    if path.is_dir():
        _check_loadable_dir(path)
        return ModelRef(ref, path, "dir:" + dir_identity(path), trust_remote_code)
    if "/" in ref and not ref.startswith((".", "/", "~")) and ref.count("/") == 1:
        local = _from_hub(ref)
        _check_loadable_dir(local)
        return ModelRef(ref, local, "hub:" + dir_identity(local), trust_remote_code)
    raise TunesmithError(
        "Unknown model reference",
        [
            Problem(
                ref,
                "not a built-in, a shape, an existing directory, a .gguf file or a hub id (org/name)",
                f"built-ins: {', '.join('builtin:' + n for n in BUILTINS)}; shapes: shape:llama-3.2-1b, "
                "shape:qwen2.5-1.5b, shape:llama-3.1-8b",
            )
        ],
    )


def load_tokenizer(ref: ModelRef):
    """The model's tokenizer, with a pad token (the end-of-turn token when it has none)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ref.path, trust_remote_code=ref.trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(ref: ModelRef, dtype: str = "fp32", attention: str | None = None):
    """The causal LM from safetensors only; never runs remote code unless `trust_remote_code` was set.
    `attention` picks transformers' attention implementation (`eager`, `sdpa`); None leaves its default."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # tunesmith shows its own progress; a second bar per load is noise
    from tunesmith import shapes

    if shapes.is_shape_dir(ref.path):  # random weights, built on the GPU when there is one (no weights on disk)
        return shapes.build_model(ref.path, dtype, attention)
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    extra = {"attn_implementation": attention} if attention else {}
    return AutoModelForCausalLM.from_pretrained(
        ref.path, dtype=torch_dtype, use_safetensors=True, trust_remote_code=ref.trust_remote_code, **extra
    )


def decoder_layer(module_name: str) -> int | None:
    """The decoder layer a module belongs to by its name (`model.layers.3.mlp.up_proj`: 3, the convention of the
    transformers decoders peft's `layers_to_transform` reads too), None outside the layers (embeddings, the head)."""
    found = re.search(r"\.layers\.(\d+)\.", f".{module_name}")
    return int(found.group(1)) if found else None


def bf16_linear_weights(model) -> None:
    """Store the linear layers' weights in bf16, except the output head (often tied to the input embeddings).

    Under bf16 autocast every linear layer casts its fp32 weight to bf16 before the matmul, so storing the frozen
    weights in bf16 gives bit-identical products while halving their memory and skipping a cast per layer per step;
    embeddings, norms and the residual stream stay fp32, as under autocast. The adapters peft adds later stay fp32."""
    import torch

    head = model.get_output_embeddings()
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module is not head:
            module.to(torch.bfloat16)


@contextlib.contextmanager
def bf16_head(model):
    """While generating under bf16 autocast from a model being trained: its output head as a bf16 copy (the same
    products as autocast computes), put back afterwards, so the head is not recast at every decoding step."""
    import torch

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = inner.get_output_embeddings()
    if head is None or head.weight.dtype == torch.bfloat16 or not isinstance(head, torch.nn.Linear):
        yield model
        return
    inner.set_output_embeddings(_bf16_copy(head))
    try:
        yield model
    finally:
        inner.set_output_embeddings(head)


def bf16_inference_weights(model) -> None:
    """For generation under bf16 autocast: the linear weights in bf16 (`bf16_linear_weights`) and the output head
    as its own bf16 copy (untied from the fp32 input embeddings). The products are the ones autocast computes from
    fp32 weights, bit for bit, without casting 135M+ weights at every decoding step (1.6x faster on the built-in
    model on a CPU, the same replies)."""
    import torch

    bf16_linear_weights(model)
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = inner.get_output_embeddings()
    if head is None or head.weight.dtype == torch.bfloat16:
        return
    inner.set_output_embeddings(_bf16_copy(head))


def _bf16_copy(head):
    """A frozen bf16 copy of a linear output head (its own weight: no longer tied to the input embeddings)."""
    import torch

    copy = torch.nn.Linear(
        head.in_features, head.out_features, bias=head.bias is not None, dtype=torch.bfloat16, device=head.weight.device
    )
    with torch.no_grad():
        copy.weight.copy_(head.weight)
        if head.bias is not None:
            copy.bias.copy_(head.bias)
    return copy.requires_grad_(False)


def training_attention(choice: str, max_seq_len: int) -> str | None:
    """The attention implementation to train with: `train.attention`, or for `auto` the one measured faster here:
    on a CPU, eager attention up to CPU_EAGER_MAX_LEN tokens (PyTorch's CPU flash-attention backward is slow on
    short rows: see benchmarks/train_throughput.py), else transformers' default (SDPA)."""
    import torch

    if choice != "auto":
        return choice
    return "eager" if not torch.cuda.is_available() and max_seq_len <= CPU_EAGER_MAX_LEN else None


CPU_EAGER_MAX_LEN = 512


def end_of_turn_token(tok) -> str:
    """The token that ends an assistant turn in the chat template (ChatML `<|im_end|>` and the like)."""
    return tok.eos_token


def make_tiny_model(out_dir: str | Path, tokenizer=None, hidden_size: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Write a random tiny Llama (safetensors) with a tokenizer to `out_dir`: the test stand-in for a real model."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tok = tokenizer if tokenizer is not None else make_tiny_tokenizer()
    eos_id = tok.convert_tokens_to_ids(tok.eos_token)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.convert_tokens_to_ids(tok.bos_token),
        eos_token_id=eos_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=eos_id, pad_token_id=tok.pad_token_id, bos_token_id=config.bos_token_id
    )
    out = Path(out_dir)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


PRECISIONS = ("auto", "bf16", "fp32")


def resolve_precision(setting: str = "auto") -> str:
    """`bf16` or `fp32`. `auto` picks bf16 where matmuls run natively in it (AMX / AVX512-BF16 CPUs, recent GPUs);
    any other setting is an error (not a run that silently goes without bf16)."""
    if setting not in PRECISIONS:
        raise TunesmithError(
            "Unknown precision", [Problem("precision", f"{setting!r}", f"one of {', '.join(PRECISIONS)}")]
        )
    if setting != "auto":
        return setting
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    return "bf16" if (amx or avx512_bf16) else "fp32"
