"""Typed stage results: the train and eval stages' results as objects, written in result.json's old layout."""

import json

from tunesmith.eval.result import EvalResult
from tunesmith.pipeline.machinery import Pipeline
from tunesmith.train.result import TrainResult

# result.json of an SFT train run, as tunesmith wrote it before the typed results
OLD_SFT = {
    "method": "lora",
    "objective": "sft",
    "precision": "fp32",
    "steps": 4,
    "epochs": 1.0,
    "train_loss": 2.5,
    "wall_s": 3.2,
    "resumed_from": None,
    "stopped_by_budget": False,
    "trainable_params": 10,
    "total_params": 100,
    "eval_loss": 2.4,
    "tokens_seen": 800,
    "tokens_per_s": 250.0,
    "data": {"examples": 20},
    "dora": False,
    "rslora": False,
    "recipe": "LoRA r=4",
    "adapter": "adapter",
    "planned_epochs": 1.0,
    "planned_steps": 4,
    "lr": 0.01,
    "lora_r": 4,
    "selection": {"best_step": 2, "best_value": 0.5},
    "device": {"device": "cpu"},
    "general_examples": 0,
    "stage_wall_s": 3.5,
    "completed_at": "2026-01-01T00:00:00+00:00",
}


def test_an_old_train_result_reads_typed_and_writes_back_the_same_layout():
    result = TrainResult.from_json(OLD_SFT)
    assert (result.steps, result.recipe, result.eval_loss, result.weights) == (4, "LoRA r=4", 2.4, "adapter")
    assert result.selection["best_step"] == 2 and result.details["data"] == {"examples": 20}
    assert result.details["lr"] == 0.01 and result.model is None and result.general_examples == 0
    assert result.to_json() == OLD_SFT and TrainResult.from_json(result.to_json()) == result
    full = TrainResult.from_json({"method": "full", "model": "model", "steps": 1})
    written = full.to_json()
    assert full.weights == "model" and "adapter" not in written and written["eval_loss"] is None


def test_an_eval_result_round_trips_and_keeps_who_generated():
    written = {"model": "tiny", "adapter": "/runs/x/adapter", "backend": "vllm", "metrics": {"heldout": {"n": 3}}}
    result = EvalResult.from_json(written)
    assert (result.model, result.adapter, result.details, result.metrics["heldout"]["n"]) == (
        "tiny",
        "/runs/x/adapter",
        {"backend": "vllm"},
        3,
    )
    assert result.to_json() == written and EvalResult.from_json(result.to_json()) == result
    base = EvalResult("base", {"heldout": {"task_accuracy": 0.5}})
    assert base.to_json() == {"model": "base", "adapter": None, "metrics": {"heldout": {"task_accuracy": 0.5}}}


def test_a_typed_stage_writes_its_result_json_and_reads_it_back_typed(tmp_path):
    made = TrainResult(method="lora", steps=3, adapter="adapter", details={"pairs": 7})

    def work(run_dir):
        return made

    fresh = Pipeline(tmp_path).stage("train", {"train": {"lora": {"r": 4}}}, {}, work, typed=TrainResult)
    assert fresh.result is made and not fresh.cached
    on_disk = json.loads((fresh.run_dir / "result.json").read_text())
    assert on_disk["steps"] == 3 and on_disk["pairs"] == 7 and "stage_wall_s" in on_disk
    again = Pipeline(tmp_path).stage("train", {"train": {"lora": {"r": 4}}}, {}, work, typed=TrainResult)
    assert again.cached and isinstance(again.result, TrainResult) and again.result.steps == 3
    assert again.result.details["pairs"] == 7


def test_the_key_can_hash_another_form_of_the_config_than_config_yaml_holds(tmp_path):
    """The train stage hashes its section in the flat layout of before the sub-sections (the same recipe keeps its
    key) while config.yaml holds it nested."""
    from tunesmith import runs

    def work(run_dir):
        return {"ok": True}

    nested, flat = {"train": {"lora": {"r": 4}}}, {"train": {"lora_r": 4}}
    st = Pipeline(tmp_path).stage("train", nested, {}, work, key_config=flat)
    assert st.key == runs.stage_key("train", flat, {}) != runs.stage_key("train", nested, {})
    assert "lora:" in (st.run_dir / "config.yaml").read_text()
    assert Pipeline(tmp_path).stage("train", nested, {}, work, key_config=flat).cached
