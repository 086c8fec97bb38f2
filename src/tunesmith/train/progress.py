"""Trainer callbacks: a rich progress bar (loss, tokens/s, ETA), `metrics.jsonl`, a wall-time budget, and the
clock of the time spent in optimizer steps (what tokens/s is taken over: validation and checkpoints excluded)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback


class StepClock(TrainerCallback):
    """The wall time spent inside optimizer steps (from `on_step_begin` to `on_step_end`) and the tokens they
    consumed, in this process: tokens/s over it is the training throughput, where over the whole wall time it
    also counted the validation replies and checkpoint writes between steps (a bar that read 195 tokens/s before
    Banking77's first validation read 141 after it, at the same seconds a step)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.tokens = 0
        self._began: tuple[float, int] | None = None

    def on_step_begin(self, args, state, control, **kwargs):
        self._began = (time.perf_counter(), state.num_input_tokens_seen)

    def on_step_end(self, args, state, control, **kwargs):
        if self._began is None:
            return
        began, tokens = self._began
        self.seconds += time.perf_counter() - began
        self.tokens += state.num_input_tokens_seen - tokens
        self._began = None

    @property
    def tokens_per_s(self) -> float | None:
        return self.tokens / self.seconds if self.seconds > 0 and self.tokens else None  # (DPO counts none)

    @staticmethod
    def of(trainer) -> StepClock | None:
        """The clock among a trainer's callbacks (`make_trainer` adds one), or None."""
        return next((cb for cb in trainer.callback_handler.callbacks if isinstance(cb, StepClock)), None)


class RichProgress(TrainerCallback):
    """Progress bar over optimizer steps showing loss, tokens/s (over `clock`'s step time) and the time left."""

    def __init__(self, description: str, clock: StepClock) -> None:
        self.description = description
        self.clock = clock  # a callback before this one, so a step's time is counted before the bar shows it
        self.progress = None
        self.task = None
        self.loss = float("nan")

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:  # one bar for a multi-process run
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

        from tunesmith.progress import LoggedProgress

        self.progress = LoggedProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f}  {task.fields[tps]:.0f} tok/s"),
            TimeRemainingColumn(),
        )
        self.progress.start()
        self.task = self.progress.add_task(
            self.description, total=state.max_steps, completed=state.global_step, loss=float("nan"), tps=0.0
        )

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is None:
            return
        tps = self.clock.tokens_per_s or 0.0
        self.progress.update(self.task, completed=state.global_step, loss=self.loss, tps=tps)

    def on_log(self, args, state, control, logs=None, **kwargs):
        """A training log's loss goes on the bar at once: a step's log comes after its `on_step_end`, so a run that
        logs only at its last step (logging_steps = max_steps) ended on `loss nan`."""
        if logs and "loss" in logs:
            self.loss = logs["loss"]
            if self.progress is not None:
                self.progress.update(self.task, loss=self.loss)

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress:
            self.progress.stop()


class MetricsLog(TrainerCallback):
    """Appends every log (loss, learning rate, grad norm, tokens/s, eval loss) to `metrics.jsonl`; a row's tokens/s
    is over `clock`'s step time since the previous row, so a validation between them does not pull it down."""

    def __init__(self, path: Path, clock: StepClock) -> None:
        self.path = Path(path)
        self.clock = clock
        self.last: tuple[float, int] | None = None  # the clock's (seconds, tokens) at the previous row

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:  # one writer for a multi-process run
            return
        row = {"step": state.global_step, "epoch": state.epoch, **logs, "tokens_seen": state.num_input_tokens_seen}
        seconds, tokens = self.clock.seconds, self.clock.tokens
        if self.last is not None and seconds > self.last[0]:
            row["tokens_per_s"] = (tokens - self.last[1]) / (seconds - self.last[0])
        self.last = (seconds, tokens)
        with self.path.open("a", encoding="utf-8") as fh:  # append-only log: a partial last line is harmless
            fh.write(json.dumps(row) + "\n")


class TimeBudget(TrainerCallback):
    """Stops training (with a checkpoint) once `max_minutes` of wall time have passed."""

    def __init__(self, max_minutes: float | None) -> None:
        self.max_s = None if max_minutes is None else max_minutes * 60
        self.started = 0.0
        self.stopped = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.max_s is not None and time.perf_counter() - self.started > self.max_s:
            self.stopped = control.should_training_stop = control.should_save = True
