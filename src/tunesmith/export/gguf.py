"""GGUF files for llama.cpp, Ollama and transformers' `gguf_file=`, written with the `gguf` package.

    paths = write_gguf(merged_dir, out_dir, ["f16", "q8_0", "q4_0"])   # {"f16": out_dir/"model-f16.gguf", ...}
    files = constraint_files(constraint)   # {"grammar.gbnf": ..., "schema.json": ...}, shipped beside the files

The model is a merged (or fully trained) safetensors directory of the llama family (Llama, SmolLM, TinyLlama and
others whose config says `model_type: llama`). Tensors follow llama.cpp's names and its rotary layout for the query
and key projections (what `convert_hf_to_gguf.py` writes and transformers undoes on load); 1-D tensors (norms)
stay F32, matrices take the requested type (one whose rows do not divide into its blocks falls back to F16). The
tokenizer goes into the metadata whole: byte-level BPE vocabulary, merges, token types, the special tokens, the
chat template, and the end-of-turn token as EOS, so a runtime stops where the model was trained to stop.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunesmith.errors import Problem, TunesmithError

if TYPE_CHECKING:
    from tunesmith.generate.decoding import Constraint

TYPES = {"f16": "F16", "q8_0": "Q8_0", "q4_0": "Q4_0"}  # our name -> GGMLQuantizationType
SUPPORTED = {"llama": "LLAMA"}  # config.model_type -> gguf.MODEL_ARCH


def constraint_files(constraint: Constraint) -> dict[str, str]:
    """What ships beside GGUF files decoded under a `Constraint`: `grammar.gbnf` (llama.cpp's `--grammar-file`,
    llama-cpp-python's `LlamaGrammar`) and `schema.json` (the JSON Schema; `{"type": "object"}` for any JSON
    object; the label list for a label set)."""
    from tunesmith.generate.decoding import gbnf

    schema: Any = list(constraint.choices) if constraint.kind == "choice" else constraint.schema or {"type": "object"}
    return {"grammar.gbnf": gbnf(constraint), "schema.json": json.dumps(schema, indent=2, ensure_ascii=False) + "\n"}


def check_exportable(model_dir: Path, types: list[str]) -> None:
    """A clear error, before any work, for an unknown type or an architecture the writer does not cover."""
    unknown = [t for t in types if t not in TYPES]
    problems = [
        Problem(f"export.gguf_types: {t}", "not a GGUF type tunesmith writes", f"one of {', '.join(TYPES)}")
        for t in unknown
    ]
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("model_type") not in SUPPORTED:
        problems.append(
            Problem(
                str(model_dir / "config.json"),
                f"model_type {config.get('model_type')!r} has no GGUF writer here",
                "supported: the llama family (model_type: llama, e.g. Llama, SmolLM, TinyLlama); export `merged` "
                "and convert it with llama.cpp's convert_hf_to_gguf.py",
            )
        )
    if problems:
        raise TunesmithError("Cannot export GGUF", problems)


def write_gguf(
    model_dir: Path, out_dir: Path, types: list[str], source_gguf: Path | None = None, name: str = "model"
) -> dict[str, Path]:
    """One GGUF per type in `types` under `out_dir` (each written to a temporary file, then renamed). With
    `source_gguf` (the base model came as a GGUF), its tokenizer pre-tokenizer name is kept."""
    import gguf
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoTokenizer

    check_exportable(model_dir, types)
    config = AutoConfig.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(model_dir.glob("*.safetensors")):
        tensors.update(load_file(shard))
    arch = getattr(gguf.MODEL_ARCH, SUPPORTED[config.model_type])
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    pre = _pre_tokenizer(source_gguf)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for qtype in types:
        final = out_dir / f"{name}-{qtype}.gguf"
        tmp = out_dir / f".{final.name}.tmp"
        try:
            writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[arch])
            _add_model_metadata(writer, config, qtype, name)
            _add_tokenizer(writer, tok, pre)
            for hf_name, tensor in tensors.items():
                if hf_name == "lm_head.weight" and config.tie_word_embeddings:
                    continue
                gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
                if gguf_name is None:
                    raise TunesmithError(
                        "Cannot export GGUF",
                        [
                            Problem(
                                hf_name,
                                "a tensor llama.cpp's llama layout has no name for",
                                "export `merged` and convert it with llama.cpp's convert_hf_to_gguf.py",
                            )
                        ],
                    )
                data = tensor.float().numpy()
                if hf_name.endswith("q_proj.weight"):
                    data = _permute(data, heads, heads)
                elif hf_name.endswith("k_proj.weight"):
                    data = _permute(data, heads, kv_heads)
                _add_tensor(writer, gguf, gguf_name, data, qtype)
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
            writer.close()
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        written[qtype] = final
    return written


def _permute(weights, n_head: int, n_head_kv: int):
    """llama.cpp's rotary layout for q/k (`convert_hf_to_gguf.py`'s permute), which transformers reverses."""
    if n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _add_tensor(writer, gguf, name: str, data, qtype: str) -> None:
    import numpy as np

    if data.ndim < 2:
        writer.add_tensor(name, data.astype(np.float32))
        return
    kind = getattr(gguf.GGMLQuantizationType, TYPES[qtype])
    block = gguf.GGML_QUANT_SIZES[kind][0]
    if kind == gguf.GGMLQuantizationType.F16 or data.shape[-1] % block:
        writer.add_tensor(name, data.astype(np.float16))
        return
    writer.add_tensor(name, gguf.quants.quantize(data.astype(np.float32), kind), raw_dtype=kind)


def _add_model_metadata(writer, config, qtype: str, name: str) -> None:
    import gguf

    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads or config.num_attention_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_dimension_count(head_dim)
    theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta") or getattr(config, "rope_theta", None)
    if theta:
        writer.add_rope_freq_base(float(theta))
    writer.add_vocab_size(config.vocab_size)
    file_type = {
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
        "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
    }[qtype]
    writer.add_file_type(file_type)


def _add_tokenizer(writer, tok, pre: str) -> None:
    """The byte-level BPE tokenizer as llama.cpp's `gpt2` model: every id's token, its type, the merges, the
    special tokens (EOS = the end-of-turn token) and the chat template."""
    import gguf

    spec = json.loads(tok.backend_tokenizer.to_str())
    model = spec.get("model", {})
    if model.get("type") != "BPE":
        raise TunesmithError(
            "Cannot export GGUF",
            [
                Problem(
                    "tokenizer",
                    f"a {model.get('type')} tokenizer; the GGUF writer covers byte-level BPE (gpt2) ones",
                    "export `merged` and convert it with llama.cpp's convert_hf_to_gguf.py",
                )
            ],
        )
    added = {t["id"]: t for t in spec.get("added_tokens", [])}
    by_id = {i: t for t, i in model["vocab"].items()} | {i: t["content"] for i, t in added.items()}
    size = max(by_id) + 1
    tokens, types = [], []
    for i in range(size):
        if i not in by_id:  # a hole in the vocabulary still needs a row
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        tokens.append(by_id[i])
        types.append(
            gguf.TokenType.NORMAL
            if i not in added
            else gguf.TokenType.CONTROL
            if added[i].get("special")
            else gguf.TokenType.USER_DEFINED
        )
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    eot = tok.convert_tokens_to_ids(tok.eos_token)
    writer.add_eos_token_id(eot)
    for attr, add in (
        ("bos_token", writer.add_bos_token_id),
        ("unk_token", writer.add_unk_token_id),
        ("pad_token", writer.add_pad_token_id),
    ):
        token = getattr(tok, attr, None)
        if token is not None:
            add(tok.convert_tokens_to_ids(token))
    probe = tok("a").input_ids
    writer.add_add_bos_token(bool(probe) and tok.bos_token_id is not None and probe[0] == tok.bos_token_id)
    if tok.chat_template:
        writer.add_chat_template(tok.chat_template)


def _pre_tokenizer(source_gguf: Path | None) -> str:
    """llama.cpp's pre-tokenizer name: the source GGUF's when the base came as one, else `default`."""
    if source_gguf is None or not Path(source_gguf).exists():
        return "default"
    import gguf

    field = gguf.GGUFReader(str(source_gguf)).get_field("tokenizer.ggml.pre")
    return field.contents() if field is not None else "default"
