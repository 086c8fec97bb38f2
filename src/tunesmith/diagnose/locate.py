"""Finding the run directories a diagnosis reads, and reading them.

A train run names its split (`inputs.json`: `split`), the split names its check run (`check`), an eval-tuned run
names its train run (`train`), and a compare run names its base and tuned evaluations (`base`, `tuned`). From any
of train, eval-tuned or compare (or, by default, the newest finished compare run) the rest follows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith import runs
from tunesmith.errors import Problem, TunesmithError


@dataclass
class RunDirs:
    """The run directories of one trained model: what it was trained on and how it and its base were evaluated."""

    train: Path
    split: Path | None = None
    check: Path | None = None
    base: Path | None = None
    tuned: Path | None = None

    def to_json(self) -> dict[str, str | None]:
        return {k: str(v) if v else None for k, v in self.__dict__.items()}


def run_inputs(run_dir: Path) -> dict[str, Any]:
    """A run's inputs.json (stage, key, inputs); {} when unreadable."""
    try:
        return json.loads((run_dir / "inputs.json").read_text())
    except (OSError, ValueError):
        return {}


def _of_stage(project: Path, stage: str, complete: bool = True) -> list[Path]:
    """Run directories of one stage, oldest first (names start with their UTC time)."""
    root = runs.runs_root(project)
    found = [d for d in sorted(root.glob(f"*-{stage}-*")) if d.is_dir() and run_inputs(d).get("stage") == stage]
    return [d for d in found if runs.is_complete(d)] if complete else found


def _by_key(project: Path, stage: str, key: str | None) -> Path | None:
    found = runs.find_run(project, stage, key) if key else None
    return found if found is not None and runs.is_complete(found) else None


def locate_runs(project: Path, run: str | None = None) -> RunDirs:
    """The runs to diagnose: from `run` (a train, eval-tuned or compare run; name, unique part or path), else from
    the newest finished compare run, else the newest eval-tuned run, else the newest train run (finished, or not:
    a diverged run still has its loss curve)."""
    project = Path(project)
    base = tuned = None
    start = runs.resolve_run(project, run) if run is not None else _newest_run(project)
    stage = run_inputs(start).get("stage")
    if stage == "compare":
        base, tuned = _compared(project, start, run)
        start, stage = tuned, "eval-tuned"
    if stage == "eval-tuned":
        tuned = start
        start, stage = _train_of(project, start), "train"
    if stage != "train":
        raise TunesmithError(
            "Not a run to diagnose",
            [
                Problem(
                    run or start.name,
                    f"a {stage} run",
                    "give a train, eval-tuned or compare run (`tunesmith runs list`)",
                )
            ],
        )
    return _around_train(project, start, base, tuned)


def _newest_run(project: Path) -> Path:
    """The newest finished compare run, else eval-tuned run, else train run, else any train run."""
    start = next(
        iter(
            reversed(
                _of_stage(project, "compare")
                or _of_stage(project, "eval-tuned")
                or _of_stage(project, "train")
                or _of_stage(project, "train", False)
            )
        ),
        None,
    )
    if start is None:
        raise TunesmithError(
            "Nothing to diagnose",
            [Problem(str(runs.runs_root(project)), "no training run", f"run `tunesmith run {project}` first")],
        )
    return start


def _compared(project: Path, compare: Path, run: str | None) -> tuple[Path | None, Path]:
    """The base and tuned evaluations a compare run compared (the tuned one must still be there)."""
    inputs = run_inputs(compare)["inputs"]
    base = _by_key(project, "eval-base", inputs.get("base"))
    tuned = _by_key(project, "eval-tuned", inputs.get("tuned"))
    if tuned is None:
        raise TunesmithError(
            "The compared evaluation is gone",
            [Problem(run or "compare", "its eval-tuned run is missing or unfinished", "re-run `tunesmith run`")],
        )
    return base, tuned


def _train_of(project: Path, tuned: Path) -> Path:
    """The train run an eval-tuned run evaluated."""
    found = runs.find_run(project, "train", run_inputs(tuned)["inputs"].get("train", ""))
    if found is None:
        raise TunesmithError(
            "The trained model's run is gone",
            [Problem(tuned.name, "its train run is missing", "re-run `tunesmith run`")],
        )
    return found


def _around_train(project: Path, train: Path, base: Path | None, tuned: Path | None) -> RunDirs:
    """A train run's split and check runs, and (unless given) its newest tuned evaluation and the matching base."""
    dirs = RunDirs(train=train)
    meta = run_inputs(train)
    dirs.split = _by_key(project, "split", meta.get("inputs", {}).get("split"))
    if dirs.split is not None:
        dirs.check = _by_key(project, "check", run_inputs(dirs.split).get("inputs", {}).get("check"))
    dirs.tuned = tuned or next(
        (
            d
            for d in reversed(_of_stage(project, "eval-tuned"))
            if run_inputs(d).get("inputs", {}).get("train") == meta.get("key")
        ),
        None,
    )
    dirs.base = base or _matching_base(project, dirs.tuned, meta)
    return dirs


def _matching_base(project: Path, tuned: Path | None, train_meta: dict) -> Path | None:
    """The base evaluation of the same cases: inputs equal to the tuned evaluation's less its `train`; else the
    newest of the same split and model."""
    bases = list(reversed(_of_stage(project, "eval-base")))
    if tuned is not None:
        want = {k: v for k, v in run_inputs(tuned).get("inputs", {}).items() if k != "train"}
        exact = next((d for d in bases if run_inputs(d).get("inputs") == want), None)
        if exact is not None:
            return exact
    split, model = train_meta.get("inputs", {}).get("split"), train_meta.get("inputs", {}).get("model")
    return next(
        (
            d
            for d in bases
            if run_inputs(d).get("inputs", {}).get("split") == split
            and run_inputs(d).get("inputs", {}).get("model") == model
        ),
        None,
    )


def read_results(run_dir: Path | None) -> list[dict]:
    """The rows of an evaluation's results.jsonl ([] without one)."""
    from tunesmith.data.io import read_jsonl

    if run_dir is None or not (run_dir / "results.jsonl").exists():
        return []
    return [row for _, row in read_jsonl(run_dir / "results.jsonl")]


def read_metrics(run_dir: Path | None) -> list[dict]:
    """The rows of a train run's metrics.jsonl; a partial last line (a killed run) is skipped."""
    path = None if run_dir is None else run_dir / "metrics.jsonl"
    if path is None or not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)  # Python's json reads the NaN the trainer logs
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def read_section(run_dir: Path | None) -> dict[str, Any]:
    """A run's config.yaml (the resolved config section it ran with); {} without one."""
    import yaml

    try:
        return (yaml.safe_load((run_dir / "config.yaml").read_text()) or {}) if run_dir else {}
    except (OSError, yaml.YAMLError):
        return {}


def read_json(path: Path | None) -> dict | None:
    try:
        return json.loads(path.read_text()) if path is not None else None
    except (OSError, ValueError):
        return None
