"""Trainer callbacks: a rich progress bar (loss, tokens/s, ETA), `metrics.jsonl`, and a wall-time budget."""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback


class RichProgress(TrainerCallback):
    """Progress bar over optimizer steps showing loss, tokens/s and the time left."""

    def __init__(self, description: str = "Training") -> None:
        self.description = description
        self.progress = None
        self.task = None
        self.loss = float("nan")
        self.started = 0.0

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
        self.started, self.start_step, self.start_tokens = (
            time.perf_counter(),
            state.global_step,
            state.num_input_tokens_seen,
        )

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is None:
            return
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        tps = (state.num_input_tokens_seen - self.start_tokens) / elapsed
        self.progress.update(self.task, completed=state.global_step, loss=self.loss, tps=tps)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.loss = logs["loss"]

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress:
            self.progress.stop()


class MetricsLog(TrainerCallback):
    """Appends every log (loss, learning rate, grad norm, tokens/s, eval loss) to `metrics.jsonl`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.last_time = None
        self.last_tokens = 0

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:  # one writer for a multi-process run
            return
        now = time.perf_counter()
        row = {"step": state.global_step, "epoch": state.epoch, **logs, "tokens_seen": state.num_input_tokens_seen}
        if self.last_time is not None and now > self.last_time:
            row["tokens_per_s"] = (state.num_input_tokens_seen - self.last_tokens) / (now - self.last_time)
        self.last_time, self.last_tokens = now, state.num_input_tokens_seen
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
