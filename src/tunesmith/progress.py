"""Progress that shows wherever the output goes: a rich bar on a terminal; in a file or a CI log, where a live bar
prints nothing until it ends, a plain line per task every `every` seconds and one when the progress stops.

    progress = LoggedProgress(TextColumn("{task.description}"), BarColumn())
    task = progress.add_task("Generating", total=600)
    with progress:
        progress.advance(task)      # on a terminal: the bar; elsewhere: "Generating: 120/600 (20%), 1m05s, ~4m20s left"
"""

from __future__ import annotations

import time

from rich.progress import Progress, TaskID

LOG_EVERY_S = 30.0


class LoggedProgress(Progress):
    """A `rich.progress.Progress` (on stderr unless given a console) that also logs plain lines when its console is
    not a terminal."""

    def __init__(self, *columns, every: float = LOG_EVERY_S, **kwargs) -> None:
        if "console" not in kwargs:  # progress on stderr: stdout is the command's answer (`--json` parses)
            from rich.console import Console

            kwargs["console"] = Console(stderr=True)
        super().__init__(*columns, **kwargs)
        self.every = every
        self.logging = not self.console.is_terminal
        self._logged: dict[TaskID, float] = {}

    def update(self, task_id: TaskID, **kwargs) -> None:
        super().update(task_id, **kwargs)
        self._maybe_log(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._maybe_log(task_id)

    def stop(self) -> None:
        """Each task's last line, once: finished (after whatever its caller set at the end, such as the training
        loss logged after the last step) or where it stopped (a run stopped early)."""
        if self.logging:
            for task_id, task in self._tasks.items():
                if self._logged.get(task_id) != -1:
                    self._logged[task_id] = -1
                    self.console.print(progress_line(task, final=True), highlight=False, markup=False)
        super().stop()

    def _maybe_log(self, task_id: TaskID) -> None:
        if not self.logging:
            return
        task = self._tasks[task_id]
        if task.finished:  # its line comes at stop()
            return
        now = time.monotonic()
        last = self._logged.setdefault(task_id, now)
        if now - last >= self.every:
            self._logged[task_id] = now
            self.console.print(progress_line(task), highlight=False, markup=False)


def progress_line(task, final: bool = False) -> str:
    """`Training LoRA r=16: 120/753 (16%), 4m10s, ~21m55s left; loss 0.213, tps 312` (`final`: no time left)."""
    total = task.total or 0
    line = f"{task.description}: {task.completed:.0f}/{total:.0f}"
    if total:
        line += f" ({100 * task.completed / total:.0f}%)"
    line += f", {_clock(task.elapsed or 0.0)}"
    if task.time_remaining is not None and not (task.finished or final):
        line += f", ~{_clock(task.time_remaining)} left"
    shown = [  # a field not known yet ("", None, NaN: the loss before the first log) is left out
        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
        for k, v in task.fields.items()
        if v not in ("", None) and v == v
    ]
    return line + ("; " + ", ".join(shown) if shown else "")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
