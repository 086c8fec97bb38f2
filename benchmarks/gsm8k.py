"""GSM8K end to end: the reasoning-task path (task.type: math, the numeric scorer, GRPO's numeric reward) on real data.

    .venv/bin/python benchmarks/gsm8k.py [--modes check,sft,grpo] [--train 400] [--test 80] [--max-new-tokens 320]
                                         [--grpo-steps 3] [--grpo-from sft|base] [--threads 1]
                                         [--work /tmp/tunesmith-gsm8k]

Built from ../shared/data/gsm8k/train.jsonl (GSM8K's train split; its test split is held back, and nothing is copied
into the repository). Each phase runs tunesmith's own CLI in a subprocess, timed:

- `check`: `tunesmith data check` on the whole file, read through `data.columns: {prompt: question, reply: answer}`
  with `task.type: math`; finding counts per code and severity.
- `sft`: a seeded sample written to the work directory as raw `{question, answer}` rows — `--train` problems to train
  on and `--test` other problems as the held-out test file (`data.test`) — and `tunesmith run` (LoRA SFT on the
  built-in model, one pass). Base vs tuned on the held-out problems, scored by the number each worked answer ends with:
  accuracy with the paired delta and its interval, the share of replies that mark an answer (`#### <number>`), the
  token-limit rate. Replies are cut at `--max-new-tokens` (320: GSM8K's worked answers run to 292 tokens at the 99th
  percentile, 454 at most, and none of the default sample's 80 test answers is longer than 294; 0 derives the limit
  from the longest training reply, tunesmith's default: about 450 tokens for the default sample).
- `grpo`: `--grpo-steps` GRPO steps with the math task's default reward (`{type: numeric}`), sampling
  `--grpo-tokens` per reply, from the SFT adapter (`--grpo-from sft`, the default: the SFT run exported as a merged
  model that a second project trains from, so its "base" is the SFT model and the delta is GRPO's own) or from the
  base model (`--grpo-from base`: the SFT project with `--set train.objective=grpo`; a 135M base rarely gets a
  problem right, so a group of 4 replies often scores all 0 and teaches nothing). Reward mean at the first and last
  step, and the held-out figures as for `sft`.

On a CPU that other jobs share, `--threads 1` (OMP_NUM_THREADS for tunesmith's processes) can be several times
faster than torch's default of one thread per core, which then wait on each other.

Prints one table per phase and the wall time of each.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "train.jsonl"
SYSTEM = "Solve the maths problem step by step. End with a line '#### <answer>', the answer a number."
TUNESMITH = [sys.executable, "-m", "tunesmith"]
ENV = dict(os.environ)


def problems() -> list[dict]:
    if not DATA.exists():
        sys.exit(f"{DATA} not found: this benchmark needs ../shared/data/gsm8k")
    with DATA.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def sample(n_train: int, n_test: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(train, test): disjoint seeded samples of the train file's problems."""
    rows = problems()
    random.Random(seed).shuffle(rows)
    return rows[:n_train], rows[n_train : n_train + n_test]


def config(base: str, args: argparse.Namespace) -> str:
    """The project's tunesmith.yaml: a math task read through the column mapping, one SFT pass, no general probe."""
    limit = f"\n  max_new_tokens: {args.max_new_tokens}" if args.max_new_tokens else ""  # 0: derived
    return f"""\
model: {{base: "{base}"}}
task:
  type: math
  system_prompt: "{SYSTEM}"
data:
  train: [data/train.jsonl]
  test: [data/test.jsonl]
  columns: {{prompt: question, reply: answer}}
  validation_max: {args.validation}
eval:
  general_probe: false
  batch_size: 40{limit}
train:
  method: lora
  epochs: 1
  lr: 1.0e-3
  batch_size: 8
  eval_steps: 100000   # the validation set is evaluated once, at the end
"""


def write_project(root: Path, base: str, args: argparse.Namespace) -> Path:
    train, test = sample(args.train, args.test, args.seed)
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train), ("test", test)):
        path = root / "data" / f"{name}.jsonl"
        path.parent.mkdir(exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (root / "tunesmith.yaml").write_text(config(base, args))
    return root


def tunesmith(args: list[str], log: Path) -> tuple[int, float]:
    """Run a tunesmith command, its output to `log`: (exit code, minutes)."""
    began = time.perf_counter()
    with log.open("w") as fh:
        done = subprocess.run([*TUNESMITH, *args], stdout=fh, stderr=subprocess.STDOUT, env=ENV)
    return done.returncode, (time.perf_counter() - began) / 60


def check_phase(work: Path) -> dict:
    """`tunesmith data check` over the whole train file through the column mapping, as a math task."""
    project = work / "check"
    project.mkdir(parents=True, exist_ok=True)
    (project / "tunesmith.yaml").write_text(
        f"task: {{type: math}}\ndata:\n  train: [{DATA}]\n  columns: {{prompt: question, reply: answer}}\n"
    )
    began = time.perf_counter()
    out = subprocess.run([*TUNESMITH, "data", "check", str(project), "--json"], capture_output=True, text=True, env=ENV)
    report = json.loads(out.stdout)
    return {
        "records": report["records"],
        "kept": report["kept"],
        "rejected": report["rejected"],
        "counts": {f"{c['code']} ({c['severity']})": c["count"] for c in report["counts"]},
        "minutes": (time.perf_counter() - began) / 60,
    }


def answers(run_dir: Path) -> dict:
    """Share of held-out replies that mark an answer (`#### <number>`), from an eval run's results."""
    from tunesmith.data.answers import marked_answer

    rows = [json.loads(line) for line in (run_dir / "results.jsonl").open()]
    held = [r for r in rows if r["suite"] == "heldout"]
    return {"marked": sum(marked_answer(r["output"] or "") is not None for r in held) / len(held), "n": len(held)}


def stage_dirs(summary: dict) -> dict[str, Path]:
    return {s["stage"]: Path(s["run"]) for s in summary["stages"] if s.get("run")}


def outcome(project: Path, label: str, minutes: float, code: int) -> dict:
    """The figures of the project's last `tunesmith run`: held-out accuracy base vs tuned, marked answers, token
    limit, the training's facts and the stage times."""
    summary = json.loads((project / ".tunesmith" / "summary.json").read_text())
    metrics = {(m["suite"], m["metric"]): m for m in summary["metrics"]}
    acc, limit = metrics[("heldout", "task_accuracy")], metrics.get(("heldout", "token_limit_rate"))
    dirs = stage_dirs(summary)
    trained = json.loads((dirs["train"] / "result.json").read_text())
    return {
        "mode": label,
        "n": acc["n"],
        "base": acc["base"],
        "tuned": acc["tuned"],
        "delta": acc["delta"],
        "ci": (acc["ci_low"], acc["ci_high"]),
        "marked_base": answers(dirs["eval-base"])["marked"],
        "marked_tuned": answers(dirs["eval-tuned"])["marked"],
        "limit_base": limit["base"] if limit else None,
        "limit_tuned": limit["tuned"] if limit else None,
        "steps": trained.get("steps"),
        "reward_first": trained.get("reward_first"),
        "reward_last": trained.get("reward_last"),
        "rewards": trained.get("rewards"),
        "stage_minutes": {s["stage"]: round(s.get("wall_s", 0) / 60, 2) for s in summary["stages"]},
        "minutes": minutes,
        "exit": code,
    }


def sft_phase(work: Path, args: argparse.Namespace) -> dict:
    project = write_project(work / "project", "builtin:smollm2-135m-instruct", args)
    code, minutes = tunesmith(["run", str(project)], project / "sft.log")
    return outcome(project, "SFT", minutes, code)


def latest_sft_run(project: Path) -> Path:
    """The newest completed SFT training run of the project (the `sft` phase's)."""
    for run in sorted((project / ".tunesmith" / "runs").glob("*-train-*"), reverse=True):
        result = run / "result.json"
        if (run / "COMPLETED").exists() and json.loads(result.read_text()).get("objective", "sft") == "sft":
            return run
    sys.exit(f"no completed SFT run in {project}: run the sft phase first")


def grpo_overrides(args: argparse.Namespace) -> list[str]:
    settings = {
        "train.objective": "grpo",
        "train.max_steps": args.grpo_steps,
        "train.grpo.max_completion_tokens": args.grpo_tokens,
        "train.logging_steps": 1,
        "train.lr": args.grpo_lr,
    }
    return [flag for key, value in settings.items() for flag in ("--set", f"{key}={value}")]


def grpo_phase(work: Path, args: argparse.Namespace) -> dict:
    """GRPO from the base (the SFT project, objective switched) or from the SFT model (merged, a second project)."""
    project = work / "project"
    if args.grpo_from == "sft":
        sft_run = latest_sft_run(project)
        code, _ = tunesmith(["export", str(sft_run), "--format", "merged"], work / "export.log")
        merged = next((sft_run / "export").glob("**/config.json"), None)
        if code or merged is None:
            sys.exit(f"export of {sft_run} failed: see {work / 'export.log'}")
        project = write_project(work / "project-grpo", str(merged.parent), args)
    else:
        write_project(project, "builtin:smollm2-135m-instruct", args)
    code, minutes = tunesmith(["run", str(project), *grpo_overrides(args)], project / "grpo.log")
    return outcome(project, f"GRPO from {args.grpo_from}", minutes, code)


def fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, tuple):
        return f"{x[0]:+.3f} .. {x[1]:+.3f}"
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def print_check(result: dict) -> None:
    print(f"\ndata check, whole train file through the mapping ({result['minutes']:.1f} min):")
    print(f"{result['records']} records, {result['kept']} kept, {result['rejected']} rejected")
    for code, count in sorted(result["counts"].items()):
        print(f"  {code}: {count}")


def print_runs(results: list[dict]) -> None:
    cols = ["mode", "n", "base", "tuned", "delta", "ci", "marked_base", "marked_tuned", "limit_base", "limit_tuned"]
    print("\nheld-out accuracy (numeric answer), marked answers (`####`), token-limit rate:")
    print(" | ".join(cols))
    for r in results:
        print(" | ".join(fmt(r.get(c)) for c in cols))
    for r in results:
        reward = f", reward {fmt(r['reward_first'])} -> {fmt(r['reward_last'])} {r['rewards']}" if r["rewards"] else ""
        print(f"{r['mode']}: {r['steps']} steps{reward}, {r['minutes']:.1f} min (exit {r['exit']}), stages (min): ")
        print("  " + ", ".join(f"{k} {v}" for k, v in r["stage_minutes"].items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="check,sft,grpo")
    ap.add_argument("--train", type=int, default=400, help="training problems")
    ap.add_argument("--test", type=int, default=80, help="held-out problems (other problems of the train file)")
    ap.add_argument("--validation", type=int, default=20, help="validation problems (data.validation_max)")
    ap.add_argument("--max-new-tokens", type=int, default=320, help="eval.max_new_tokens (0: derived)")
    ap.add_argument("--grpo-steps", type=int, default=3)
    ap.add_argument("--grpo-tokens", type=int, default=192, help="train.grpo.max_completion_tokens")
    ap.add_argument("--grpo-lr", type=float, default=1e-4)
    ap.add_argument("--grpo-from", default="sft", choices=["sft", "base"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/tunesmith-gsm8k"))
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the tunesmith processes")
    args = ap.parse_args()
    if args.threads:
        ENV["OMP_NUM_THREADS"] = str(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    modes = args.modes.split(",")
    began = time.perf_counter()
    if "check" in modes:
        print_check(check_phase(args.work))
    results = []
    for mode, phase in (("sft", sft_phase), ("grpo", grpo_phase)):
        if mode in modes:
            results.append(phase(args.work, args))
            print(json.dumps(results[-1]), flush=True)
    if results:
        print_runs(results)
    print(f"\nwall time {(time.perf_counter() - began) / 60:.1f} min")


if __name__ == "__main__":
    main()
