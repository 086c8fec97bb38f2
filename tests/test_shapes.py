"""`shape:NAME` model references: published models' shapes with random weights, planned and built without a
download (the config alone is counted; the 8B model is never materialised here)."""

from __future__ import annotations

import pytest
import torch

from tunesmith.cost import Recipe, estimate_memory, model_shape, named_shape
from tunesmith.errors import TunesmithError
from tunesmith.shapes import PUBLISHED_PARAMS, SHAPES, shape_config


@pytest.mark.parametrize("name", list(PUBLISHED_PARAMS))
def test_each_shape_has_its_published_parameter_count(name):
    shape = model_shape(f"shape:{name}")  # built on the meta device: no memory, no weights
    assert shape.params == PUBLISHED_PARAMS[name]
    config = shape_config(name)
    assert (
        config.vocab_size == SHAPES[name]["vocab_size"]
        and config.tie_word_embeddings == SHAPES[name]["tie_word_embeddings"]
    )
    assert config.rope_parameters["rope_theta"] == SHAPES[name]["rope_theta"]


def test_the_size_table_and_the_shapes_agree():
    assert named_shape("1B").params == PUBLISHED_PARAMS["llama-3.2-1b"]
    assert named_shape("8B").params == PUBLISHED_PARAMS["llama-3.1-8b"]
    eight = model_shape("shape:llama-3.1-8b")
    assert (eight.hidden, eight.layers, eight.kv_dim, eight.intermediate, eight.vocab) == (
        4096,
        32,
        1024,
        14336,
        128256,
    )
    assert (
        estimate_memory(eight, Recipe(method="qlora")).total
        == estimate_memory(named_shape("8B"), Recipe(method="qlora")).total
    )


def test_a_shape_resolves_loads_with_random_weights_and_generates(tmp_path):
    from tunesmith.models import load_model, load_tokenizer, resolve_model
    from tunesmith.shapes import weights_dir

    ref = resolve_model("shape:llama-tiny")
    assert ref.identity.startswith("shape:llama-tiny:") and not list(ref.path.glob("*.safetensors"))
    tok = load_tokenizer(ref)
    model = load_model(ref, "bf16")
    assert next(model.parameters()).dtype == torch.bfloat16
    assert len(tok) <= model.config.vocab_size == SHAPES["llama-tiny"]["vocab_size"]
    again = load_model(ref, "bf16")  # seeded: the same random weights every time
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))
    enc = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**enc, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == enc["input_ids"].shape[1] + 3
    # loaders that read only from disk get the same weights written once
    from transformers import AutoModelForCausalLM

    on_disk = AutoModelForCausalLM.from_pretrained(weights_dir(ref.path), dtype=torch.bfloat16)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), on_disk.parameters()))


def test_an_unknown_shape_names_the_known_ones():
    from tunesmith.models import resolve_model

    with pytest.raises(TunesmithError) as exc:
        resolve_model("shape:llama-9b")
    assert "shape:llama-3.1-8b" in exc.value.problems[0].hint
