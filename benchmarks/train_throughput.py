"""Training throughput and memory on CPU: TRL's defaults vs tunesmith's settings, side by side in one run.

    .venv/bin/python benchmarks/train_throughput.py [--steps 6] [--project examples/support-triage]

Baseline = what a plain TRL SFT + LoRA run does: fp32 weights under bf16 autocast, LoRA dropout 0.05, gradient
checkpointing on (TRL's default), TRL's fused LM-head loss, random batches. tunesmith = no LoRA dropout, no
checkpointing, the LM head on labeled positions only, length-grouped batches; a third row adds
`train.base_precision: bf16` (the frozen base in bf16, the adapter in fp32). Same data, model, rank, batch size and step count; each side runs in its own
process, so its peak RSS is its own. Prints tokens/s (non-padding), peak RSS, final loss, the ratios, and the
achieved FLOP/s as a share of this machine's measured bf16 matmul peak.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock


def measure(project: Path, steps: int, baseline: bool, extra: list[str] | None = None) -> dict:
    from tunesmith.config import load_config
    from tunesmith.data.formats import load_records
    from tunesmith.models import resolve_model
    from tunesmith.pipeline import data_files
    from tunesmith.train import sft

    overrides = [f"train.max_steps={steps}", f"train.logging_steps={steps}", f"train.save_steps={steps * 10}"]
    if baseline:
        overrides += ["train.lora_dropout=0.05", "train.gradient_checkpointing=true"]
    overrides += extra or []
    cfg, proj = load_config(project, overrides)
    records = load_records(data_files(cfg, proj))
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if baseline:
            import trl

            real_config = trl.SFTConfig

            def random_batches(*a, **k):
                return real_config(*a, **{**k, "train_sampling_strategy": "random"})

            from tunesmith.models import load_model

            stack.enter_context(mock.patch.object(sft, "_cpu_trainer_class", lambda base: base))
            # the model as loaded by default: fp32 weights, bf16 only under autocast
            stack.enter_context(mock.patch.object(sft, "load_training_model", lambda c, ref, p: load_model(ref)))
            stack.enter_context(mock.patch.object(trl, "SFTConfig", random_batches))
        result = sft.train_sft(cfg, resolve_model(cfg.model.base), records, Path(tmp))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def matmul_peak_gflops(n: int = 2048, repeats: int = 10) -> float:
    """This machine's bf16 matmul throughput (the ceiling a training step could reach)."""
    import torch

    a, b = torch.randn(n, n, dtype=torch.bfloat16), torch.randn(n, n, dtype=torch.bfloat16)
    a @ b
    began = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - began) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--project", type=Path, default=Path("examples/support-triage"))
    parser.add_argument("--child", choices=["baseline", "tunesmith", "bf16-base"])
    args = parser.parse_args()
    if args.child:
        extra = ["train.base_precision=bf16"] if args.child == "bf16-base" else []
        print("RESULT " + json.dumps(measure(args.project, args.steps, args.child == "baseline", extra), default=str))
        return
    runs = {}
    for side in ("baseline", "tunesmith", "bf16-base"):
        out = subprocess.run([sys.executable, __file__, "--child", side, "--steps", str(args.steps), "--project",
                              str(args.project)], capture_output=True, text=True, check=True).stdout
        runs[side] = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    base, ours, lean = runs["baseline"], runs["tunesmith"], runs["bf16-base"]
    peak = matmul_peak_gflops()
    params = ours["total_params"]
    print(f"\n{'setting':<30}{'steps':>6}{'wall s':>9}{'tokens/s':>10}{'peak RSS MB':>13}{'loss':>8}")
    for name, r in (("TRL defaults (baseline)", base), ("tunesmith defaults", ours),
                    ("tunesmith, bf16 frozen base", lean)):
        print(f"{name:<30}{r['steps']:>6}{r['wall_s']:>9.1f}{r['tokens_per_s']:>10.1f}{r['peak_rss_mb']:>13.0f}"
              f"{r['train_loss']:>8.3f}")
    print(f"speed-up: {ours['tokens_per_s'] / base['tokens_per_s']:.2f}x tokens/s, "
          f"{ours['peak_rss_mb'] / base['peak_rss_mb']:.2f}x peak RSS, loss {ours['train_loss']:.3f} vs "
          f"{base['train_loss']:.3f} (same data, model, rank, batch and steps)")
    print(f"with train.base_precision: bf16: {lean['tokens_per_s'] / base['tokens_per_s']:.2f}x tokens/s, "
          f"{lean['peak_rss_mb'] / base['peak_rss_mb']:.2f}x peak RSS, loss {lean['train_loss']:.3f}")
    # LoRA: forward 2N FLOPs/token plus backward through the frozen weights for activation gradients, 2N
    # (their weight gradients are never computed): ~4N per token, attention's own terms left out.
    achieved = 4 * params * ours["tokens_per_s"] / 1e9
    print(f"achieved ~{achieved:.1f} GFLOP/s (4 x {params / 1e6:.0f}M parameters x tokens/s) = "
          f"{achieved / peak:.1%} of this machine's measured bf16 matmul peak ({peak:.0f} GFLOP/s, 2048^3)")


if __name__ == "__main__":
    main()
