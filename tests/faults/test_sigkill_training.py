"""SIGKILL a real training process at seeded points (mid-accumulation, after a step, inside each part of a
checkpoint write, while rotating checkpoints, while removing them at the end, at random times) and resume it each
time: every start resumes from the newest complete checkpoint, never a partial one, and the final adapter equals
an uninterrupted run's (max abs difference at most 1e-6 on CPU)."""

from __future__ import annotations

from faults.harness import kill_and_resume, max_adapter_difference
from faults.train_child import config, training_records
from tunesmith.models import resolve_model
from tunesmith.train.sft import train_sft

SPEC = {"steps": 12, "grad_accum": 2}


def test_a_run_killed_five_times_ends_with_the_adapter_of_an_uninterrupted_one(tmp_path, tiny_model_dir):
    train_sft(config(SPEC), resolve_model(str(tiny_model_dir)), training_records(SPEC), tmp_path / "whole")
    figures = kill_and_resume(tiny_model_dir, tmp_path / "killed", kills=5, seed=7, **SPEC)
    assert figures["kills"] == 5 and figures["steps"] == SPEC["steps"], figures
    assert figures["resumed_from_checkpoint"] >= 2, figures  # the resumes did start from checkpoints
    assert figures["partial_left"] >= 1, figures  # and some kills did leave a partial checkpoint to avoid
    assert not (tmp_path / "killed" / "checkpoints").exists()
    worst = max_adapter_difference(tmp_path / "whole", tmp_path / "killed")
    assert worst <= 1e-6, worst
