"""SIGKILL `tunesmith run` at seeded points, inside stages and between them, and run it again each time: the next
run resumes and the last one completes every stage; no run directory is ever reported as cached (trusted) unless
it had its COMPLETED marker when that run started."""

from __future__ import annotations

from faults.harness import STAGES, kill_pipeline, pipeline_plan


def test_tunesmith_run_killed_within_and_between_stages_resumes_and_completes(tiny_project, tmp_path):
    yaml = tiny_project / "tunesmith.yaml"
    # four steps, a checkpoint at step 2: the kill inside training lands while a checkpoint is on disk
    yaml.write_text(yaml.read_text().replace("max_steps: 3", "max_steps: 4"))
    plan = pipeline_plan(seed=3, within=["check", "eval-base", "train", "eval-tuned"], between=["split", "train"])
    figures = kill_pipeline(tiny_project, tmp_path / "home", plan)
    assert figures["kills"] >= 4, figures
    assert figures["incomplete_seen"] >= 3, figures  # the kills did leave unfinished stages behind
    assert figures["cached_reports"] >= len(STAGES), figures  # and the re-runs did serve finished ones
    assert figures["left_incomplete"] == 0, figures  # every interrupted run directory was resumed, none orphaned
    assert figures["train_resumed_from"] and figures["train_resumed_from"].endswith("checkpoint-2"), figures
