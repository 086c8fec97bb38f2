"""Parent side of the fault-injection checks: run `train_child.py`, SIGKILL it at seeded points, resume, and check
every resume against the checkpoints actually on disk. Used by tests/faults and benchmarks/fault_injection.py."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import STAGES

CHILD = Path(__file__).with_name("train_child.py")
KILL_POINTS = ["accum", "step", "weights_saved", "mid_rng", "mid_state", "rotate", "time"]
CHECKPOINT_FILES = (
    "adapter_model.safetensors",
    "adapter_config.json",
    "optimizer.safetensors",
    "optimizer.json",
    "scheduler.json",
    "rng_state.safetensors",
    "rng_state.json",
    "trainer_state.json",
)


def child_env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }


def run_child(model_dir: Path, run_dir: Path, spec: dict, delay: float | None = None, timeout: float = 300) -> int:
    """Run one child to its end (or its self-inflicted SIGKILL); with `delay`, SIGKILL it that many seconds after
    training began. Returns the exit status (-9 when killed)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "started").unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(model_dir), str(run_dir), json.dumps(spec)],
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if delay is not None:
        deadline = time.monotonic() + timeout
        while proc.poll() is None and not (run_dir / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=timeout)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"the child failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    return proc.returncode


def checkpoint_is_complete(ckpt: Path) -> bool:
    """Strictly: every file a resume reads is there and parses, and the state names this checkpoint's step."""
    from safetensors.torch import load_file

    try:
        if not all((ckpt / name).is_file() for name in CHECKPOINT_FILES):
            return False
        state = json.loads((ckpt / "trainer_state.json").read_text())
        json.loads((ckpt / "optimizer.json").read_text())
        json.loads((ckpt / "rng_state.json").read_text())
        load_file(ckpt / "adapter_model.safetensors")
        load_file(ckpt / "optimizer.safetensors")
        return state["global_step"] == int(ckpt.name.split("-")[-1])
    except (OSError, ValueError, KeyError):
        return False


def checkpoints(run_dir: Path) -> tuple[list[Path], list[Path]]:
    """(complete, partial) checkpoints of a run, oldest first."""
    found = sorted((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    complete = [p for p in found if checkpoint_is_complete(p)]
    return complete, [p for p in found if p not in complete]


def resumes(run_dir: Path) -> list[str | None]:
    path = run_dir / "resumes.jsonl"
    return [json.loads(line)["resumed_from"] for line in path.read_text().splitlines()] if path.exists() else []


def kill_plan(kills: int, seed: int) -> list[tuple[str, int, float | None]]:
    """`kills` seeded kill points: every kind at least once (when there is room), then random ones; the last kill
    lands while the finished run removes its checkpoints."""
    rng = random.Random(seed)
    kinds = KILL_POINTS[:]
    rng.shuffle(kinds)
    picks = (kinds + [rng.choice(KILL_POINTS) for _ in range(kills)])[: kills - 1]
    return [(kind, rng.randint(1, 2), rng.uniform(0.0, 0.3) if kind == "time" else None) for kind in picks] + [
        ("final", 1, None)
    ]


def kill_and_resume(model_dir: Path, run_dir: Path, kills: int, seed: int, steps: int, grad_accum: int = 2) -> dict:
    """Kill the run `kills` times at seeded points, resuming each time, then let it finish. Asserts that each start
    resumed from the newest complete checkpoint on disk (never a partial one). Returns the figures."""
    figures = {
        "kills": 0,
        "by_point": {},
        "partial_left": 0,
        "starts": 0,
        "resumed_from_checkpoint": 0,
        "wall_s": 0.0,
        "finished_early": False,
    }
    began = time.perf_counter()
    for kind, nth, delay in kill_plan(kills, seed):
        if kind == "final":  # only reachable by a run that trains to its end
            spec = {"steps": steps, "grad_accum": grad_accum, "kill": ["final", 1]}
        else:
            spec = {"steps": steps, "grad_accum": grad_accum, "kill": None if kind == "time" else [kind, nth]}
        complete, _ = checkpoints(run_dir)
        expected = str(complete[-1]) if complete else None
        before = len(resumes(run_dir))
        rc = run_child(model_dir, run_dir, spec, delay=delay)
        started = resumes(run_dir)[before:]
        assert started == [expected], (kind, nth, started, expected)
        figures["starts"] += 1
        figures["resumed_from_checkpoint"] += expected is not None
        if rc == 0:  # a timed kill that came after the end
            figures["finished_early"] = True
            break
        figures["kills"] += 1
        figures["by_point"][kind] = figures["by_point"].get(kind, 0) + 1
        figures["partial_left"] += bool(checkpoints(run_dir)[1])
    if not (run_dir / "result.json").exists():
        complete, _ = checkpoints(run_dir)
        expected = str(complete[-1]) if complete else None
        before = len(resumes(run_dir))
        assert run_child(model_dir, run_dir, {"steps": steps, "grad_accum": grad_accum}) == 0
        assert resumes(run_dir)[before:] == [expected]
        figures["starts"] += 1
        figures["resumed_from_checkpoint"] += expected is not None
    figures["wall_s"] = time.perf_counter() - began
    figures["steps"] = json.loads((run_dir / "result.json").read_text())["steps"]
    return figures


def max_adapter_difference(a: Path, b: Path) -> float:
    from safetensors.torch import load_file

    x, y = (
        load_file(a / "adapter" / "adapter_model.safetensors"),
        load_file(b / "adapter" / "adapter_model.safetensors"),
    )
    assert x.keys() == y.keys()
    return max((x[k] - y[k]).abs().max().item() for k in x)


# --- `tunesmith run` killed between and within stages ---------------------------------------------------------


def stage_dirs(project: Path) -> dict[str, list[Path]]:
    """Run directories by stage, oldest first."""
    out: dict[str, list[Path]] = {}
    root = project / ".tunesmith" / "runs"
    for d in sorted(root.iterdir()) if root.exists() else []:
        if d.is_dir():
            out.setdefault("-".join(d.name.split("-")[1:-1]), []).append(d)
    return out


def _fired(project: Path, trigger: tuple, before: set[str]) -> bool:
    kind, stage = trigger[0], trigger[1]
    dirs = stage_dirs(project).get(stage, [])
    if kind == "within":  # the stage's run directory appeared (or an interrupted one is being resumed)
        return any(d.name not in before for d in dirs)
    if kind == "after":  # its COMPLETED marker appeared: the next stage has not begun
        return any((d / "COMPLETED").exists() and d.name + "/COMPLETED" not in before for d in dirs)
    if kind == "checkpoint":  # a complete training checkpoint is on disk
        return any(p.exists() for d in dirs for p in (d / "checkpoints").glob("checkpoint-*/trainer_state.json"))
    raise ValueError(kind)


def run_pipeline(project: Path, trigger: tuple | None, home: Path, timeout: float = 300) -> dict:
    """`python -m tunesmith run PROJECT`, SIGKILLed when `trigger` fires (plus its delay). Returns the exit status,
    the run directories it reported as cached, and which run directories had COMPLETED when it started."""
    done_before = {d.name for ds in stage_dirs(project).values() for d in ds if (d / "COMPLETED").exists()}
    before = {d.name for ds in stage_dirs(project).values() for d in ds} | {n + "/COMPLETED" for n in done_before}
    env = {**child_env(), "COLUMNS": "400", "TUNESMITH_HOME": str(home), "NO_COLOR": "1", "TERM": "dumb"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunesmith", "run", str(project)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed, deadline = False, time.monotonic() + timeout
    while trigger is not None and proc.poll() is None and time.monotonic() < deadline:
        if _fired(project, trigger, before):
            time.sleep(trigger[2] if len(trigger) > 2 else 0.0)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
            break
        time.sleep(0.005)
    _, err = proc.communicate(timeout=timeout)
    cached = []
    for line in err.splitlines():
        if ": unchanged, using " in line:
            cached.append(line.split(": unchanged, using ")[1].strip())
    return {"rc": proc.returncode, "killed": killed, "cached": cached, "completed_before": done_before, "stderr": err}


def pipeline_plan(seed: int, within: list[str], between: list[str]) -> list[tuple]:
    """Kill points in flow order: inside each stage of `within` (a seeded delay after its run directory appears;
    training at its first checkpoint) and right after each stage of `between` completed."""
    rng = random.Random(seed)
    points = []
    for stage in STAGES:
        if stage in within:
            points.append(("checkpoint", stage) if stage == "train" else ("within", stage, rng.uniform(0.0, 0.4)))
        if stage in between:
            points.append(("after", stage))
    return points


def kill_pipeline(project: Path, home: Path, plan: list[tuple]) -> dict:
    """Run `tunesmith run` under each kill point of `plan`, then once to the end. Asserts that no run directory was
    ever reported as cached unless it had COMPLETED when that run started, and that the last run completed every
    stage. Returns the figures."""
    figures = {"kills": 0, "runs": 0, "cached_reports": 0, "wall_s": 0.0}
    seen: set[str] = set()
    began = time.perf_counter()
    for trigger in plan + [None]:
        incomplete = {d.name for ds in stage_dirs(project).values() for d in ds if not (d / "COMPLETED").exists()}
        seen |= incomplete
        out = run_pipeline(project, trigger, home)
        figures["runs"] += 1
        figures["kills"] += out["killed"]
        figures["cached_reports"] += len(out["cached"])
        untrusted = [name for name in out["cached"] if name not in out["completed_before"]]
        assert not untrusted, f"reported as cached without COMPLETED: {untrusted}"
        assert not set(out["cached"]) & incomplete
        if trigger is None:
            assert out["rc"] in (0, 1), out["stderr"][-3000:]  # 1: the gate failed, which a tiny model may
        else:
            assert out["killed"] or out["rc"] in (0, 1), (trigger, out["stderr"][-3000:])
    dirs = stage_dirs(project)
    for stage in STAGES:
        done = [d for d in dirs.get(stage, []) if (d / "COMPLETED").exists()]
        assert len(done) == 1, (stage, dirs.get(stage))
    figures["wall_s"] = time.perf_counter() - began
    figures["incomplete_seen"] = len(seen)  # distinct run directories a kill left without COMPLETED
    # killed before its inputs.json was written: no key to match, so a new directory took its place
    figures["orphans"] = sum(not (d / "inputs.json").exists() for ds in dirs.values() for d in ds)
    figures["left_incomplete"] = sum(not (d / "COMPLETED").exists() for ds in dirs.values() for d in ds)
    figures["train_resumed_from"] = json.loads(
        next(d for d in dirs["train"] if (d / "COMPLETED").exists()).joinpath("result.json").read_text()
    ).get("resumed_from")
    return figures
