"""The GPU path on a CUDA device (skipped where there is none, so CI stays green on CPU): a QLoRA 4-bit step, the
training invariants (exact loss mask, trainable-moved/frozen-still, batch 8x1 = 1x8), an exact resume, a GGUF
export of a GPU-trained adapter, `train --check`, and the memory plan against a real 1B-shaped step.

Tiny models from conftest.py keep every test short; the memory-plan test builds `shape:llama-3.2-1b` on the GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import interrupted_training, routing_records, train_config
from faults.harness import max_adapter_difference
from tunesmith.models import make_tiny_model, resolve_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


_records = routing_records


def _cfg(**train):
    return train_config(**{"precision": "bf16", "lora": {"r": 4, "alpha": 8}, **train})


@pytest.fixture
def on_cuda(monkeypatch):
    """Records the device every trainer built by tunesmith trained on."""
    from tunesmith.train import sft

    devices: list[str] = []
    real = sft.build_trainer

    def spy(*a, **k):
        built = real(*a, **k)
        trainer = built[0]
        trainer.add_callback(_DeviceProbe(devices))
        return built

    monkeypatch.setattr(sft, "build_trainer", spy)
    return devices


def _DeviceProbe(devices: list[str]):
    """A trainer callback that notes the model's device when training begins."""
    from transformers import TrainerCallback

    class Probe(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            devices.append(next(model.parameters()).device.type)

    return Probe()


def test_a_qlora_step_runs_on_4bit_cuda_layers(tmp_path, tiny_tok, on_cuda):
    bnb = pytest.importorskip("bitsandbytes")
    from safetensors.torch import load_file

    from tunesmith.train import sft

    model_dir = make_tiny_model(tmp_path / "m64", tiny_tok, hidden_size=64)  # bitsandbytes blocks of 64
    seen = {}
    real = sft.load_training_model

    def spy(*a, **k):
        model = real(*a, **k)
        layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
        seen["4bit"], seen["device"] = len(layers), layers[0].weight.device.type
        return model

    sft.load_training_model = spy
    try:
        result = sft.train_sft(_cfg(method="qlora"), resolve_model(str(model_dir)), _records(), tmp_path / "run")
    finally:
        sft.load_training_model = real
    assert seen == {"4bit": 2 * 7, "device": "cuda"} and on_cuda == ["cuda"]
    assert result.steps == 2 and result.precision == "bf16" and torch.isfinite(torch.tensor(result.train_loss))
    weights = load_file(tmp_path / "run" / "adapter" / "adapter_model.safetensors")
    assert all(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k)


def test_the_training_invariants_hold_on_cuda(tiny_model_dir, on_cuda):
    from tunesmith.train.invariants import check_invariants

    results = {r.name: r for r in check_invariants(_cfg(), resolve_model(str(tiny_model_dir)), _records())}
    assert set(on_cuda) == {"cuda"}
    for name in ("label mask is exact", "trainable move, frozen stay", "batch 8x1 = batch 1x8"):
        assert results[name].passed, (name, results[name].detail)
    assert results["batch 8x1 = batch 1x8"].figures["relative_difference"] < 1e-3


def test_a_resumed_cuda_run_ends_with_the_adapter_of_an_uninterrupted_one(tmp_path, tiny_model_dir):
    """Killed right after checkpoint-2 of 4 and resumed on the GPU: the final adapter equals the uninterrupted run's
    (fp32, as the CPU test; the RNG state saved includes CUDA's)."""
    from tunesmith.train.sft import train_sft

    ref = resolve_model(str(tiny_model_dir))
    cfg = _cfg(
        max_steps=4, save_steps=2, batch_size=2, lr=5e-3, precision="fp32", lora={"r": 4, "alpha": 8, "dropout": 0.1}
    )
    records = _records(16)
    train_sft(cfg, ref, records, tmp_path / "whole")
    interrupted_training(cfg, ref, records, tmp_path / "killed", at_step=2)
    resumed = train_sft(cfg, ref, records, tmp_path / "killed")
    assert resumed.resumed_from.endswith("checkpoint-2") and resumed.steps == 4
    worst = max_adapter_difference(tmp_path / "whole", tmp_path / "killed")  # asserts the same tensors
    assert worst <= 1e-6, worst


def test_a_gpu_trained_adapter_exports_to_gguf(tmp_path, tiny_model_dir, on_cuda):
    from transformers import AutoModelForCausalLM

    from tunesmith.export.merge import ExportOptions, export_artifacts
    from tunesmith.train.sft import train_sft

    ref = resolve_model(str(tiny_model_dir))
    train_sft(_cfg(max_steps=3), ref, _records(), tmp_path / "run")
    assert on_cuda == ["cuda"]
    out = tmp_path / "export"
    export_artifacts(ref, tmp_path / "run" / "adapter", ["merged", "gguf"], out, ExportOptions(gguf_types=["f16"]))
    gguf_file = out / "gguf" / "model-f16.gguf"
    assert gguf_file.exists()
    merged = AutoModelForCausalLM.from_pretrained(out / "merged", dtype=torch.float32)
    back = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)
    theirs = back.state_dict()
    assert max((theirs[k] - v).abs().max().item() for k, v in merged.state_dict().items()) < 1e-3


def test_train_check_runs_on_cuda(tiny_project):
    from typer.testing import CliRunner

    from tunesmith.cli import app

    res = CliRunner().invoke(app, ["train", str(tiny_project), "--check"])
    assert "Training invariants" in res.output and "batch 8x1 = batch 1x8" in res.output
    assert res.output.count("pass") >= 3, res.output
    assert res.exit_code == (1 if "FAIL" in res.output else 0)


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_the_memory_plan_matches_a_1b_shaped_step(tmp_path, method):
    """One tunesmith step of the Llama-3.2-1B shape at 512 tokens, batch 4: the peak CUDA memory of training is
    within 15% of tunesmith.cost's estimate (without its CUDA-context allowance, which the allocator does not see)."""
    if method == "qlora":
        pytest.importorskip("bitsandbytes")
    import importlib.util
    import sys

    from tunesmith.cost import Recipe, estimate_memory, model_shape

    spec = importlib.util.spec_from_file_location(
        "gpu_bench", Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"
    )
    bench = importlib.util.module_from_spec(spec)
    sys.modules["gpu_bench"] = bench
    spec.loader.exec_module(bench)
    row = bench.train_row(
        {
            "kind": "train",
            "model": "shape:llama-3.2-1b",
            "shape": "llama-3.2-1b",
            "method": method,
            "seq": 512,
            "side": "tunesmith",
            "steps": 2,
            "batch": 4,
        }
    )
    est = estimate_memory(model_shape("shape:llama-3.2-1b"), Recipe(method=method, batch_size=4, seq_len=512))
    predicted = est.total - est.overhead
    assert row["device"] != "cpu" and row["steps_done"] == 2
    assert abs(predicted / row["peak_gib"] - 1) <= 0.15, (predicted, row["peak_gib"])
