"""Training throughput on CPU: TRL's defaults vs tunesmith's CPU settings, side by side in one run.

    .venv/bin/python benchmarks/train_throughput.py [--steps 6] [--project examples/support-triage]

Baseline = what a plain TRL SFT + LoRA run does: LoRA dropout 0.05, gradient checkpointing on (TRL's default),
TRL's fused LM-head loss, random batches. tunesmith = no LoRA dropout, no checkpointing, the plain causal-LM
loss on CPU, length-grouped batches. Same data, model, rank, batch size and step count. Prints tokens/s and ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path
from unittest import mock

from tunesmith.config import load_config
from tunesmith.data.formats import load_records
from tunesmith.models import resolve_model
from tunesmith.pipeline import data_files
from tunesmith.train import sft


def measure(project: Path, steps: int, baseline: bool) -> dict:
    overrides = [f"train.max_steps={steps}", f"train.logging_steps={steps}", f"train.save_steps={steps * 10}"]
    if baseline:
        overrides += ["train.lora_dropout=0.05", "train.gradient_checkpointing=true"]
    cfg, proj = load_config(project, overrides)
    records = load_records(data_files(cfg, proj))
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if baseline:
            import trl

            real_config = trl.SFTConfig

            def random_batches(*a, **k):
                return real_config(*a, **{**k, "train_sampling_strategy": "random"})

            stack.enter_context(mock.patch.object(sft, "_cpu_trainer_class", lambda base: base))
            stack.enter_context(mock.patch.object(trl, "SFTConfig", random_batches))
        return sft.train_sft(cfg, resolve_model(cfg.model.base), records, Path(tmp))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--project", type=Path, default=Path("examples/support-triage"))
    args = parser.parse_args()
    base = measure(args.project, args.steps, baseline=True)
    ours = measure(args.project, args.steps, baseline=False)
    print(f"\n{'setting':<28}{'steps':>6}{'wall s':>9}{'tokens/s':>10}")
    for name, r in (("TRL defaults (baseline)", base), ("tunesmith CPU settings", ours)):
        print(f"{name:<28}{r['steps']:>6}{r['wall_s']:>9.1f}{r['tokens_per_s']:>10.1f}")
    print(f"speed-up: {ours['tokens_per_s'] / base['tokens_per_s']:.2f}x tokens/s "
          f"({base['wall_s'] / ours['wall_s']:.2f}x wall time; same data, model, rank, batch and steps)")


if __name__ == "__main__":
    main()
