"""The stage machinery: a `Stage` is one cached step's run directory and result; a `Pipeline` runs stages, reusing
a completed run of the same key and resuming an interrupted one.

Each stage's result is cached in a run directory under a key = hash(stage, its config section, the keys or
content hashes of its inputs). A re-run skips completed stages with unchanged keys and resumes an interrupted one
(training restarts from its newest checkpoint).

A stage's result is a mapping, or a typed result (`TrainResult`, `EvalResult`: `to_json()` writes result.json,
`from_json()` reads it back) when the stage names its type:

    st = pipe.stage("train", settings, inputs, work, typed=TrainResult)   # work returns a TrainResult
    st.result.steps
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from rich.console import Console

from tunesmith import runs
from tunesmith.config import Config
from tunesmith.errors import TunesmithError

console = Console(stderr=True)
R = TypeVar("R")


class StageResult(Protocol):
    """A typed stage result: written to result.json as `to_json()`, read back with `from_json`."""

    def to_json(self) -> dict[str, Any]: ...

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Any: ...


@dataclass
class Stage(Generic[R]):
    """One stage's run: its directory, whether it was reused, and its result (a mapping, or the stage's typed
    result)."""

    name: str
    key: str
    run_dir: Path
    cached: bool
    wall_s: float = 0.0
    result: R = field(default_factory=dict)  # type: ignore[assignment]


@dataclass
class Pipeline:
    """Runs stages with caching; remembers what ran and how long it took."""

    project: Path
    stages: list[Stage] = field(default_factory=list)

    def stage(
        self,
        name: str,
        config: Any,
        inputs: dict[str, Any],
        work: Callable[[Path], Any],
        resume: str = "auto",
        typed: type[StageResult] | None = None,
        key_config: Any = None,
    ) -> Stage:
        """Run `work` in this stage's run directory, or reuse a completed one. An interrupted run with the same key
        is resumed (`resume="auto"`), must exist (`"require"`: an error naming the interrupted runs whose settings
        differ, and how) or is discarded (`"fresh"`). `typed`: the type of `work`'s result (else a mapping).
        `key_config`: what the key hashes in place of `config` (which config.yaml holds), when they differ."""
        key = runs.stage_key(name, config if key_config is None else key_config, inputs)
        with runs.stage_lock(self.project, name, key):  # another process running this very stage: wait for it
            found = runs.find_run(self.project, name, key)
            if found is not None and not runs.is_complete(found) and resume == "fresh":
                shutil.rmtree(found)
                console.print(f"[dim]· {name}: discarded the interrupted {found.name}[/dim]")
                found = None
            if found is None and resume == "require":
                raise TunesmithError(
                    f"No interrupted {name} run to resume", runs.resume_problems(self.project, name, config)
                )
            if found is not None and runs.is_complete(found):
                result = runs.read_result(found)
                st = Stage(name, key, found, cached=True, result=typed.from_json(result) if typed else result)
                console.print(f"[dim]· {name}: unchanged, using {found.name}[/dim]")
            else:
                st = self._run(name, key, config, inputs, work, found)
        self.stages.append(st)
        return st

    def _run(
        self,
        name: str,
        key: str,
        config: Any,
        inputs: dict[str, Any],
        work: Callable[[Path], Any],
        found: Path | None,
    ) -> Stage:
        """Run `work` in a new run directory, or in the interrupted one `found`, and mark it complete."""
        run_dir = found or runs.start_run(self.project, name, key, config, inputs)
        console.print(f"[bold]▶ {name}[/bold]" + (" (resuming)" if found else ""))
        began = time.perf_counter()
        try:
            result = work(run_dir)
        except TunesmithError as err:
            # Bad input: leave nothing half-made behind (interruptions and diverged training keep theirs).
            if found is None and not getattr(err, "keep_run", False):
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        wall = time.perf_counter() - began
        written = result if isinstance(result, dict) else result.to_json()
        written["stage_wall_s"] = wall
        runs.complete_run(run_dir, written)
        return Stage(name, key, run_dir, cached=False, wall_s=wall, result=result)


def sections(cfg: Config, *names: str) -> dict[str, Any]:
    """The named config sections as JSON (`sections(cfg, "eval", "task")`): what a stage's cache key covers."""
    return {name: getattr(cfg, name).model_dump(mode="json") for name in names}
