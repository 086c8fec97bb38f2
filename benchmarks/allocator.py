"""Training speed under each memory allocator: glibc's malloc vs jemalloc (what `tunesmith run`, `train` and
`tune` run under when the system has it), side by side in one run, over enough steps to show a drift.

    .venv/bin/python benchmarks/allocator.py [--steps 300] [--project examples/support-triage]

Each row trains the project's records (all of them, no split, no validation) for the same number of LoRA steps
with tunesmith's defaults, in its own process started with that allocator (`LD_PRELOAD`). Prints tokens/s over the
first and the last fifth of the steps and over the whole run, the drift (last fifth / first fifth), the speed
ratio to glibc, CPU time in user and kernel mode, and the peak RSS. Needs libjemalloc (`apt install
libjemalloc2`); without it only the glibc row runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from _child import child_result, print_result
from tunesmith import allocator

# torch's CPU launcher's settings for jemalloc (torch/backends/xeon/run_cpu.py)
TORCH_LAUNCHER_CONF = "oversize_threshold:1,background_thread:true,metadata_thp:auto"
ROWS = {  # name -> (description, MALLOC_CONF or None; "system" runs without jemalloc)
    "system": ("glibc malloc (baseline)", None),
    "jemalloc": ("jemalloc (tunesmith: its own defaults)", ""),
    "jemalloc-torch": ("jemalloc, torch's launcher settings", TORCH_LAUNCHER_CONF),
}


def measure(project: Path, steps: int) -> dict:
    from tunesmith.config import load_config
    from tunesmith.data.formats import load_records
    from tunesmith.models import resolve_model
    from tunesmith.pipeline import data_files
    from tunesmith.train import sft

    log_every = max(steps // 30, 1)
    overrides = [f"train.max_steps={steps}", f"train.logging_steps={log_every}", f"train.save_steps={steps * 10}"]
    cfg, proj = load_config(project, overrides)
    records = load_records(data_files(cfg, proj))
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        sft.train_sft(cfg, resolve_model(cfg.model.base), records, Path(tmp))
        rows = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    wall = time.perf_counter() - began
    rates = [(row["step"], row["tokens_per_s"]) for row in rows if "loss" in row and "tokens_per_s" in row]
    fifth = steps / 5
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "allocator": allocator.in_use(),
        "first": statistics.mean(rate for step, rate in rates if step <= fifth),
        "last": statistics.mean(rate for step, rate in rates if step > steps - fifth),
        "tokens": rows[-1]["tokens_seen"],
        "train_s": wall,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def environment(row: str) -> dict[str, str] | None:
    """The child's environment for `row`, or None when the row cannot run here (no jemalloc)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF")}
    env[allocator.SWITCH] = "system"
    conf = ROWS[row][1]
    if conf is None:
        return env
    library = allocator.find_jemalloc()
    if library is None:
        return None
    env["LD_PRELOAD"] = str(library)
    if conf:
        env["MALLOC_CONF"] = conf
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--project", type=Path, default=Path("examples/support-triage"))
    parser.add_argument("--rows", default=",".join(ROWS), help="which rows to run (system always)")
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        print_result(measure(args.project, args.steps))
        return
    runs = {}
    for row in dict.fromkeys(["system", *args.rows.split(",")]):
        env = environment(row)
        if env is None:
            print(f"{row}: skipped (no libjemalloc on this machine: apt install libjemalloc2)")
            continue
        runs[row] = child_result(
            __file__, "--child", "--steps", str(args.steps), "--project", str(args.project), env=env
        )
        print(f"{row}: done in {runs[row]['train_s']:.0f} s", flush=True)
    base = runs["system"]
    print(
        f"\n{args.steps} steps on {args.project}\n{'allocator':<38}{'in use':>9}{'first 1/5':>10}{'last 1/5':>9}"
        f"{'drift':>7}{'tok/s':>7}{'vs glibc':>9}{'user s':>8}{'sys s':>7}{'RSS MB':>8}"
    )
    for row, r in runs.items():
        rate = r["tokens"] / r["train_s"]
        print(
            f"{ROWS[row][0]:<38}{r['allocator']:>9}{r['first']:>10.0f}{r['last']:>9.0f}{r['last'] / r['first']:>7.2f}"
            f"{rate:>7.0f}{rate / (base['tokens'] / base['train_s']):>8.2f}x{r['user_s']:>8.0f}{r['sys_s']:>7.0f}"
            f"{r['peak_rss_mb']:>8.0f}"
        )
    print("(tokens/s: non-padding tokens per second of training, model loading and saving included in the whole)")


if __name__ == "__main__":
    main()
