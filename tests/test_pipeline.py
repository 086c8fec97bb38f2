"""End to end: `run_project` on a tiny random model, asserting on the artifacts it writes."""

import json
import os
from pathlib import Path

from safetensors.torch import load_file

from conftest import STAGES
from tunesmith.pipeline import run_project, train_project
from tunesmith.runs import list_runs


def by_stage(project):
    return {r["stage"]: r for r in list_runs(project)}


def test_run_end_to_end_then_cached_then_resumed(tiny_project, monkeypatch):
    written, real_replace = [], os.replace  # every atomic write ends in os.replace (tunesmith.data.io.atomic_open)
    monkeypatch.setattr(os, "replace", lambda src, dst: (written.append(Path(dst)), real_replace(src, dst))[1])
    summary = run_project(tiny_project)
    monkeypatch.setattr(os, "replace", real_replace)
    # the summary is written once, complete with its cost: into the compare run and to the project
    summaries = [p for p in written if p.name == "summary.json"]
    assert len(summaries) == len(set(summaries)) == 2 and tiny_project / ".tunesmith" / "summary.json" in summaries
    runs = by_stage(tiny_project)
    assert set(STAGES) <= set(runs) and all(r["status"] == "completed" for r in runs.values())
    # the run ends with its diagnosis in the summary and the HTML report written
    assert {f["code"] for f in summary["diagnosis"]["findings"]} and summary["diagnosis"]["masking_preview"]
    assert summary["report"] and "<html" in Path(summary["report"]).read_text().lower()
    assert (tiny_project / ".tunesmith" / "report.html").exists()

    # split: 20% held out (the test set), 10% of the rest for validation, stratified by the first match field,
    # nothing lost
    split = runs["split"]["result"]
    assert split["train"] + split["validation"] + split["heldout"] == 30
    assert split["heldout"] == 6 and split["validation"] == 2 and split["stratified_by"] == "queue"

    # train: a LoRA adapter as safetensors whose B matrices moved away from their zero init; metrics logged
    train_dir = tiny_project / ".tunesmith" / "runs" / runs["train"]["name"]
    weights = load_file(train_dir / "adapter" / "adapter_model.safetensors")
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)
    logged = [json.loads(line) for line in (train_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("loss" in row and "learning_rate" in row and "grad_norm" in row for row in logged)
    assert runs["train"]["result"]["steps"] == 3 and not (train_dir / "checkpoints").exists()
    for name in ("config.yaml", "env.json", "inputs.json", "result.json", "COMPLETED"):
        assert (train_dir / name).exists()

    # eval + compare: the same cases for base and tuned, per suite, with intervals and a gate verdict
    base_rows = (tiny_project / ".tunesmith" / "runs" / runs["eval-base"]["name"] / "results.jsonl").read_text()
    # held-out (constrained to the reply schema), the same cases decoded freely, one red-team case
    assert len(base_rows.splitlines()) == 6 + 6 + 1
    metrics = {(m["suite"], m["metric"]): m for m in summary["metrics"]}
    assert {
        ("heldout", "task_accuracy"),
        ("heldout", "format_validity"),
        ("redteam", "task_accuracy"),
        ("heldout_free", "format_validity"),
    } <= set(metrics)
    assert metrics[("heldout", "format_validity")]["tuned"] == 1.0  # constrained decoding: always the schema
    # the verdict weighs the cheapest alternatives, measured on the same held-out cases
    assert {a["name"] for a in summary["verdict"]["alternatives"]} == {"classifier", "few_shot"}
    assert isinstance(summary["verdict"]["ship"], bool) and summary["verdict"]["headline"]
    acc = metrics[("heldout", "task_accuracy")]
    assert acc["ci_low"] <= acc["delta"] <= acc["ci_high"] and acc["n"] == 6
    assert isinstance(summary["gate"]["passed"], bool)
    on_disk = json.loads((tiny_project / ".tunesmith" / "summary.json").read_text())
    assert on_disk["metrics"] == summary["metrics"]
    assert [e["model"] for e in on_disk["cost"]["evaluations"]] == ["base", "tuned"]  # from the summary in memory

    # unchanged inputs: every stage is served from its run directory
    again = run_project(tiny_project)
    assert all(s["cached"] for s in again["stages"])
    assert len(list_runs(tiny_project)) == len(runs)

    # a run killed after training but before eval-tuned completed: only the unfinished stages run again
    tuned_dir = tiny_project / ".tunesmith" / "runs" / runs["eval-tuned"]["name"]
    (tuned_dir / "COMPLETED").unlink()
    resumed = {s["stage"]: s["cached"] for s in run_project(tiny_project)["stages"]}
    assert resumed == {
        "check": True,
        "split": True,
        "eval-base": True,
        "train": True,
        "eval-tuned": False,
        "baseline-classifier": True,
        "baseline-few_shot": True,
        "compare": True,
        "diagnose": True,
    }
    # ...and the re-run eval-tuned stage took every generation from the generation cache (same model, adapter,
    # prompts and decoding): nothing was generated again
    rows = [json.loads(line) for line in (tuned_dir / "results.jsonl").read_text().splitlines()]
    assert rows and all(r["cached"] for r in rows)

    # `eval run` on the trained adapter is the same model: served from the cache, same metrics as eval-tuned
    from tunesmith.pipeline import evaluate_model

    st = evaluate_model(tiny_project, adapter=train_dir / "adapter")
    assert st.result.metrics["heldout"]["task_accuracy"] == on_disk["tuned_metrics"]["heldout"]["task_accuracy"]
    rows = [json.loads(line) for line in (st.run_dir / "results.jsonl").read_text().splitlines()]
    assert all(r["cached"] for r in rows)

    # a config change that touches training re-trains but reuses data and base eval
    changed = {s["stage"]: s["cached"] for s in run_project(tiny_project, ["train.lr=1e-3"])["stages"]}
    assert changed["eval-base"] and changed["split"] and not changed["train"] and not changed["eval-tuned"]


def test_interrupted_training_resumes_from_its_checkpoint(tiny_project, monkeypatch):
    import pytest

    from tunesmith.train import progress

    def crash_after_checkpoint(self, args, state, control, **kw):
        if state.global_step == 2:
            raise KeyboardInterrupt  # like a kill right after checkpoint-2 was written

    monkeypatch.setattr(progress.MetricsLog, "on_save", crash_after_checkpoint, raising=False)
    with pytest.raises(KeyboardInterrupt):
        run_project(tiny_project, ["train.max_steps=4"])
    train_run = by_stage(tiny_project)["train"]
    assert train_run["status"] == "incomplete"
    monkeypatch.undo()
    run_project(tiny_project, ["train.max_steps=4"])
    runs = by_stage(tiny_project)
    assert len([r for r in list_runs(tiny_project) if r["stage"] == "train"]) == 1  # the same directory, resumed
    result = runs["train"]["result"]
    assert result["resumed_from"].endswith("checkpoint-2") and result["steps"] == 4


def test_train_resume_continues_the_killed_run_or_says_why_it_cannot(tiny_project, monkeypatch):
    import pytest
    from typer.testing import CliRunner

    from tunesmith.cli import app
    from tunesmith.errors import TunesmithError
    from tunesmith.train import progress

    cli = CliRunner()
    with pytest.raises(TunesmithError, match="No interrupted train run to resume"):
        train_project(tiny_project, resume="require")

    def crash_after_checkpoint(self, args, state, control, **kw):
        if state.global_step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(progress.MetricsLog, "on_save", crash_after_checkpoint, raising=False)
    with pytest.raises(KeyboardInterrupt):
        train_project(tiny_project, ["train.max_steps=4"])
    monkeypatch.undo()
    killed = by_stage(tiny_project)["train"]["name"]
    # other settings: the interrupted run is named, with what differs
    with pytest.raises(TunesmithError) as err:
        train_project(tiny_project, ["train.max_steps=5"], resume="require")
    assert err.value.problems[0].where == killed and "max_steps: 4 then, 5 now" in err.value.problems[0].message
    res = cli.invoke(app, ["train", str(tiny_project), "--resume", "--set", "train.max_steps=4"])
    assert res.exit_code == 0, res.output
    train = by_stage(tiny_project)["train"]
    assert train["name"] == killed and train["result"]["resumed_from"].endswith("checkpoint-2")

    monkeypatch.setattr(progress.MetricsLog, "on_save", crash_after_checkpoint, raising=False)
    with pytest.raises(KeyboardInterrupt):
        train_project(tiny_project, ["train.max_steps=6"])
    monkeypatch.undo()
    res = cli.invoke(app, ["train", str(tiny_project), "--fresh", "--set", "train.max_steps=6"])
    assert res.exit_code == 0 and "discarded the interrupted" in res.output, res.output
    rows = [r for r in list_runs(tiny_project) if r["stage"] == "train"]
    assert [r["status"] for r in rows] == ["completed", "completed"]  # the killed one is gone
    assert rows[-1]["result"]["resumed_from"] is None and rows[-1]["result"]["steps"] == 6


def test_export_writes_adapter_and_merged_weights_with_a_manifest(tiny_project):
    from transformers import AutoModelForCausalLM

    summary = run_project(tiny_project, ["export.formats=[adapter, merged]", "eval.no_repeat_ngram_size=4"])
    export = next(s for s in summary["stages"] if s["stage"] == "export")
    from pathlib import Path

    out = Path(export["run"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["exports"]) == {"adapter", "merged"}
    assert "model.safetensors" in manifest["exports"]["merged"]["files"]
    merged = AutoModelForCausalLM.from_pretrained(out / "merged")
    assert merged.generation_config.eos_token_id is not None
    assert merged.generation_config.no_repeat_ngram_size == 4  # the decoding the eval measured ships with it
    assert (out / "merged" / "tokenizer_config.json").exists()


def test_time_budget_stops_training_and_marks_it(tiny_project):
    summary = run_project(
        tiny_project, ["budget.max_train_minutes=0.00001", "train.max_steps=50", "budget.hourly_usd=1.0"]
    )
    assert summary["train"]["stopped_by_budget"] is True and summary["train"]["steps"] < 50
    assert summary["train_cost_usd"] > 0
    assert summary["tuned_metrics"]["heldout"]["cost_usd"] > 0


def test_stage_keys_change_with_the_tunesmith_version(monkeypatch):
    import tunesmith
    from tunesmith.runs import stage_key

    key = stage_key("check", {"data": 1}, {"files": "abc"})
    assert stage_key("check", {"data": 1}, {"files": "abc"}) == key
    monkeypatch.setattr(tunesmith, "__version__", "99.0.0")
    assert stage_key("check", {"data": 1}, {"files": "abc"}) != key


def test_a_stage_two_workers_start_at_once_runs_once(tmp_path):
    """Two workers (processes sharing a study in one project) reaching the same stage at once: one runs it, the
    other waits and reuses that run instead of running it again in the same directory."""
    import threading
    import time

    from tunesmith.pipeline.machinery import Pipeline

    ran, stages = [], []

    def work(run_dir):
        ran.append(run_dir)
        time.sleep(0.5)
        return {"ok": True}

    def worker():
        stages.append(Pipeline(tmp_path).stage("check", {"same": "settings"}, {}, work))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ran) == 1
    assert {st.run_dir for st in stages} == {ran[0]} and sorted(st.cached for st in stages) == [False, True]
