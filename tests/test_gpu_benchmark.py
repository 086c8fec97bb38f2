"""benchmarks/gpu.py runs end to end on a CPU (`--device cpu --tiny`): the same code path as on a GPU (each row in
its own process, TRL defaults vs tunesmith, the estimator beside the measurement, the batched eval backend), on a
tiny shape for 2 steps. The GPU figures themselves are measured only on a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_benchmark_runs_end_to_end_on_a_cpu(tmp_path):
    out = tmp_path / "rows.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu.py"),
            "--device",
            "cpu",
            "--tiny",
            "--methods",
            "lora",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout
    assert "packages: liger-kernel" in text and "flash-attn" in text and "bitsandbytes" in text
    assert "measured matmul peak" in text and "batched eval backend" in text
    assert "3 of 3 rows measured" in text
    report = json.loads(out.read_text())
    train = {r["side"]: r for r in report["rows"] if r["kind"] == "train"}
    assert set(train) == {"trl", "tunesmith"} and not any("error" in r for r in report["rows"])
    trl, ours = train["trl"], train["tunesmith"]
    # the two sides ran the recipes they claim to
    assert trl["gradient_checkpointing"] and not ours["gradient_checkpointing"]
    assert trl["trainer_class"] == "SFTTrainer" and trl["steps_done"] == ours["steps_done"] == 2
    assert trl["trainable_params"] == ours["trainable_params"] > 0
    for r in (trl, ours):
        assert r["tokens_per_s"] > 0 and r["estimate_gib"] > 0 and r["mfu"] > 0
        assert r["peak_gib"] is None  # no CUDA: the estimate is not compared with a CPU's RSS
    # Model FLOPs count the LM head on every token; tunesmith runs it on labeled positions only, and the tiny
    # shape's head (64 x 49,152) is most of its FLOPs, so only TRL's row is bounded by the measured peak (on an
    # fp32-only CPU tunesmith's tiny row read 0.8-1.0 of it).
    assert trl["mfu"] < 1
    # one pass over the same examples: the mean step losses agree closely (random weights: ~ln(vocab))
    assert abs(trl["mean_loss"] - ours["mean_loss"]) < 0.05
    evaluation = next(r for r in report["rows"] if r["kind"] == "eval")
    assert evaluation["tokens_per_s"] > 0 and evaluation["tokens"] > 0
