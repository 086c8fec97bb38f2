"""What is measured rather than estimated: the project's training tokens as the trainer sees them, real optimizer
steps timed on this machine (`tunesmith cost --probe`), and the probe's rate extrapolated to the whole run."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tunesmith.cost.hours import trained_tokens
from tunesmith.cost.memory import GIB, Recipe
from tunesmith.errors import Problem, TunesmithError


@dataclass
class ProjectTokens:
    """The training split of a project, tokenized as the trainer sees it."""

    examples: int
    tokens_per_epoch: int
    trained_tokens: float
    records: list = field(default_factory=list, repr=False)
    model_ref: Any = None  # the resolved model the tokens were counted with
    notes: list[str] = field(default_factory=list)  # how the count was made where it is not exact
    labels: int | None = None  # a label task's labels (what `epochs: auto` counts examples per), else None


def count_tokens(cfg, records: list, model_ref, recipe: Recipe) -> ProjectTokens:
    """The tokens of every training example (`records`, general data mixed in) with the model's chat template,
    truncated to `data.max_seq_len`, as the trainer sees them. `tunesmith cost PROJECT` counts the project's
    training split (checked, split and mixed with its general data, as `tunesmith train` does) with this."""
    from tunesmith.models import load_tokenizer
    from tunesmith.train.sft import build_dataset
    from tunesmith.train.trainer import task_labels

    _, stats = build_dataset(load_tokenizer(model_ref), records, cfg)
    labels = task_labels(cfg, records)
    return ProjectTokens(
        stats["examples"],
        stats["tokens"],
        trained_tokens(stats["tokens"], stats["examples"], replace(recipe, labels=labels)),
        records,
        model_ref,
        labels=labels,
    )


def measure(cfg, model_ref, records: list, steps: int = 3) -> dict[str, Any]:
    """Time `steps` real optimizer steps of the project's SFT recipe on this machine (`build_trainer`, in a
    throwaway directory). The first step (allocation, warm-up) is left out of the rate when there are two or more."""
    import torch

    if steps < 1:
        raise TunesmithError("Bad --probe-steps", [Problem("--probe-steps", f"{steps}", "at least 1")])
    cuda = torch.cuda.is_available()
    marks, precision = _timed_steps(cfg, model_ref, records, steps, cuda)
    return {
        **_rate(marks),
        "device": f"cuda: {torch.cuda.get_device_name(0)}" if cuda else "cpu",
        "precision": precision,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / GIB if cuda else None,
        "objective": cfg.train.objective,
    }


def _step_clock():
    """A trainer callback that marks (time, tokens seen) at the start of training and after every step."""
    import time

    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.marks: list[tuple[float, int]] = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.marks.append((time.perf_counter(), state.num_input_tokens_seen))

        def on_step_end(self, args, state, control, **kwargs):
            self.marks.append((time.perf_counter(), state.num_input_tokens_seen))

    return Clock()


def _timed_steps(cfg, model_ref, records: list, steps: int, cuda: bool) -> tuple[list[tuple[float, int]], str]:
    """Train `steps` steps in a throwaway directory: the clock's marks and the precision trained in."""
    import contextlib
    import sys
    import tempfile

    import torch

    from tunesmith.train.sft import build_trainer

    # The progress bar goes to stderr, so `tunesmith cost --probe --json` prints clean JSON on stdout.
    with tempfile.TemporaryDirectory(prefix="tunesmith-probe-") as tmp, contextlib.redirect_stdout(sys.stderr):
        trainer, _, _, _ = build_trainer(
            cfg,
            model_ref,
            records,
            Path(tmp),
            max_steps=steps,
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            logging_steps=1,
        )
        clock = _step_clock()
        trainer.add_callback(clock)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
        precision = "bf16" if trainer.args.bf16 else "fp32"
    return clock.marks, precision


def _rate(marks: list[tuple[float, int]]) -> dict[str, Any]:
    """Steps, tokens, seconds and tokens/s between the clock's marks (the warm-up step left out when at least two
    others remain)."""
    first = 1 if len(marks) >= 3 else 0
    (t0, n0), (t1, n1) = marks[first], marks[-1]
    seconds, tokens = t1 - t0, n1 - n0
    return {
        "steps": len(marks) - 1,
        "measured_steps": len(marks) - 1 - first,
        "tokens": int(tokens),
        "seconds": seconds,
        "tokens_per_s": tokens / seconds if seconds > 0 else None,
    }


def extrapolate(
    probe: dict[str, Any], tokens: float, nproc: int = 1, hourly_usd: float | None = None
) -> dict[str, Any]:
    """The probe's rate applied to the run's tokens: wall-clock hours on this machine (its `nproc` GPUs assumed to
    share the tokens evenly) and, with `hourly_usd` (the whole machine's price per hour, as budget.hourly_usd is),
    dollars."""
    rate = probe.get("tokens_per_s")
    if not rate:
        return {"hours": None, "usd": None}
    hours = tokens / rate / 3600 / nproc
    return {"hours": hours, "usd": None if hourly_usd is None else hours * hourly_usd}
