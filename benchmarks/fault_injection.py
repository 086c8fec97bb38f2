"""Fault injection: SIGKILL a training run N times at seeded points and `tunesmith run` between and within every
stage, resuming each time; print what survived.

    .venv/bin/python benchmarks/fault_injection.py [--kills 20] [--seed 0] [--steps 44] [--part pipeline]

Training: a LoRA run on a tiny random model (fp32, batch 2 x accumulation 2, a checkpoint every step) in a child
process killed with SIGKILL mid-accumulation, after a step, inside each part of a checkpoint write (weights written
but no optimizer state; no RNG state; a torn trainer_state.json), while the oldest checkpoint is being rotated out,
at random times, and finally while the finished run removes its checkpoints. Before each restart the checkpoints on
disk are classified strictly (every file present and parsing); the restart must resume from the newest complete
one. The final adapter is compared with an uninterrupted run's (must be within 1e-6).

Pipeline: `python -m tunesmith run` on a tiny project, killed inside each stage (a seeded delay after its run
directory appears; training at its first checkpoint) and right after each stage's COMPLETED marker; no run
directory may ever be reported as cached unless it had COMPLETED when that run started. The shared harness is
tests/faults/harness.py (the tests run the same checks with fewer kills).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def training(model_dir: Path, work: Path, kills: int, seed: int, steps: int) -> None:
    from faults.harness import kill_and_resume, max_adapter_difference
    from faults.train_child import config, training_records
    from tunesmith.models import resolve_model
    from tunesmith.train.sft import train_sft

    spec = {"steps": steps, "grad_accum": 2}
    began = time.perf_counter()
    train_sft(config(spec), resolve_model(str(model_dir)), training_records(spec), work / "whole")
    whole_s = time.perf_counter() - began
    try:
        figures = kill_and_resume(model_dir, work / "killed", kills=kills, seed=seed, **spec)
        verdict = "every resume from the newest complete checkpoint"
    except AssertionError as exc:
        print(f"training: FAILED: {exc}")
        return
    worst = max_adapter_difference(work / "whole", work / "killed")
    print(f"training ({steps} steps, batch 2 x accumulation 2, a checkpoint every step, seed {seed})")
    print(
        f"  SIGKILLs:                        {figures['kills']} (asked {kills})"
        + ("  [a timed kill came after the end]" if figures["finished_early"] else "")
    )
    print("  by point:                        " + ", ".join(f"{k} {v}" for k, v in sorted(figures["by_point"].items())))
    print(f"  kills leaving a partial ckpt:    {figures['partial_left']}")
    print(f"  starts resuming a checkpoint:    {figures['resumed_from_checkpoint']} of {figures['starts']}")
    print(f"  starts resuming a partial one:   0 ({verdict})")
    print(f"  final steps:                     {figures['steps']}")
    print(f"  max |adapter - uninterrupted|:   {worst:.3g}  ({'PASS' if worst <= 1e-6 else 'FAIL'}, limit 1e-6)")
    print(
        f"  wall:                            {figures['wall_s']:.0f} s for {figures['starts']} processes "
        f"(uninterrupted run in-process: {whole_s:.1f} s)"
    )


def pipeline(model_dir: Path, work: Path, seed: int) -> None:
    from conftest import write_tiny_project
    from faults.harness import STAGES, kill_pipeline, pipeline_plan

    project = write_tiny_project(
        work / "proj", model_dir, "max_steps: 4, batch_size: 4, save_steps: 2, logging_steps: 1, precision: fp32"
    )
    plan = pipeline_plan(seed, within=STAGES, between=STAGES[:-1])
    try:
        figures = kill_pipeline(project, work / "home", plan)
    except AssertionError as exc:
        print(f"pipeline: FAILED: {exc}")
        return
    print(f"pipeline (`tunesmith run`, {len(STAGES)} stages, seed {seed})")
    print(f"  kill points planned:             {len(plan)} ({len(STAGES)} within stages, {len(STAGES) - 1} between)")
    print(f"  SIGKILLs landed:                 {figures['kills']}")
    print(f"  runs until complete:             {figures['runs']}")
    print(
        f"  run dirs a kill left incomplete: {figures['incomplete_seen']}; still incomplete at the end: "
        f"{figures['left_incomplete']} (of them killed before their inputs.json was written, so replaced by a "
        f"new directory: {figures['orphans']})"
    )
    print(
        f"  stages served as cached:         {figures['cached_reports']}, "
        "all with COMPLETED before the run began; without it: 0"
    )
    print(f"  train resumed from:              {Path(figures['train_resumed_from'] or 'nothing').name}")
    print("  every stage completed once:      yes")
    print(f"  wall:                            {figures['wall_s']:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=44)
    parser.add_argument("--part", choices=["all", "training", "pipeline"], default="all")
    args = parser.parse_args()
    from tunesmith.models import make_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["TUNESMITH_HOME"] = str(work / "home")
        model_dir = make_tiny_model(work / "model")
        if args.part in ("all", "training"):
            training(model_dir, work, args.kills, args.seed, args.steps)
        if args.part in ("all", "pipeline"):
            pipeline(model_dir, work, args.seed)


if __name__ == "__main__":
    main()
