"""GGUF files for llama.cpp, Ollama and transformers' `gguf_file=`, written with the `gguf` package.

    paths = write_gguf(merged_dir, out_dir, ["f16", "q8_0", "q4_0"])   # {"f16": out_dir/"model-f16.gguf", ...}
    files = constraint_files(constraint)   # {"grammar.gbnf": ..., "schema.json": ...}, shipped beside the files

The model is a merged (or fully trained) safetensors directory of the llama family (Llama, SmolLM, TinyLlama and
others whose config says `model_type: llama`). Tensors follow llama.cpp's names and its rotary layout for the query
and key projections (what `convert_hf_to_gguf.py` writes and transformers undoes on load); 1-D tensors (norms)
stay F32, matrices take the requested type (one whose rows do not divide into its blocks falls back to F16). RoPE
scaling travels as `convert_hf_to_gguf.py` writes it: Llama 3's `llama3` scaling as the `rope_freqs.weight`
factors, `linear` and `yarn` as `rope.scaling.*` keys; any other scaling is an error, never plain RoPE. The
tokenizer goes into the metadata whole: byte-level BPE vocabulary (padded with unused `[PADn]` tokens up to the
config's `vocab_size`, as the embedding is), merges, token types, the special tokens, the chat template, and the
end-of-turn token as EOS, so a runtime stops where the model was trained to stop.

llama.cpp does not read the tokenizer's pre-tokenizer (how text is split before BPE); it picks its own by the name
in `tokenizer.ggml.pre`, and a wrong name splits JSON's ` "`, digit runs and the like differently from training.
The name is found as `convert_hf_to_gguf.py`'s `get_vocab_base_pre` finds it: the tokenization of its fixed check
text, hashed, looked up in llama.cpp's table (`PRE_TOKENIZERS`, the common families). Besides that: the source
GGUF's name when the base came as one (the built-in model), the name given explicitly (`pre_tokenizer=`, the
caller's word that llama.cpp's pre-tokenizer of that name splits as this tokenizer does), and `gpt-2` for a
tokenizer whose whole pre-tokenization is GPT-2's own regex (no normalizer, a plain `ByteLevel` pre-tokenizer,
BPE without `ignore_merges`): llama.cpp's `gpt-2` pre-tokenizer is that regex (this covers tunesmith's tiny test
tokenizer, checked against a llama.cpp-style split in tests/test_export.py). Any other tokenizer is refused
rather than written with llama.cpp's `default` split.
"""

from __future__ import annotations

import json
import math
import os
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunesmith.errors import Problem, TunesmithError

if TYPE_CHECKING:
    from tunesmith.generate.decoding import Constraint

TYPES = {"f16": "F16", "q8_0": "Q8_0", "q4_0": "Q4_0"}  # our name -> GGMLQuantizationType
SUPPORTED = {"llama": "LLAMA"}  # config.model_type -> gguf.MODEL_ARCH
CONVERT_HINT = "export `merged` and convert it with llama.cpp's convert_hf_to_gguf.py"

# convert_hf_to_gguf.py's `chktxt` (get_vocab_base_pre): its token ids, as `str(list)`, hashed with sha256
CHECK_TEXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 "
    "3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ "
    "------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you "
    "sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"
)
# check hash -> llama.cpp's pre-tokenizer name, from convert_hf_to_gguf.py's get_vocab_base_pre (the families a
# llama-architecture model is likely to use; where llama.cpp lists a hash twice, its later name, which it returns)
PRE_TOKENIZERS = {
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",  # Meta-Llama-3-8B
    "c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d": "smaug-bpe",  # Smaug-Llama-3-70B
    "d353350c764d8c3b39c763113960e4fb4919bea5fbf208a0e3b22e8469dc7406": "llama4",  # Llama-4-Scout
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",  # SmolLM / SmolLM2
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",  # Qwen1.5-7B
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": "qwen2",  # Qwen3-Embedding-0.6B
    "b3f499bb4255f8ca19fccd664443283318f2fd2414d5e0b040fbdd0cc195d6c5": "deepseek-r1-qwen",  # R1-Distill-Qwen
    "63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e": "tekken",  # Mistral-Nemo
    "0e9433cbbb161f89e264eb32e8e64bfe69e834973ffca5d41d3948a604a3e2a3": "pixtral",  # pixtral-12b
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",  # openai-community/gpt2
    "0fe1cf6eda062318a1af7270f3331a85c539a01778ff948e24388e949c5282f4": "gpt-2",  # ruGPT3XL
    "049ecf7629871e3041641907f3de7c733e4dbfdc736f57d882ba0b0845599754": "deepseek-llm",  # deepseek-llm-7b
    "347715f544604f9118bb75ed199f68779f423cabb20db6de6f31b908d04d7821": "deepseek-coder",  # deepseek-coder-6.7b
    "877081d19cf6996e2c4ff0e1236341e9b7bde288f5311a56a937f0afbbb3aeb5": "deepseek-v3",  # DeepSeek-V3
    "9d032fcbd5501f4a38150912590928bfb36091efb5df11b8e2124b0390e3fb1e": "falcon3",  # Falcon3-7B
    "8aeee3860c56296a157a1fe2fad249ec40aa59b1bb5709f4ade11c4e6fe652ed": "falcon",  # falcon-7b
    "ccc2ef013c104be7bae2965776d611e1d7a8a2a9c547dd93a682c9a9fc80352e": "gpt-4o",  # Xenova/gpt-4o
    "32d85c31273f8019248f2559fed492d929ea28b17e51d81d3bb36fff23ca72b3": "stablelm2",  # stablelm-2-zephyr
    "35d91631860c815f952d711435f48d356ebac988362536bed955d43bfa436e34": "starcoder",  # starcoder2-3b
    "b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166": "olmo",  # OLMo-1.7 (and mpt-7b)
    "9c2227e4dd922002fb81bde4fc02b0483ca4f12911410dee2255e4987644e3f8": "command-r",  # c4ai-command-r-v01
    "fcace8b9cac38ce847670c970cd5892031a753a1ef381abd1d9af00f713da085": "phi-2",  # microsoft/phi-2
    "6221ad2852e85ce96f791f476e0b390cf9b474c9e3d1362f53a24a06dc8220ff": "refact",  # Refact-1_6-base
    "4e2b24cc4770243d65a2c9ec19770a72f08cffc161adbb73fcbb6b7dd45a0aae": "exaone",  # EXAONE-3.0
    "1994ffd01900cfb37395608534236ecd63f2bd5995d6cb1004dda1af50240f15": "trillion",  # Trillion-7B
    "a1e163ecab2e718a4c829d1148b6e86824ec36163bb71941c3dca9cd5ac25756": "mellum",  # Mellum-4b-base
    "d5f1dd6f980fec569fb218a81a7658ac45fc56b38c5a0adeb1c232fbe04ef5ec": "seed-coder",  # Seed-Coder-8B
    "d4c8f286ea6b520b3d495c4455483cfa2302c0cfcd4be05d781b6a8a0a7cdaf1": "megrez",  # Megrez-3B
    "7dec86086fcc38b66b7bc1575a160ae21cf705be7718b9d5598190d7c12db76f": "superbpe",  # OLMo2-8B-SuperBPE
}
ROPE_KEYS = {  # rope scaling types written, and the parameters each may carry (others are refused, not dropped)
    "default": {"rope_theta"},
    "llama3": {"rope_theta", "factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"},
    "linear": {"rope_theta", "factor"},
    "yarn": {"rope_theta", "factor", "original_max_position_embeddings", "beta_fast", "beta_slow"},
}


def constraint_files(constraint: Constraint) -> dict[str, str]:
    """What ships beside GGUF files decoded under a `Constraint`: `grammar.gbnf` (llama.cpp's `--grammar-file`,
    llama-cpp-python's `LlamaGrammar`) and `schema.json` (the JSON Schema; `{"type": "object"}` for any JSON
    object; the label list for a label set)."""
    from tunesmith.generate.decoding import gbnf

    schema: Any = list(constraint.choices) if constraint.kind == "choice" else constraint.schema or {"type": "object"}
    return {"grammar.gbnf": gbnf(constraint), "schema.json": json.dumps(schema, indent=2, ensure_ascii=False) + "\n"}


def check_exportable(
    model_dir: Path, types: list[str], source_gguf: Path | None = None, pre_tokenizer: str | None = None
) -> tuple[Any, str]:
    """A clear error, before any work, for an unknown type, an architecture the writer does not cover, a RoPE
    scaling it cannot carry, or a tokenizer whose llama.cpp pre-tokenizer it cannot name (`pre_tokenizer_name`).
    Returns the tokenizer and that name."""
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
    else:
        problems += _rope_problems(model_dir, config)
    if problems:
        raise TunesmithError("Cannot export GGUF", problems)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    _tokenizer_spec(tok)
    pre = pre_tokenizer_name(tok, model_dir, source_gguf, pre_tokenizer)
    _check_vocab_size(tok, config.get("vocab_size"), model_dir)
    return tok, pre


def write_gguf(
    model_dir: Path,
    out_dir: Path,
    types: list[str],
    source_gguf: Path | None = None,
    name: str = "model",
    pre_tokenizer: str | None = None,
) -> dict[str, Path]:
    """One GGUF per type in `types` under `out_dir` (each written to a temporary file, then renamed). The
    tokenizer's llama.cpp pre-tokenizer name: `pre_tokenizer` when given, else `source_gguf`'s (the base model
    came as a GGUF), else found from the tokenizer (`pre_tokenizer_name`; an unknown one is a TunesmithError)."""
    import gguf
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig

    tok, pre = check_exportable(model_dir, types, source_gguf, pre_tokenizer)
    config = AutoConfig.from_pretrained(model_dir)
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(model_dir.glob("*.safetensors")):
        tensors.update(load_file(shard))
    arch = getattr(gguf.MODEL_ARCH, SUPPORTED[config.model_type])
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    rope_factors = _llama3_rope_factors(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for qtype in types:
        final = out_dir / f"{name}-{qtype}.gguf"
        tmp = out_dir / f".{final.name}.tmp"
        try:
            writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[arch])
            _add_model_metadata(writer, config, qtype, name)
            _add_tokenizer(writer, tok, pre, config.vocab_size)
            if rope_factors is not None:  # llama3 scaling: llama.cpp divides each rotary frequency by its factor
                writer.add_tensor(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", rope_factors)
            for hf_name, tensor in tensors.items():
                if hf_name == "lm_head.weight" and config.tie_word_embeddings:
                    continue
                gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
                if gguf_name is None:
                    raise TunesmithError(
                        "Cannot export GGUF",
                        [Problem(hf_name, "a tensor llama.cpp's llama layout has no name for", CONVERT_HINT)],
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


def pre_tokenizer_name(
    tok, model_dir: Path | None = None, source_gguf: Path | None = None, override: str | None = None
) -> str:
    """llama.cpp's name for how `tok` splits text before BPE (`tokenizer.ggml.pre`): `override` (a name llama.cpp
    knows), else the source GGUF's, else by the hash of the check text's tokenization (`PRE_TOKENIZERS`), else
    `gpt-2` for GPT-2's own split; a TunesmithError naming the tokenizer otherwise."""
    known = set(PRE_TOKENIZERS.values())
    if override is not None:
        if override not in known:
            raise TunesmithError(
                "Cannot export GGUF",
                [
                    Problem(
                        "export pre_tokenizer",
                        f"{override!r} is not a llama.cpp pre-tokenizer name tunesmith knows",
                        f"one of {', '.join(sorted(known))}",
                    )
                ],
            )
        return override
    if source_gguf is not None and Path(source_gguf).exists():
        import gguf

        field = gguf.GGUFReader(str(source_gguf)).get_field("tokenizer.ggml.pre")
        if field is not None:
            return field.contents()
    digest = sha256(str(tok.encode(CHECK_TEXT)).encode()).hexdigest()
    if digest in PRE_TOKENIZERS:
        return PRE_TOKENIZERS[digest]
    spec = _tokenizer_spec(tok)
    if _splits_like_gpt2(spec):
        return "gpt-2"
    pre = json.dumps(spec.get("pre_tokenizer"), separators=(",", ":"))
    raise TunesmithError(
        "Cannot export GGUF",
        [
            Problem(
                f"the tokenizer of {model_dir}" if model_dir is not None else "the tokenizer",
                f"llama.cpp has no pre-tokenizer known to split text as this one does (check-text hash "
                f"{digest[:16]}, pre_tokenizer {pre[:160]}); written as llama.cpp's `default`, llama.cpp and "
                "Ollama would split text (JSON's quotes, digit runs) differently from training",
                f"{CONVERT_HINT} (an updated copy knows more tokenizers), or, if you know llama.cpp's name for "
                "this pre-tokenizer, give it: export.gguf_pre_tokenizer: NAME (ExportOptions(gguf_pre_tokenizer=NAME))",
            )
        ],
    )


def _tokenizer_spec(tok) -> dict[str, Any]:
    """The fast tokenizer's JSON; a TunesmithError for one that is not byte-level BPE (llama.cpp's `gpt2`)."""
    backend = getattr(tok, "backend_tokenizer", None)
    spec = json.loads(backend.to_str()) if backend is not None else {}
    model = spec.get("model", {})
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        what = "a SentencePiece-style BPE (byte fallback)" if model.get("byte_fallback") else f"a {model.get('type')}"
        raise TunesmithError(
            "Cannot export GGUF",
            [
                Problem(
                    "tokenizer",
                    f"{what} tokenizer; the GGUF writer covers byte-level BPE (gpt2) ones",
                    CONVERT_HINT,
                )
            ],
        )
    return spec


def _splits_like_gpt2(spec: dict[str, Any]) -> bool:
    """The whole pre-tokenization is GPT-2's regex (llama.cpp's `gpt-2`): no normalizer, a plain ByteLevel
    pre-tokenizer with its regex and no prefix space, BPE merges applied as ranked."""
    pre, model = spec.get("pre_tokenizer") or {}, spec.get("model") or {}
    return (
        spec.get("normalizer") is None
        and pre.get("type") == "ByteLevel"
        and pre.get("use_regex", True) is True
        and not pre.get("add_prefix_space")
        and not model.get("ignore_merges")
        and not model.get("continuing_subword_prefix")
        and not model.get("end_of_word_suffix")
    )


def _check_vocab_size(tok, vocab_size: int | None, model_dir: Path) -> None:
    highest = max(tok.get_vocab().values())
    if vocab_size is not None and highest >= vocab_size:
        raise TunesmithError(
            "Cannot export GGUF",
            [
                Problem(
                    str(model_dir / "config.json"),
                    f"vocab_size {vocab_size} is smaller than the tokenizer (token id {highest})",
                    "resize the model's embeddings to the tokenizer (model.resize_token_embeddings) and retrain",
                )
            ],
        )


def _rope_params(config: Any) -> dict[str, Any]:
    """The RoPE parameters of a config (transformers' `rope_parameters`, older `rope_scaling`), a dict or object."""
    get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
    params = dict(get("rope_parameters") or get("rope_scaling") or {})
    params.setdefault("rope_type", params.get("type") or "default")
    return params


def _rope_problems(model_dir: Path, config: dict) -> list[Problem]:
    params = _rope_params(config)
    kind = params["rope_type"]
    where = f"{model_dir / 'config.json'}: rope_parameters"
    if kind not in ROPE_KEYS:
        return [
            Problem(
                where,
                f"RoPE scaling {kind!r} has no GGUF form here (llama3, linear and yarn do); written as plain RoPE, "
                "every runtime would run a different model",
                CONVERT_HINT,
            )
        ]
    extra = sorted(set(params) - ROPE_KEYS[kind] - {"rope_type", "type"})
    if extra:
        return [
            Problem(
                where,
                f"{kind} RoPE scaling with {', '.join(extra)}, which the GGUF writer does not carry",
                CONVERT_HINT,
            )
        ]
    if kind == "yarn" and "original_max_position_embeddings" not in params:
        return [Problem(where, "yarn RoPE scaling without original_max_position_embeddings", CONVERT_HINT)]
    return []


def _llama3_rope_factors(config):
    """`rope_freqs.weight` for llama3 RoPE scaling, as convert_hf_to_gguf.py's LlamaModel.generate_extra_tensors
    computes it (each rotary frequency's divisor); None for other scalings."""
    import numpy as np

    params = _rope_params(config)
    if params["rope_type"] != "llama3":
        return None
    base = params.get("rope_theta", 10000.0)
    dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    freqs = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor = params.get("factor", 8.0)
    low_freq_factor = params.get("low_freq_factor", 1.0)
    high_freq_factor = params.get("high_freq_factor", 4.0)
    # transformers (what the model was trained with) reads it from the scaling parameters; convert_hf_to_gguf.py
    # from the top of the config, defaulting to 8192 (Llama 3.1 / 3.2 have 8192 in both places)
    old_context_len = (
        params.get("original_max_position_embeddings")
        or getattr(config, "original_max_position_embeddings", None)
        or 8192
    )
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_freq_wavelen:
            factors.append(1)
        elif wavelen > low_freq_wavelen:
            factors.append(factor)
        else:
            smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


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
    if head_dim != config.hidden_size // config.num_attention_heads:  # llama.cpp assumes hidden / heads otherwise
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_dimension_count(head_dim)
    params = _rope_params(config)
    theta = params.get("rope_theta") or getattr(config, "rope_theta", None)
    if theta:
        writer.add_rope_freq_base(float(theta))
    if params["rope_type"] == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(params["factor"]))
    elif params["rope_type"] == "yarn":  # as convert_hf_to_gguf.py writes it
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(float(params["factor"]))
        writer.add_rope_scaling_orig_ctx_len(int(params["original_max_position_embeddings"]))
        if params.get("beta_fast") is not None:
            writer.add_rope_scaling_yarn_beta_fast(float(params["beta_fast"]))
        if params.get("beta_slow") is not None:
            writer.add_rope_scaling_yarn_beta_slow(float(params["beta_slow"]))
    writer.add_vocab_size(config.vocab_size)
    file_type = {
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
        "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
    }[qtype]
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)  # as convert_hf_to_gguf.py writes it


def adds_bos(tok) -> bool:
    """Whether the tokenizer puts its BOS token before the text it encodes (the GGUF's `add_bos_token`): a runtime
    reading the GGUF then adds it before every prompt itself."""
    probe = tok("a").input_ids
    return bool(probe) and tok.bos_token_id is not None and probe[0] == tok.bos_token_id


def _add_tokenizer(writer, tok, pre: str, vocab_size: int | None = None) -> None:
    """The byte-level BPE tokenizer as llama.cpp's `gpt2` model: every id's token up to the config's `vocab_size`
    (ids the tokenizer lacks as unused `[PADn]` tokens, as convert_hf_to_gguf.py writes them, so the list matches
    the embedding's rows), its type, the merges, the special tokens (EOS = the end-of-turn token) and the chat
    template."""
    import gguf

    spec = _tokenizer_spec(tok)
    model = spec["model"]
    added = {t["id"]: t for t in spec.get("added_tokens", [])}
    by_id = {i: t for t, i in model["vocab"].items()} | {i: t["content"] for i, t in added.items()}
    size = max(max(by_id) + 1, vocab_size or 0)
    tokens, types = [], []
    for i in range(size):
        if i not in by_id:  # a hole in the vocabulary, or an embedding row past it, still needs a token
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
    writer.add_add_bos_token(adds_bos(tok))
    if tok.chat_template:
        writer.add_chat_template(tok.chat_template)
