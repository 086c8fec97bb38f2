"""Progress in a log: plain lines at intervals where no terminal shows a live bar."""

import io

from rich.console import Console
from rich.progress import BarColumn, TextColumn

from tunesmith.progress import LoggedProgress


def _progress(terminal: bool, every: float) -> tuple[LoggedProgress, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=100)
    return LoggedProgress(TextColumn("{task.description}"), BarColumn(), console=console, every=every), out


def test_a_log_gets_a_line_at_each_interval_and_at_the_end():
    progress, out = _progress(terminal=False, every=0.0)
    task = progress.add_task("Generating", total=4, rate="")
    with progress:
        for i in range(4):
            progress.update(task, advance=1, rate=f"{10 * (i + 1)} tok/s")
    lines = [line for line in out.getvalue().splitlines() if line.startswith("Generating:")]
    assert lines[0].startswith("Generating: 1/4 (25%)") and "rate 10 tok/s" in lines[0]
    assert lines[-1].startswith("Generating: 4/4 (100%)") and "left" not in lines[-1]
    assert len(lines) == 4  # one per update at interval 0, the finished one once


def test_a_long_interval_logs_only_the_end_and_a_terminal_gets_no_lines():
    progress, out = _progress(terminal=False, every=3600.0)
    task = progress.add_task("Training", total=3, loss=float("nan"))
    with progress:
        for _ in range(3):
            progress.advance(task)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("Training:")]
    assert len(lines) == 1 and lines[0].startswith("Training: 3/3 (100%)")
    progress, out = _progress(terminal=True, every=0.0)
    task = progress.add_task("Training", total=2)
    with progress:
        progress.advance(task, 2)
    assert "Training: 2/2" not in out.getvalue()  # the live bar shows it instead


def test_a_field_not_known_yet_is_left_out_of_the_line():
    """The training bar's loss is NaN until the first log: the line leaves it out rather than print `loss nan`."""
    progress, out = _progress(terminal=False, every=0.0)
    task = progress.add_task("Training", total=2, loss=float("nan"), tps=133.0)
    with progress:
        progress.advance(task)
        progress.update(task, advance=1, loss=0.693)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("Training:")]
    assert "loss" not in lines[0] and "tps 133" in lines[0]
    assert "loss 0.693" in lines[-1]


def test_a_task_stopped_early_gets_a_last_line_without_time_left():
    """A run stopped before its last step (early stopping, a budget) still ends its log with where it stopped."""
    progress, out = _progress(terminal=False, every=3600.0)
    task = progress.add_task("Training", total=10)
    with progress:
        progress.advance(task, 4)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("Training:")]
    assert len(lines) == 1 and lines[0].startswith("Training: 4/10 (40%)") and "left" not in lines[0]


def test_the_training_bar_ends_on_the_loss_logged_after_the_last_step(monkeypatch):
    """With logging_steps = max_steps the only loss is logged after the last `on_step_end`; the bar and the log's
    last line showed `loss nan`."""
    from types import SimpleNamespace

    from tunesmith.train.progress import RichProgress, StepClock

    bar = RichProgress("Training", StepClock())
    state = SimpleNamespace(is_world_process_zero=True, max_steps=2, global_step=0)
    out = io.StringIO()
    monkeypatch.setattr("rich.console.Console", lambda **_: Console(file=out, force_terminal=False, width=100))
    bar.on_train_begin(None, state, None)
    for step in (1, 2):
        state.global_step = step
        bar.on_step_end(None, state, None)
    bar.on_log(None, state, None, logs={"loss": 0.4321})
    assert bar.progress.tasks[0].fields["loss"] == 0.4321
    bar.on_train_end(None, state, None)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("Training:")]
    assert lines[-1].startswith("Training: 2/2 (100%)") and "loss 0.432" in lines[-1]
