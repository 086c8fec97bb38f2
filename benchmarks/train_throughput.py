"""Training throughput and memory on CPU: TRL's defaults vs tunesmith's settings, side by side in one run.

    .venv/bin/python benchmarks/train_throughput.py [--steps 6] [--project examples/support-triage]

Baseline = what a plain TRL SFT + LoRA run does: fp32 weights under bf16 autocast, LoRA dropout 0.05, gradient
checkpointing on (TRL's default), TRL's fused LM-head loss, random batches. tunesmith = no LoRA dropout, no
checkpointing, the LM head on labeled positions only, the frozen linear weights stored in bf16 (what autocast
multiplies with anyway), length-grouped batches, a shared system prompt decoded once a batch (packed). Further rows
change one of those settings: the base kept in fp32, each `train.batching` (random, padding-free, packed), the
batch size, the shared prefix off, through the expanded cache instead of packed, packed below MIN_ROWS, or adapters
on the top layers only (`train.lora.layers`: the backward pass stops below them). Same
data, model, rank and step count; each row runs in its own process, so its peak RSS is its own. Prints tokens/s
(non-padding), peak RSS, final loss, the ratios to the baseline, and the achieved FLOP/s as a share of this
machine's measured bf16 matmul peak.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import tempfile
import time
from pathlib import Path
from unittest import mock

from _child import child_result, print_result


def measure(project: Path, steps: int, baseline: bool, extra: list[str] | None = None) -> dict:
    from tunesmith.config import load_config
    from tunesmith.data.formats import load_records
    from tunesmith.models import resolve_model
    from tunesmith.pipeline import data_files
    from tunesmith.train import sft

    overrides = [f"train.max_steps={steps}", f"train.logging_steps={steps}", f"train.save_steps={steps * 10}"]
    if baseline:
        overrides += ["train.lora.dropout=0.05", "train.gradient_checkpointing=true", "train.batching=random"]
    overrides += extra or []
    cfg, proj = load_config(project, overrides)
    records = load_records(data_files(cfg, proj))
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if baseline:
            from tunesmith.models import load_model

            stack.enter_context(mock.patch.object(sft, "_labeled_head_class", lambda base, *_: base))
            # the model as loaded by default: fp32 weights, bf16 only under autocast
            stack.enter_context(mock.patch.object(sft, "load_training_model", lambda c, ref, p: load_model(ref)))
        result = sft.train_sft(cfg, resolve_model(cfg.model.base), records, Path(tmp)).to_json()
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
    return 2 * n**3 * repeats / (time.perf_counter() - began) / 1e9


ROWS = {  # name -> (description, overrides); "baseline" also swaps in TRL's own model loading and loss
    "baseline": ("TRL defaults (baseline)", []),
    "tunesmith": ("tunesmith defaults", []),
    "fp32-base": ("  base weights kept in fp32", ["train.base_precision=fp32"]),
    "sdpa": ("  SDPA attention (not eager)", ["train.attention=sdpa"]),
    "random": ("  random batches", ["train.batching=random"]),
    "padding-free": ("  padding-free batches", ["train.batching=padding_free"]),
    "packed": ("  packed batches (bfd)", ["train.batching=packed"]),
    "batch-8": ("  batch size 8", ["train.batch_size=8"]),
    "batch-16": ("  batch size 16", ["train.batch_size=16"]),
    "batch-16-unshared": ("  batch size 16, shared prefix off", ["train.batch_size=16", "train.shared_prefix=false"]),
    "batch-8-unshared": ("  batch size 8, shared prefix off", ["train.batch_size=8", "train.shared_prefix=false"]),
    "batch-8-cached": ("  batch size 8, prefix cached", ["train.batch_size=8"]),
    "batch-4": ("  batch size 4 (under MIN_ROWS)", ["train.batch_size=4"]),
    "batch-4-shared": ("  batch size 4, prefix packed", ["train.batch_size=4"]),
    "top-15": ("  adapters on the last 15 layers", ["train.lora.layers=15"]),
    "top-10": ("  adapters on the last 10 layers", ["train.lora.layers=10"]),
}
SHARED_PREFIX = {  # row -> tunesmith.train.shared_prefix constants set in its process (no config field for them)
    "batch-8-cached": {"PACK_ATTENTION": 0},  # never one packed sequence: the expanded cache, two decoder calls
    "batch-4-shared": {"MIN_ROWS": 4},  # sharing below the floor
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--project", type=Path, default=Path("examples/support-triage"))
    parser.add_argument("--rows", default=",".join(ROWS), help="which rows to run (baseline and tunesmith always)")
    parser.add_argument("--child", choices=list(ROWS))
    args = parser.parse_args()
    if args.child:
        from tunesmith.train import shared_prefix

        for name, value in SHARED_PREFIX.get(args.child, {}).items():
            setattr(shared_prefix, name, value)
        result = measure(args.project, args.steps, args.child == "baseline", ROWS[args.child][1])
        print_result(result)
        return
    runs = {
        side: child_result(__file__, "--child", side, "--steps", str(args.steps), "--project", str(args.project))
        for side in dict.fromkeys(["baseline", "tunesmith", *args.rows.split(",")])
    }
    base, ours = runs["baseline"], runs["tunesmith"]
    peak = matmul_peak_gflops()
    params = ours["total_params"]
    print(
        f"\n{'setting':<30}{'steps':>6}{'wall s':>9}{'tokens/s':>10}{'vs TRL':>8}{'peak RSS MB':>13}{'vs TRL':>8}"
        f"{'loss':>8}"
    )
    for side, r in runs.items():
        print(
            f"{ROWS[side][0]:<30}{r['steps']:>6}{r['wall_s']:>9.1f}{r['tokens_per_s']:>10.1f}"
            f"{r['tokens_per_s'] / base['tokens_per_s']:>7.2f}x{r['peak_rss_mb']:>13.0f}"
            f"{r['peak_rss_mb'] / base['peak_rss_mb']:>7.2f}x{r['train_loss']:>8.3f}"
        )
    print(
        "(same data, model, rank, batch size and step count; packed and batch-size rows hold other numbers of "
        "examples per step; indented rows change one setting from tunesmith's defaults)"
    )
    # LoRA: forward 2N FLOPs/token plus backward through the frozen weights for activation gradients, 2N
    # (their weight gradients are never computed): ~4N per token, attention's own terms left out.
    achieved = 4 * params * ours["tokens_per_s"] / 1e9
    print(
        f"achieved ~{achieved:.1f} GFLOP/s (4 x {params / 1e6:.0f}M parameters x tokens/s) = "
        f"{achieved / peak:.1%} of this machine's measured bf16 matmul peak ({peak:.0f} GFLOP/s, 2048^3)"
    )


if __name__ == "__main__":
    main()
