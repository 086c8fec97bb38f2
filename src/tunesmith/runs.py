"""Run directories are the registry (design §3): `.tunesmith/runs/<utc-time>-<stage>-<short-hash>/`.

Each holds `config.yaml` (the resolved section), `env.json` (versions, hardware), `inputs.json` (the cache key and
the content hashes it was built from), `result.json`, artifacts, and `COMPLETED`, written last. A stage result
is trusted only when `COMPLETED` exists; an incomplete directory with the same key is resumed.

    run = find_run(project, "train", key) or start_run(project, "train", key, section, inputs)
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from tunesmith import allocator
from tunesmith.files import atomic_write_json, atomic_write_text

COMPLETED = "COMPLETED"


def runs_root(project: Path) -> Path:
    return Path(project) / ".tunesmith" / "runs"


def stage_key(stage: str, config: Any, inputs: dict[str, Any]) -> str:
    """The cache key of a stage: hash of its name, its config section, the hashes of its inputs, and the tunesmith
    version (a new version may check, split or score differently, so its stages are not reused)."""
    import tunesmith

    blob = json.dumps(
        {"stage": stage, "config": config, "inputs": inputs, "tunesmith": tunesmith.__version__},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def env_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
    }
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "tunesmith"):
        try:
            from importlib.metadata import version

            info[name] = version(name)
        except Exception:
            pass
    try:
        import os

        info["cpu_count"] = os.cpu_count()
        info["allocator"] = allocator.in_use()
        import torch

        info["cuda"] = torch.cuda.is_available()
        if info["cuda"]:
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:
        pass
    return info


STAGING = "staging"  # beside runs/: run directories being created


def is_complete(run_dir: Path) -> bool:
    return (run_dir / COMPLETED).exists()


def find_run(project: Path, stage: str, key: str) -> Path | None:
    """A completed run with this key, else the newest incomplete one (to resume), else None."""
    root = runs_root(project)
    if not root.exists():
        return None
    matches = []
    for d in sorted(root.glob(f"*-{stage}-{key[:10]}")):
        try:
            if json.loads((d / "inputs.json").read_text())["key"] == key:
                matches.append(d)
        except (OSError, ValueError, KeyError):
            continue
    done = [d for d in matches if is_complete(d)]
    return (done or matches or [None])[-1]


def stage_lock(project: Path, stage: str, key: str):
    """A lock (a context manager) held while a stage with this key is looked up and run, so two processes that
    start the same stage at once (workers sharing a study in one project) do not both run it in one directory: the
    second waits, then reuses the first one's run."""
    from filelock import FileLock

    path = runs_root(project).parent / "locks" / f"{stage}-{key[:16]}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path))


def start_run(project: Path, stage: str, key: str, config: Any, inputs: dict[str, Any]) -> Path:
    """Create a run directory with its config, environment and inputs, atomically: the files are written in
    `.tunesmith/staging/` and the directory renamed into the registry, so a run killed at any moment is either
    absent (started again) or has the inputs.json whose key a re-run matches to resume it — never an orphan."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"{stamp}-{stage}-{key[:10]}"
    run_dir = runs_root(project) / name
    env = env_info()  # slow (imports torch): gathered before the directory exists
    staging = runs_root(project).parent / STAGING / name
    staging.mkdir(parents=True, exist_ok=False)
    atomic_write_json(staging / "inputs.json", {"stage": stage, "key": key, "inputs": inputs})
    atomic_write_text(staging / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    atomic_write_json(staging / "env.json", env)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(run_dir)  # atomic on one file system; the name is unique (microsecond stamp)
    return run_dir


def complete_run(run_dir: Path, result: dict[str, Any]) -> None:
    """Write `result.json`, then `COMPLETED` (last, so a crash never leaves a trusted partial result)."""
    result = {**result, "completed_at": datetime.now(timezone.utc).isoformat()}
    atomic_write_json(run_dir / "result.json", result)
    atomic_write_text(run_dir / COMPLETED, result["completed_at"] + "\n")


def read_result(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "result.json").read_text())


def runs_with_input(project: Path, stage: str, name: str, key: str) -> list[Path]:
    """The completed runs of `stage` whose input `name` is `key`, oldest first: what was built from a run (the
    evaluations of a train run, the comparisons of an evaluation, its parity checks)."""
    found = []
    for d in sorted(runs_root(project).glob(f"*-{stage}-*")):
        if "-".join(d.name.split("-")[1:-1]) != stage:
            continue  # `eval` is not `eval-tuned`
        try:
            if is_complete(d) and json.loads((d / "inputs.json").read_text())["inputs"].get(name) == key:
                found.append(d)
        except (OSError, ValueError, KeyError):
            continue
    return found


def summary_path(project: Path) -> Path:
    """Where `tunesmith run` keeps the summary of a project's last run."""
    return Path(project) / ".tunesmith" / "summary.json"


def load_summary(project: Path) -> dict[str, Any] | None:
    """The summary of a project's last `tunesmith run` (None before the first)."""
    f = summary_path(project)
    return json.loads(f.read_text()) if f.exists() else None


def list_runs(project: Path) -> list[dict[str, Any]]:
    """Every run directory of a project, oldest first, with stage, status and its result when complete."""
    rows = []
    root = runs_root(project)
    for d in sorted(root.iterdir()) if root.exists() else []:
        if not d.is_dir():
            continue
        parts = d.name.split("-")
        stage = "-".join(parts[1:-1]) if len(parts) >= 3 else "?"
        done = is_complete(d)
        rows.append(
            {
                "name": d.name,
                "path": str(d),
                "stage": stage,
                "status": "completed" if done else "incomplete",
                "result": read_result(d) if done else None,
            }
        )
    return rows


def resume_problems(project: Path, stage: str, config: Any) -> list:
    """Why nothing can be resumed: each interrupted run of `stage` and how its settings differ from `config` (a
    changed input, such as the data, when the settings are the same); or that there is none."""
    from tunesmith.errors import Problem

    now = _flat(json.loads(json.dumps(config, default=str)))
    problems = []
    for row in list_runs(project):
        if row["stage"] != stage or row["status"] != "incomplete":
            continue
        try:
            then = _flat(yaml.safe_load((Path(row["path"]) / "config.yaml").read_text()) or {})
        except (OSError, yaml.YAMLError):
            continue
        changed = [
            f"{k}: {then.get(k)!r} then, {now.get(k)!r} now"
            for k in sorted(set(then) | set(now))
            if then.get(k) != now.get(k)
        ]
        problems.append(
            Problem(
                row["name"],
                "interrupted with other settings: " + "; ".join(changed[:5])
                if changed
                else "interrupted with other inputs (data, split or base model)",
                "to resume it, go back to those settings; or drop --resume to start anew",
            )
        )
    return problems or [
        Problem(
            str(runs_root(project)),
            f"no interrupted {stage} run",
            "drop --resume to start one (an interrupted run resumes on its own)",
        )
    ]


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def project_of_run(run: str | Path) -> Path | None:
    """The project a run directory lies in (`<project>/.tunesmith/runs/<run>`), or None when `run` is not one: so
    `tunesmith export RUN` and `serve RUN` need no `--project` when RUN is a run's path."""
    path = Path(run).resolve()
    if not (path.is_dir() and path.parent.name == "runs" and path.parent.parent.name == ".tunesmith"):
        return None
    project = path.parent.parent.parent
    return project if (project / "tunesmith.yaml").exists() else None


def resolve_run(project: Path, name: str) -> Path:
    """A run directory by full name, unique prefix or suffix, or a path."""
    from tunesmith.errors import Problem, TunesmithError

    if Path(name).is_dir() and (Path(name) / "inputs.json").exists():
        return Path(name)
    root = runs_root(project)
    candidates = [d for d in root.iterdir() if d.is_dir() and (name in d.name)] if root.exists() else []
    if len(candidates) == 1:
        return candidates[0]
    hint = "`tunesmith runs list` shows the names"
    if not candidates:
        raise TunesmithError("No such run", [Problem(name, f"no run under {root} matches", hint)])
    raise TunesmithError("Ambiguous run name", [Problem(name, f"{len(candidates)} runs match", hint)])


def resolve_results(project: Path, ref: str) -> Path:
    """The results.jsonl of an evaluation: the file itself, a run directory holding one, or a unique part of the
    name of a run that has one (`eval compare`, `review ab`)."""
    from tunesmith.errors import Problem, TunesmithError

    path = Path(ref)
    if path.is_dir():
        path = path / "results.jsonl"
    elif not path.exists():
        root = runs_root(project)
        found = (
            [d for d in sorted(root.iterdir()) if ref in d.name and (d / "results.jsonl").exists()]
            if root.exists()
            else []
        )
        if len(found) != 1:
            raise TunesmithError(
                "Unknown evaluation",
                [
                    Problem(
                        ref,
                        f"{len(found)} evaluation runs match",
                        "give a results.jsonl, a run directory, or a unique part of a run name (tunesmith runs list)",
                    )
                ],
            )
        path = found[0] / "results.jsonl"
    if not path.exists():
        raise TunesmithError(
            "Unknown evaluation", [Problem(str(path), "no results.jsonl here", "point to an eval run directory")]
        )
    return path


def results_name(path: Path) -> str:
    """The name an evaluation goes by: its run directory's for a results.jsonl, else the file's stem."""
    path = Path(path)
    return path.parent.name if path.name == "results.jsonl" else path.stem
