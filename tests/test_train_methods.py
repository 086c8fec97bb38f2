"""Training methods on tiny models: LoRA variants (DoRA, rsLoRA), QLoRA on a 4-bit NF4 base, full fine-tuning.
Each trains a few real steps through the recipe and is checked on what it wrote: trainable weights moved, frozen
ones did not, the saved artifact loads and evaluates."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from conftest import interrupted_training, routing_records, routing_rows, train_config, write_jsonl
from faults.harness import CHECKPOINT_FILES, max_adapter_difference
from tunesmith.cli import app
from tunesmith.config import Config, load_config
from tunesmith.data.records import Record
from tunesmith.models import load_model, make_tiny_model, resolve_model
from tunesmith.train.sft import train_sft
from tunesmith.train.trainer import describe

runner = CliRunner()


_records, _cfg = routing_records, train_config


@pytest.mark.parametrize("variant", [{"dora": True}, {"rslora": True}])
def test_lora_variants_train_and_save_their_adapter(tmp_path, tiny_model_dir, variant):
    ref = resolve_model(str(tiny_model_dir))
    result = train_sft(_cfg(lora={"r": 4, "alpha": 8, **variant}), ref, _records(), tmp_path)
    adapter = tmp_path / result.adapter
    conf = json.loads((adapter / "adapter_config.json").read_text())
    assert conf["use_dora"] is variant.get("dora", False) and conf["use_rslora"] is variant.get("rslora", False)
    weights = load_file(adapter / "adapter_model.safetensors")
    if variant.get("dora"):  # DoRA learns a magnitude vector per adapted layer
        assert any("lora_magnitude_vector" in k for k in weights)
    assert all(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k)
    assert result.recipe == ("LoRA r=4 (DoRA)" if variant.get("dora") else "LoRA r=4 (rsLoRA)")
    # the device's choices are recorded with the result (here: a CPU run's)
    device = result.details["device"]
    assert device.pop("optimizer").startswith("adamw_torch")  # transformers picks the fused AdamW where it can
    assert device == {
        "device": "cpu",
        "attention": "eager",
        "loss": "labeled positions only (tunesmith's CPU loss)",
        "gradient_checkpointing": False,
        "batching": "grouped",
        "base_precision": "bf16",
    }


def test_qlora_trains_an_adapter_on_a_4bit_nf4_base(tmp_path, tiny_tok):
    pytest.importorskip("bitsandbytes")
    # bitsandbytes quantizes in blocks of 64: the test model's layers must be at least that wide
    model_dir = make_tiny_model(tmp_path / "m64", tiny_tok, hidden_size=64)
    ref = resolve_model(str(model_dir))
    cfg = _cfg(method="qlora", lora={"r": 4, "alpha": 8})

    import bitsandbytes as bnb

    from tunesmith.train import sft

    seen = {}
    real = sft.load_training_model

    def spy(*a, **k):
        model = real(*a, **k)
        seen["4bit"] = sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
        seen["quant"] = model.config.quantization_config
        return model

    sft.load_training_model = spy
    try:
        result = train_sft(cfg, ref, _records(), tmp_path / "run")
    finally:
        sft.load_training_model = real
    assert seen["4bit"] == 2 * 7  # every linear layer of both blocks is 4-bit (the tied head stays as it is)
    q = seen["quant"] if isinstance(seen["quant"], dict) else seen["quant"].to_dict()
    assert q["bnb_4bit_quant_type"] == "nf4" and q["bnb_4bit_use_double_quant"] is True
    weights = load_file(tmp_path / "run" / result.adapter / "adapter_model.safetensors")
    assert weights and all(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k)
    assert result.recipe == "QLoRA r=4" and result.trainable_params < result.total_params


def test_full_fine_tuning_moves_every_weight_and_saves_a_model(tmp_path, tiny_model_dir):
    ref = resolve_model(str(tiny_model_dir))
    result = train_sft(_cfg(method="full"), ref, _records(), tmp_path)
    assert result.recipe == "full fine-tuning" and result.trainable_params == result.total_params
    before = dict(load_model(ref).named_parameters())
    after = dict(load_model(resolve_model(str(tmp_path / result.model))).named_parameters())
    assert set(before) == set(after)
    moved = [n for n in before if not torch.equal(before[n], after[n])]
    assert len(moved) == len(before)  # every parameter trained (the embedding included)
    assert (tmp_path / "model" / "generation_config.json").exists() and (tmp_path / "model" / "tokenizer.json").exists()


def test_dora_with_full_is_a_config_error(tmp_path):
    from tunesmith.errors import TunesmithError

    (tmp_path / "tunesmith.yaml").write_text("train: {method: full, lora: {dora: true}}\n")
    with pytest.raises(TunesmithError) as exc:
        load_config(tmp_path)
    assert "train" in str(exc.value.problems[0].where) and "dora" in exc.value.problems[0].message
    (tmp_path / "tunesmith.yaml").write_text("train: {method: full, loraplus_lr_ratio: 16}\n")
    with pytest.raises(TunesmithError) as exc:
        load_config(tmp_path)
    assert "loraplus_lr_ratio" in exc.value.problems[0].message and "full" in exc.value.problems[0].message


def test_sft_only_switches_with_another_objective_are_a_config_error(tmp_path):
    from tunesmith.errors import TunesmithError

    (tmp_path / "tunesmith.yaml").write_text("train: {objective: dpo, prompt_loss: true, neftune_alpha: 5}\n")
    with pytest.raises(TunesmithError) as exc:
        load_config(tmp_path)
    assert "prompt_loss and neftune_alpha apply to SFT only" in exc.value.problems[0].message
    (tmp_path / "tunesmith.yaml").write_text("train: {objective: sft, prompt_loss: true, neftune_alpha: 5}\n")
    cfg, _ = load_config(tmp_path)
    assert cfg.train.prompt_loss and cfg.train.neftune_alpha == 5


def test_train_verb_runs_full_fine_tuning_and_the_run_evaluates_the_trained_model(tiny_project):
    res = runner.invoke(app, ["train", str(tiny_project), "--method", "full", "--set", "train.max_steps=2"])
    assert res.exit_code == 0, res.output
    assert "full fine-tuning: 2 steps" in res.output and "/model" in res.output
    from tunesmith.pipeline import run_project

    summary = run_project(tiny_project, ["train.method=full", "train.max_steps=2", "export.formats=[merged]"])
    stages = {s["stage"]: s for s in summary["stages"]}
    assert stages["train"]["cached"]  # the train verb's run is the pipeline's train stage
    tuned = json.loads(
        (tiny_project / ".tunesmith" / "runs" / stages["eval-tuned"]["run"].split("/")[-1] / "result.json").read_text()
    )
    assert tuned["adapter"] is None and tuned["model"].endswith("/model")
    manifest = json.loads(
        (tiny_project / ".tunesmith" / "runs" / stages["export"]["run"].split("/")[-1] / "manifest.json").read_text()
    )
    assert manifest["adapter"] is None and "model.safetensors" in manifest["exports"]["merged"]["files"]


def test_train_check_verb_prints_the_invariants(tiny_project):
    res = runner.invoke(app, ["train", str(tiny_project), "--check", "--method", "full"])
    assert "Training invariants" in res.output and "batch 8x1 = batch 1x8" in res.output
    assert res.output.count("pass") >= 3  # mask, moved/frozen and accumulation hold on the tiny model
    assert res.exit_code == (1 if "FAIL" in res.output else 0)


def test_describe_names_the_recipe():
    assert describe(_cfg()) == "LoRA r=16"
    assert describe(_cfg(method="qlora", lora={"dora": True, "rslora": True, "r": 8})) == "QLoRA r=8 (DoRA, rsLoRA)"
    assert describe(_cfg(loraplus_lr_ratio=16)) == "LoRA r=16 (LoRA+ x16)"
    assert describe(_cfg(lora={"layers": 12})) == "LoRA r=16 (last 12 layers)"
    assert describe(_cfg(lora={"layers": [0, 3]})) == "LoRA r=16 (layers 0,3)"


@pytest.mark.parametrize(("layers", "adapted"), [(1, {1}), ([0], {0}), (None, {0, 1})])
def test_lora_layers_adapt_only_the_named_decoder_layers(tmp_path, tiny_model_dir, layers, adapted):
    """`train.lora.layers`: N = the last N decoder layers, a list = those indices; every linear module of an
    adapted layer gets its adapter (`all-linear` named for peft), the other layers none."""
    ref = resolve_model(str(tiny_model_dir))
    result = train_sft(_cfg(lora={"r": 4, "layers": layers}), ref, _records(), tmp_path)
    weights = load_file(tmp_path / result.adapter / "adapter_model.safetensors")
    b = {k: v for k, v in weights.items() if "lora_B" in k}
    assert {int(k.split(".layers.")[1].split(".")[0]) for k in b} == adapted
    linears = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert {k.split(".")[-3] for k in b} == linears
    assert all(v.abs().sum() > 0 for v in b.values())


def test_lora_layers_beyond_the_model_are_a_clear_error(tmp_path, tiny_model_dir):
    from tunesmith.errors import TunesmithError

    ref = resolve_model(str(tiny_model_dir))
    for layers in (3, [0, 2]):
        with pytest.raises(TunesmithError) as err:
            train_sft(_cfg(lora={"layers": layers}), ref, _records(), tmp_path)
        assert "train.lora.layers" in str(err.value) and "2 decoder layers" in str(err.value)
    with pytest.raises(TunesmithError) as err:  # peft restricts named modules to layers, not a pattern
        train_sft(_cfg(lora={"layers": 1, "target_modules": ".*proj"}), ref, _records(), tmp_path)
    assert "train.lora.target_modules" in str(err.value) and "[q_proj, v_proj]" in str(err.value)


def test_loraplus_trains_the_b_matrices_at_its_ratio_of_the_learning_rate(tiny_model_dir):
    """`train.loraplus_lr_ratio`: every B matrix in a group at ratio x lr, every A matrix at lr, weight decay as
    `train.weight_decay`; unset, one learning rate for all (the trainer's own optimizer)."""
    from tunesmith.train.sft import build_trainer

    ref = resolve_model(str(tiny_model_dir))

    def groups(**train):
        trainer = build_trainer(_cfg(lora={"r": 4}, lr=1e-3, **train), ref, _records(), Path(tempfile.mkdtemp()))[0]
        optimizer = trainer.create_optimizer()
        names = {id(p): n for n, p in trainer.model.named_parameters()}
        kinds = lambda group: {names[id(p)].split(".")[-3] for p in group["params"]}  # lora_A, lora_B
        return [(g["lr"], g["weight_decay"], kinds(g)) for g in optimizer.param_groups]

    assert {lr for lr, _, _ in groups()} == {1e-3}
    plus = [g for g in groups(loraplus_lr_ratio=16, weight_decay=0.1) if g[2]]
    assert sorted(plus) == sorted([(1e-3, 0.1, {"lora_A"}), (1.6e-2, 0.1, {"lora_B"})]), plus


@pytest.mark.parametrize("loraplus", [None, 16.0], ids=["lora", "lora+"])
def test_a_resumed_run_ends_with_the_adapter_of_an_uninterrupted_one(tmp_path, tiny_model_dir, loraplus):
    """Killed right after checkpoint-2 of 4 and resumed: same sample order, schedule and RNG state, so the final
    adapter equals the uninterrupted run's (max abs difference at most 1e-6 on CPU); LoRA+'s four parameter groups
    too."""
    ref = resolve_model(str(tiny_model_dir))
    cfg = _cfg(max_steps=4, save_steps=2, batch_size=2, lora={"r": 4, "alpha": 8}, lr=5e-3, loraplus_lr_ratio=loraplus)
    records = _records(16)
    train_sft(cfg, ref, records, tmp_path / "whole")
    saved = interrupted_training(cfg, ref, records, tmp_path / "killed", at_step=2)
    names = {p.name for p in saved.iterdir()}
    assert set(CHECKPOINT_FILES) <= names
    assert not [n for n in names if n.endswith((".pt", ".pth", ".bin", ".pkl"))]  # no pickle in a checkpoint
    # a pickle planted in the checkpoint is never opened: unpickling it would create `pwned`
    marker = tmp_path / "pwned"
    (saved / "optimizer.pt").write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    resumed = train_sft(cfg, ref, records, tmp_path / "killed")
    assert not marker.exists()
    assert resumed.resumed_from.endswith("checkpoint-2") and resumed.steps == 4
    worst = max_adapter_difference(tmp_path / "whole", tmp_path / "killed")  # asserts the same tensors
    assert worst <= 1e-6, worst


def test_a_nan_loss_stops_training_naming_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path, tiny_model_dir, monkeypatch
):
    import torch.nn.functional as F

    from tunesmith.train.trainer import TrainingDiverged

    real, calls = F.cross_entropy, []

    def poisoned(*a, **k):  # the loss of the 4th micro-batch (= step 4) on is NaN
        calls.append(1)
        loss = real(*a, **k)
        return loss * float("nan") if len(calls) >= 4 else loss

    monkeypatch.setattr(F, "cross_entropy", poisoned)
    ref = resolve_model(str(tiny_model_dir))
    with pytest.raises(TrainingDiverged) as exc:
        train_sft(_cfg(max_steps=6, save_steps=2), ref, _records(), tmp_path)
    problem = exc.value.problems[0]
    assert problem.where == "step 4" and "nan" in problem.message
    assert "checkpoint-2" in problem.hint
    saved = sorted(p.name for p in (tmp_path / "checkpoints").glob("checkpoint-*"))
    assert saved == ["checkpoint-2"]  # step 4's NaN never reached a checkpoint


def test_the_training_invariants_hold_for_lora_and_full(tmp_path, tiny_model_dir):
    from tunesmith.train.invariants import check_invariants

    ref = resolve_model(str(tiny_model_dir))
    for method in ("lora", "full"):
        cfg = _cfg(method=method, lora={"r": 4, "alpha": 8})
        results = {r.name: r for r in check_invariants(cfg, ref, _records(), overfit_steps=40, overfit_lr=1e-2)}
        # A LoRA adapter on a random 32-wide model cannot memorize (its tied head is frozen); on the built-in model
        # LoRA r=16 takes two examples from loss 3.48 to 0.000 in 30 steps at lr 3e-3. Full tuning memorizes here.
        checked = [r for r in results.values() if method == "full" or r.name != "overfits one batch"]
        assert all(r.passed for r in checked), [(r.name, r.detail) for r in checked]
        moved = results["trainable move, frozen stay"].figures
        assert moved["trainable_unchanged"] == 0 and moved["frozen_changed"] == 0
        assert (moved["frozen_tensors"] > 0) == (method == "lora")
        assert results["batch 8x1 = batch 1x8"].figures["relative_difference"] < 1e-3


def test_the_invariants_catch_a_broken_mask_and_a_frozen_adapter(tmp_path, tiny_model_dir, monkeypatch):
    from tunesmith import chat
    from tunesmith.train import invariants

    ref = resolve_model(str(tiny_model_dir))
    cfg = _cfg(lora={"r": 4, "alpha": 8})
    real = chat.training_example

    def leaky(*a, **k):  # a mask that also trains the last prompt token
        ex = real(*a, **k)
        first = next(i for i, lab in enumerate(ex.labels) if lab != -100)
        ex.labels[first - 1] = ex.input_ids[first - 1]
        return ex

    monkeypatch.setattr(chat, "training_example", leaky)
    broken = invariants.mask_is_exact(cfg, ref, _records())
    assert not broken.passed and broken.figures["mismatched"] == 12
    monkeypatch.undo()
    cfg.train.lr = 1e-30  # an adapter that never moves (a learning rate of nothing)
    stuck = invariants.trainable_moved_frozen_still(cfg, ref, _records(), tmp_path)
    assert not stuck.passed and stuck.figures["trainable_unchanged"] > 0


def _pairs(n=16):
    out = []
    for i in range(n):
        q = f"ticket {i}: my {['billing', 'shipping'][i % 2]} problem number {i * 7 % 13}"
        if i % 3 == 0:  # transcript style (HH-RLHF)
            out.append(
                {
                    "chosen": f"\n\nHuman: {q}\n\nAssistant: I will route this to the right team.",
                    "rejected": f"\n\nHuman: {q}\n\nAssistant: Not my problem.",
                }
            )
        else:
            out.append(
                {
                    "prompt": [{"role": "user", "content": q}],
                    "chosen": "I will route this to the right team.",
                    "rejected": "Not my problem.",
                }
            )
    return out


def _pairs_project(project, model_dir, max_seq_len: int, rest: str):
    """A project on the tiny model whose data are `_pairs()`; `rest` adds YAML sections."""
    write_jsonl(project / "data" / "pairs.jsonl", _pairs())
    (project / "tunesmith.yaml").write_text(
        f'model: {{base: "{model_dir}"}}\ndata: {{train: [data/pairs.jsonl], max_seq_len: {max_seq_len}}}\n' + rest
    )
    return project


def test_dpo_trains_an_adapter_from_preference_pairs_and_runs_end_to_end(tmp_path, tiny_model_dir):
    project = _pairs_project(
        tmp_path / "dpo",
        tiny_model_dir,
        96,
        """
eval: {max_new_tokens: 6, bootstrap_samples: 200}
train: {objective: dpo, max_steps: 2, batch_size: 4, save_steps: 100, logging_steps: 1, precision: bf16, lora: {r: 4}}
""",
    )
    res = runner.invoke(app, ["train", str(project)])
    assert res.exit_code == 0, res.output
    assert "LoRA r=4 (DPO): 2 steps" in res.output
    from tunesmith.pipeline import run_project

    summary = run_project(project)
    stages = {s["stage"]: s for s in summary["stages"]}
    assert stages["train"]["cached"]
    train = json.loads((tiny_project_runs(project) / stages["train"]["run"].split("/")[-1] / "result.json").read_text())
    assert train["objective"] == "dpo" and train["pairs"] == 13 and train["reward_accuracy"] is not None
    weights = load_file(
        tiny_project_runs(project) / stages["train"]["run"].split("/")[-1] / "adapter" / "adapter_model.safetensors"
    )
    assert all(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k)
    assert {m["suite"] for m in summary["metrics"]} >= {"heldout"}


def tiny_project_runs(project):
    return project / ".tunesmith" / "runs"


def test_dpo_on_conversations_is_a_clear_error(tiny_project):
    res = runner.invoke(app, ["train", str(tiny_project), "--objective", "dpo"])
    assert res.exit_code != 0
    from tunesmith.errors import TunesmithError

    assert isinstance(res.exception, TunesmithError) and "DPO needs preference pairs" in res.exception.title


def test_preference_pairs_read_in_every_shape():
    from tunesmith.data.formats import RecordError, to_record

    plain = to_record({"prompt": "hi", "chosen": "hello", "rejected": "go away"}, "f", 1)
    assert plain.messages[-1]["content"] == "hello" and plain.rejected[0]["content"] == "go away"
    implicit = to_record(
        {
            "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
            "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}],
        },
        "f",
        2,
    )
    assert implicit.prompt == [{"role": "user", "content": "q"}] and implicit.rejected[0]["content"] == "b"
    hh = to_record(
        {
            "chosen": "\n\nHuman: q1\n\nAssistant: a1\n\nHuman: q2\n\nAssistant: good",
            "rejected": "\n\nHuman: q1\n\nAssistant: a1\n\nHuman: q2\n\nAssistant: bad",
        },
        "f",
        3,
    )
    assert [m["role"] for m in hh.messages] == ["user", "assistant", "user", "assistant"]
    assert hh.rejected == [{"role": "assistant", "content": "bad"}]
    again = to_record(hh.to_json(), "elsewhere", 9)  # what tunesmith writes reads back as the same pair
    assert again.rejected == hh.rejected and again.where == "f:3" and not again.unknown_keys
    for bad, field in (
        ({"prompt": "a", "chosen": "b", "rejected": "b"}, "rejected"),
        ({"chosen": "no markers", "rejected": "x"}, "chosen"),
        ({"prompt": 3, "chosen": "b", "rejected": "c"}, "prompt"),
    ):
        with pytest.raises(RecordError) as exc:
            to_record(bad, "f", 1)
        assert exc.value.field == field


def test_grpo_rewards_are_the_eval_scorers(tmp_path, monkeypatch):
    from tunesmith.config import TaskConfig
    from tunesmith.train.grpo_rewards import default_rewards, reward_function

    prompts = [[{"role": "user", "content": "2+2?"}]] * 3
    numeric = reward_function({"type": "numeric"}, None)
    assert numeric(
        prompts, [[{"role": "assistant", "content": "It is 4."}], "#### 5", "four"], expected=["4", "4", "4"]
    ) == [1.0, 0.0, 0.0]
    no_comma = reward_function({"type": "instructions", "instruction_id_list": ["punctuation:no_comma"]}, None)
    assert no_comma(prompts[:2], ["a b c", "a, b"], expected=["null", "null"]) == [1.0, 0.0]
    (tmp_path / "my_rewards.py").write_text("def short(output, case):\n    return len(output) < 5\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert reward_function({"type": "custom", "function": "my_rewards:short"}, None)(
        prompts[:2], ["ok", "far too long"], expected=["null", "null"]
    ) == [1.0, 0.0]
    cfg = Config(task=TaskConfig(type="json", match_fields=["queue"]))
    assert default_rewards(cfg, {"type": "object"}) == [
        {"type": "json_schema", "weight": 0.5},
        {"type": "json_fields", "fields": ["queue"], "weight": 1.0},
    ]
    from tunesmith.errors import TunesmithError

    with pytest.raises(TunesmithError, match="GRPO needs rewards"):
        default_rewards(Config(), None)


def test_a_bad_reward_spec_is_a_config_error(tmp_path):
    from tunesmith.errors import TunesmithError

    (tmp_path / "tunesmith.yaml").write_text(
        "train: {objective: grpo, grpo: {rewards: [{type: regexp, pattern: x}]}}\n"
    )
    with pytest.raises(TunesmithError) as exc:
        load_config(tmp_path)
    assert "unknown scorer 'regexp'" in exc.value.problems[0].message


def test_grpo_trains_with_the_task_rewards_end_to_end(tiny_project):
    from tunesmith.pipeline import run_project

    summary = run_project(
        tiny_project,
        [
            "train.objective=grpo",
            "train.max_steps=2",
            "train.batch_size=4",
            "train.grpo.max_completion_tokens=8",
            "train.lr=1e-3",
            "train.precision=bf16",
        ],
    )  # generation too, where no autocast runs
    stages = {s["stage"]: s for s in summary["stages"]}
    run = tiny_project_runs(tiny_project) / stages["train"]["run"].split("/")[-1]
    result = json.loads((run / "result.json").read_text())
    assert result["objective"] == "grpo" and result["steps"] == 2 and result["rewards"] == ["json", "json_fields"]
    assert result["reward_weights"] == [0.5, 1.0] and result["reward_first"] is not None
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("rewards/json_fields/mean" in row for row in logged)
    assert (run / "adapter" / "adapter_model.safetensors").exists()


def test_trackers_mirror_metrics_or_fail_clearly_when_missing(tmp_path, tiny_model_dir):
    import importlib.util

    from tunesmith.errors import TunesmithError

    ref = resolve_model(str(tiny_model_dir))
    cfg = _cfg(report_to=["tensorboard"])
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(TunesmithError, match="Tracker not installed") as exc:
            train_sft(cfg, ref, _records(), tmp_path)
        assert "pip install tensorboard" in exc.value.problems[0].hint
    else:
        train_sft(cfg, ref, _records(), tmp_path)
        assert list((tmp_path / "tensorboard").glob("events.out.tfevents*"))


def test_two_processes_through_accelerate_match_one_with_the_same_global_batch(tmp_path, tiny_model_dir):
    """`train --nproc 2` (accelerate launch, DDP over gloo on CPU), batch 4 per process, equals one process with
    batch 8: the same examples in the one step, so the adapters agree to 1e-5."""
    adapters = {}
    for nproc, batch in ((1, 8), (2, 4)):
        project = tmp_path / f"p{nproc}"
        write_jsonl(project / "data" / "d.jsonl", routing_rows(10))
        (project / "tunesmith.yaml").write_text(f"""
model: {{base: "{tiny_model_dir}"}}
task: {{type: json}}
data: {{train: [data/d.jsonl], max_seq_len: 96, stratify_by: null, validation_fraction: 0}}
train: {{max_steps: 1, batch_size: {batch}, precision: fp32, lora: {{r: 4}}, lr: 1.0e-2, warmup_ratio: 0.0,
        logging_steps: 1}}
""")
        res = runner.invoke(app, ["train", str(project), "--nproc", str(nproc)])
        assert res.exit_code == 0, res.output
        run = next((project / ".tunesmith" / "runs").glob("*-train-*"))
        assert json.loads((run / "result.json").read_text()).get("nproc", 1) == nproc
        adapters[nproc] = load_file(run / "adapter" / "adapter_model.safetensors")
    a, b = adapters[1], adapters[2]
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-5
    assert max(v.abs().max().item() for k, v in a.items() if "lora_B" in k) > 1e-3  # it did move


def test_a_reward_model_trains_from_pairs_and_rewards_grpo(tmp_path, tiny_model_dir):
    project = _pairs_project(
        tmp_path / "rm",
        tiny_model_dir,
        256,
        """
train: {objective: reward, max_steps: 2, batch_size: 4, logging_steps: 1, precision: fp32, lora: {r: 4}}
""",
    )
    res = runner.invoke(app, ["train", str(project)])
    assert res.exit_code == 0, res.output
    run = next((project / ".tunesmith" / "runs").glob("*-train-*"))
    result = json.loads((run / "result.json").read_text())
    assert result["objective"] == "reward" and result["pairs"] == 13
    from tunesmith.train.reward_model import RewardModelScorer

    scorer = RewardModelScorer(run / "reward_model")
    scores = scorer([[{"role": "user", "content": "hi"}]] * 2, ["I will route this.", "Not my problem."])
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores)

    from tunesmith.train.grpo_rewards import reward_function

    learned = reward_function({"type": "reward_model", "path": str(run / "reward_model")}, None)
    assert learned(
        [[{"role": "user", "content": "hi"}]], [[{"role": "assistant", "content": "ok"}]], expected=["null"]
    ) == pytest.approx(scorer([[{"role": "user", "content": "hi"}]], ["ok"]))
    from tunesmith.errors import TunesmithError
    from tunesmith.pipeline import run_project

    with pytest.raises(TunesmithError, match="trained, not run"):
        run_project(project)
    from tunesmith.train.reward_model import train_reward_model

    cfg = load_config(project, ["data.max_seq_len=40"])[0]  # pairs the data check keeps (truncated) but TRL drops
    with pytest.raises(TunesmithError, match="No preference pair fits"):
        train_reward_model(
            cfg,
            resolve_model(str(tiny_model_dir)),
            [
                Record(
                    messages=[{"role": "user", "content": "q " * 30}, {"role": "assistant", "content": "a"}],
                    rejected=[{"role": "assistant", "content": "b"}],
                )
            ],
            tmp_path / "x",
        )


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_labeled_head_loss_equals_the_plain_causal_lm_loss(tiny_model_dir, precision):
    from transformers import Trainer

    from tunesmith.train.sft import build_trainer

    ref = resolve_model(str(tiny_model_dir))
    trainer = build_trainer(
        _cfg(lora={"r": 4}, precision=precision, base_precision="fp32"),
        ref,
        _records(),
        Path(tempfile.mkdtemp()),
        save_strategy="no",
    )[0]
    batch = next(iter(trainer.get_train_dataloader()))
    n = (batch["labels"][:, 1:] != -100).sum()
    ours = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=n)
    with trainer.accelerator.autocast():  # what accelerate wraps around model.forward in training
        plain = Trainer.compute_loss(trainer, trainer.model, {**batch, "use_cache": False}, num_items_in_batch=n)
    fp32 = Trainer.compute_loss(trainer, trainer.model, {**batch, "use_cache": False}, num_items_in_batch=n)
    assert ours.item() == pytest.approx(plain.item(), rel=1e-5 if precision == "fp32" else 2e-3)
    if precision == "bf16":  # the matmuls really ran in bf16, as they do under the plain loss
        assert abs(ours.item() - fp32.item()) > 1e-5
    ours.backward()  # and it trains: the adapter gets gradients
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.model.parameters() if p.requires_grad)


def test_distillation_writes_the_teachers_replies_with_provenance(tmp_path):
    from chat_server import ChatServer
    from tunesmith.data.distill import distill_records
    from tunesmith.data.formats import to_record
    from tunesmith.generate.backends import EndpointBackend

    seen = []

    def teacher(messages, tools):
        seen.append(messages)
        if "explode" in messages[-1]["content"]:
            return {"status": 500}
        return {"content": f"TEACHER: {messages[-1]['content']}"}

    records = _records(3) + [Record(messages=[{"role": "user", "content": "explode"}], source="g.jsonl", line=9)]
    with ChatServer(teacher) as server:
        out, errors = distill_records(
            records, EndpointBackend(server.base_url, "big", max_retries=0), teacher_system="Reply as a calm expert."
        )
    assert len(out) == 3 and errors and "g.jsonl:9" in errors[0]
    assert out[0].messages[-1]["content"].startswith("TEACHER: ticket 0")
    assert out[0].messages[:-1] == records[0].prompt  # the student keeps its own prompt (system prompt included)
    assert seen[0][0] == {"role": "system", "content": "Reply as a calm expert."}  # only the teacher saw this
    back = to_record(out[0].to_json(), "x", 1)
    assert back.provenance["distilled"]["teacher_system"] == "Reply as a calm expert."
    assert "big" in back.provenance["distilled"]["teacher"] and back.where == "t.jsonl:1"


def test_self_distilled_general_data_is_mixed_into_training(tiny_project, capsys):
    from chat_server import ChatServer

    suite = str(tiny_project / "eval" / "redteam.jsonl")

    def distill(out: Path, *options: str):
        return runner.invoke(app, ["data", "distill", suite, "--out", str(out), *options])

    # self-distillation with the project's base: the random tiny model only emits newlines, which is reported
    res = distill(tiny_project / "self.jsonl", "--project", str(tiny_project), "--max-new-tokens", "8")
    assert res.exit_code == 1 and "redteam.jsonl:1: the teacher emitted nothing" in res.output
    with ChatServer(lambda m, t: {"content": "a calm general answer"}) as server:
        general_out = tiny_project / "data" / "general" / "self.jsonl"
        res = distill(general_out, "--endpoint", server.base_url, "--endpoint-model", "teacher")
    assert res.exit_code == 0 and "1 of 1 record(s) distilled" in res.output, res.output
    general = tiny_project / "data" / "general" / "g.jsonl"
    write_jsonl(
        general,
        [
            {
                "messages": [
                    {"role": "user", "content": f"general question {i}"},
                    {"role": "assistant", "content": f"general answer {i}"},
                ]
            }
            for i in range(20)
        ],
    )
    from tunesmith.pipeline import train_project

    st = train_project(
        tiny_project, ["train.general_data=[data/general/*.jsonl]", "train.general_share=0.2", "train.max_steps=7"]
    )
    # 22 training records (6 held out, 2 for validation); 0.2 of the mix is general (21 general records to draw
    # from): round(0.2 * 22 / 0.8) = 6
    assert st.result.general_examples == 6 and st.result.details["data"]["examples"] == 28
    assert st.result.general_wanted is None  # (named only when the data fall short)
    # one pass (7 batches of 4), the training loss logged every step and also per kind of row: a step of one kind
    # logs its loss as that kind's; a mixed step's loss (the token mean) lies between its two kinds'
    logged = [json.loads(line) for line in (st.run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in logged if "loss" in r]
    assert len(steps) == 7 and any("loss_general" in r for r in steps) and any("loss_task" in r for r in steps)
    for r in steps:
        kinds = [r[k] for k in ("loss_task", "loss_general") if k in r]
        assert min(kinds) - 1e-3 <= r["loss"] <= max(kinds) + 1e-3, r
    assert "general data:" not in capsys.readouterr().err  # the share is met
    short = ["train.general_data=[data/general/*.jsonl]", "train.general_share=0.6", "train.max_steps=1"]
    result = train_project(tiny_project, short).result
    assert (result.general_examples, result.general_wanted) == (21, 33)  # all there are; round(0.6 * 22 / 0.4)
    assert "general data: 21 examples" in capsys.readouterr().err
    from tunesmith.errors import TunesmithError

    with pytest.raises(TunesmithError, match="Missing general data"):
        train_project(tiny_project, ["train.general_data=[nope/*.jsonl]", "train.general_share=0.2"])
    # general_kl: recorded where it acts; where it cannot (packed rows carry no kind), said, and cross-entropy kept
    kl = ["train.general_data=[data/general/*.jsonl]", "train.general_share=0.2", "train.max_steps=2"]
    assert train_project(tiny_project, [*kl, "train.general_kl=1"]).result.general_kl == 1.0
    assert "train.general_kl is not applied" not in capsys.readouterr().err
    packed = train_project(tiny_project, [*kl, "train.general_kl=1", "train.batching=packed"]).result
    assert packed.general_kl == 0.0
    note = " ".join(capsys.readouterr().err.split())  # (as the console wrapped it)
    assert "train.general_kl is not applied (batching packed does not keep whole rows)" in note


def test_oversample_repeats_the_training_records_of_a_label_and_names_an_unknown_one(tiny_project):
    from tunesmith.errors import TunesmithError
    from tunesmith.pipeline import train_project

    plain = train_project(tiny_project, ["train.max_steps=1"])
    repeated = train_project(tiny_project, ["train.max_steps=1", "train.oversample={shipping: 3}"])
    split = next((tiny_project / ".tunesmith" / "runs").glob("*-split-*")) / "train.jsonl"
    shipping = sum('\\"shipping\\"' in line for line in split.read_text().splitlines())
    assert shipping > 0  # each shipping record is shown three times: two more copies each
    assert repeated.result.details["data"]["examples"] == plain.result.details["data"]["examples"] + 2 * shipping
    assert repeated.run_dir != plain.run_dir  # another recipe, another cached run
    with pytest.raises(TunesmithError, match="Unknown label to oversample") as err:
        train_project(tiny_project, ["train.max_steps=1", "train.oversample={refunds: 2}"])
    assert "train.oversample.refunds" in str(err.value.problems[0]) and "billing" in err.value.problems[0].hint
    with pytest.raises(TunesmithError, match="Bad config"):
        train_project(tiny_project, ["train.oversample={shipping: 0}"])


def test_auto_oversampling_of_a_catch_all_label_is_keyed_as_resolved(tmp_path, tiny_model_dir):
    from conftest import write_tiny_project
    from tunesmith.pipeline import train_project

    project = write_tiny_project(tmp_path / "proj", tiny_model_dir)
    rows = routing_rows(30)
    for row in rows[::10]:  # 3 of 30 tickets are off-topic: a catch-all label
        row["messages"][-1]["content"] = json.dumps({"queue": "other", "priority": "normal"})
    write_jsonl(project / "data" / "tickets.jsonl", rows)
    auto = train_project(project, ["train.max_steps=1"])
    assert auto.result.oversampled is not None and list(auto.result.oversampled) == ["other"]
    assert auto.result.oversampled["other"] > 1
    none = train_project(project, ["train.max_steps=1", "train.oversample={}"])
    assert none.result.oversampled is None and none.run_dir != auto.run_dir
    assert none.result.details["data"]["examples"] < auto.result.details["data"]["examples"]
    # the same factors written out are the same training: the run is reused
    again = train_project(
        project, ["train.max_steps=1", f"train.oversample={{other: {auto.result.oversampled['other']}}}"]
    )
    assert again.cached and again.run_dir == auto.run_dir


@pytest.mark.parametrize(
    ("labels", "setting", "expected"),
    [
        (["billing"] * 27 + ["out_of_scope"] * 3, "auto", {"out_of_scope": 3}),  # round(0.25 * 27 / (0.75 * 3))
        (["billing"] * 270 + ["Out-Of-Scope"] * 3, "auto", {"Out-Of-Scope": 10}),  # at most 10 times
        (["billing"] * 27 + ["other"] * 9, "auto", {}),  # already a quarter
        (["billing"] * 27 + ["other"] * 3 + ["none"] * 3, "auto", {}),  # which one? none is repeated
        (["billing"] * 27 + ["shipping"] * 3, "auto", {}),  # no catch-all label
        (["billing"] * 27 + ["shipping"] * 3, {"shipping": 2, "billing": 1}, {"shipping": 2}),
    ],
)
def test_oversample_factors_resolve_auto_to_a_catch_all_label(labels, setting, expected):
    from tunesmith.data.project import oversample, oversample_factors

    cfg = Config()
    cfg.task.type, cfg.task.match_fields, cfg.train.oversample = "json", ["queue"], setting
    records = [
        Record(
            messages=[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": json.dumps({"queue": x})}]
        )
        for i, x in enumerate(labels)
    ]
    assert oversample_factors(records, cfg) == expected
    repeated = oversample(records, cfg)
    assert len(repeated) == len(records) + sum((k - 1) * labels.count(label) for label, k in expected.items())
    if setting == "auto":
        cfg.task.type = "chat"  # no label to read: auto repeats nothing
        assert oversample_factors(records, cfg) == {}


def test_a_checkpoint_with_only_pickled_state_is_refused(tmp_path, tiny_model_dir):
    from tunesmith.errors import TunesmithError

    ref = resolve_model(str(tiny_model_dir))
    cfg = _cfg(max_steps=3, save_steps=1)
    saved = interrupted_training(cfg, ref, _records(), tmp_path, at_step=1)
    for name in ("optimizer.safetensors", "optimizer.json"):  # as if another tool had written it
        (saved / name).unlink()
    (saved / "optimizer.pt").write_bytes(b"pickled by someone else")
    with pytest.raises(TunesmithError, match="Refusing a pickled checkpoint"):
        train_sft(cfg, ref, _records(), tmp_path)


def test_a_bf16_stored_base_trains_exactly_like_the_fp32_one_under_autocast(tmp_path, tiny_model_dir):
    from transformers import set_seed

    from tunesmith.train.sft import build_trainer

    ref = resolve_model(str(tiny_model_dir))
    trainers = {
        base: build_trainer(
            _cfg(precision="bf16", base_precision=base, lora={"r": 4}, max_steps=3),
            ref,
            _records(),
            tmp_path / base,
            save_strategy="no",
        )[0]
        for base in ("bf16", "fp32")
    }
    dtypes = {name: p.dtype for name, p in trainers["bf16"].model.named_parameters()}
    assert {dtypes[n] for n in dtypes if "lora_" in n} == {torch.float32}  # the adapter trains in fp32
    assert {dtypes[n] for n in dtypes if "proj.base_layer" in n} == {torch.bfloat16}
    assert trainers["bf16"].model.get_input_embeddings().weight.dtype == torch.float32  # and so do embeddings, norms
    assert {p.dtype for p in trainers["fp32"].model.parameters()} == {torch.float32}
    # peft draws the adapter's random init in the base layer's dtype; start both from the same one
    start = {k: v for k, v in trainers["bf16"].model.state_dict().items() if "lora_" in k}
    trainers["fp32"].model.load_state_dict(start, strict=False)
    losses, adapters = {}, {}
    for base, trainer in trainers.items():
        set_seed(trainer.args.seed)  # the same batch order for both
        trainer.train()
        losses[base] = [row["loss"] for row in trainer.state.log_history if "loss" in row]
        adapters[base] = {k: v.detach() for k, v in trainer.model.named_parameters() if v.requires_grad}
    # autocast casts the fp32 weights to bf16 for every matmul: the same products, so the same training
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=1e-6) and len(losses["fp32"]) == 3
    assert max((adapters["bf16"][k] - adapters["fp32"][k]).abs().max().item() for k in adapters["fp32"]) < 1e-6


def test_the_held_out_loss_is_logged_during_and_after_training(tiny_project):
    from tunesmith.pipeline import train_project

    st = train_project(tiny_project, ["train.max_steps=4", "train.eval_steps=2", "train.logging_steps=1"])
    assert st.result.eval_loss > 0
    logged = [json.loads(line) for line in (st.run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [row for row in logged if "eval_loss" in row]
    # every 2 steps; the last step was one of them, so its loss is the result's, not computed again at the end
    assert [row["step"] for row in evals] == [2, 4] and st.result.eval_loss == evals[-1]["eval_loss"]


def test_padding_free_batches_train_exactly_like_padded_ones(tmp_path, tiny_model_dir):
    from tunesmith.train.sft import build_trainer

    ref = resolve_model(str(tiny_model_dir))
    runs = {}
    for batching in ("random", "padding_free", "packed", "grouped"):
        trainer = build_trainer(
            _cfg(batching=batching, lora={"r": 4}, max_steps=3),
            ref,
            _records(),
            tmp_path / batching,
            save_strategy="no",
        )[0]
        batch = next(iter(trainer.get_train_dataloader()))
        assert ("attention_mask" in batch) == (batching in ("random", "grouped"))
        trainer.train()
        runs[batching] = (
            [row["loss"] for row in trainer.state.log_history if "loss" in row],
            trainer.state.num_input_tokens_seen,
        )
    # The same examples in the same order, concatenated into one row: attention stays within each example
    assert runs["padding_free"][0] == pytest.approx(runs["random"][0], rel=1e-5)
    # every real token counted (the pad id is also the end-of-turn token here), no padding counted
    assert runs["padding_free"][1] == runs["random"][1] == runs["grouped"][1] == runs["packed"][1]
    assert all(math.isfinite(loss) for losses, _ in runs.values() for loss in losses)


def test_an_unfinished_reply_trains_its_text_but_not_its_end(tiny_model_dir):
    from tunesmith.chat import IGNORE, training_example
    from tunesmith.models import load_tokenizer

    tok = load_tokenizer(resolve_model(str(tiny_model_dir)))
    messages = [{"role": "user", "content": "explain tides"}, {"role": "assistant", "content": "The moon pulls"}]
    done, cut = training_example(tok, messages), training_example(tok, messages, finished=False)
    labeled = [k for k, lab in enumerate(done.labels) if lab != IGNORE]
    assert done.input_ids[labeled[-1]] == tok.eos_token_id  # a finished reply learns to stop ...
    assert (
        cut.labels[labeled[-1]] == IGNORE and cut.labels[: labeled[-1]] == done.labels[: labeled[-1]]
    )  # ... a cut one not
    assert cut.assistant_tokens == done.assistant_tokens - 1


class _Base:
    """A base model that answers every prompt with its first words (and runs out of tokens on every third)."""

    fingerprint = '{"model": "fake-base"}'

    def prompt_key(self, case):
        return json.dumps(case.messages)

    def generate(self, cases, max_new_tokens=128, on_result=None, **_):
        from tunesmith.generate.backends import Generation

        out = [
            Generation(
                output="" if "octopuses" in c.messages[-1]["content"] else f"Well: {c.messages[-1]['content']}",
                new_tokens=5,
                hit_limit=i % 3 == 0,
                latency_s=0.0,
            )
            for i, c in enumerate(cases)
        ]
        for i, gen in enumerate(out):
            on_result and on_result(i, gen)
        return out


def test_builtin_self_mixes_the_base_models_own_general_replies_into_training(tiny_project, monkeypatch):
    from tunesmith.data.distill import general_prompts, self_distilled_general
    from tunesmith.eval.suite import general_probe
    from tunesmith.generate import backends
    from tunesmith.pipeline import train_project

    # the built-in prompts are not the probe's (the probe must still measure forgetting)
    probe = {c.messages[-1]["content"] for c in general_probe()}
    prompts = [r.messages[-1]["content"] for r in general_prompts()]
    assert len(prompts) == 1000 == len(set(prompts)) and not probe & set(prompts)
    # a prompt the base leaves unanswered is skipped; those cut at the limit are marked
    made = self_distilled_general(_Base())
    assert len(made) == 999 and sum(bool(r.provenance.get("unfinished")) for r in made) == sum(
        i % 3 == 0 and "octopuses" not in p for i, p in enumerate(prompts)
    )

    asked = []

    class Base(_Base):  # the base model's backend answers; the trained model's validation backend is real
        from_model = backends.TransformersBackend.from_model

        def __init__(self, *args, **kwargs):
            pass

        def generate(self, cases, *args, **kwargs):
            asked.extend(c.messages[-1]["content"] for c in cases)
            return super().generate(cases, *args, **kwargs)

    monkeypatch.setattr(backends, "TransformersBackend", Base)
    from tunesmith.train import sft

    shown = []
    real = sft.training_example
    monkeypatch.setattr(
        sft,
        "training_example",
        lambda tok, messages, *a, **k: shown.append((messages, k["finished"])) or real(tok, messages, *a, **k),
    )
    overrides = [
        "train.general_data=[builtin:self]",
        "train.general_share=0.2",
        "task.system_prompt=Route the ticket.",
        "train.max_steps=1",
    ]
    from tunesmith.pipeline.planning import cost_report

    # `tunesmith cost` counts the general replies training will mix in: before they are made, at their token limit
    before = cost_report(tiny_project, overrides=overrides)
    assert before["tokens"]["examples"] == 28 and asked == []  # 22 + 6, nothing generated for a count
    assert any("6 general replies are not made yet" in n for n in before["notes"]), before["notes"]
    shown.clear()
    st = train_project(tiny_project, overrides)
    trained = list(shown)
    after = cost_report(tiny_project, overrides=overrides)  # then the replies made, as training saw them
    assert after["tokens"]["examples"] == 28 and not any("not made yet" in n for n in after["notes"])
    assert after["tokens"]["per_epoch"] < before["tokens"]["per_epoch"]  # the short replies of this fake base
    assert after["tokens"]["per_epoch"] == st.result.details["data"]["tokens"]
    # 22 training records: round(0.2 * 22 / 0.8) = 6 general ones, the replies to the first 6 prompts only (as
    # many as the mix asks), shown without the task's system prompt (as the general probe asks them; a
    # task.system_prompt is not added to them) and, when cut, trained without their end
    general_runs = list((tiny_project / ".tunesmith" / "runs").glob("*-general-self-*"))
    assert len(general_runs) == 1 and asked == prompts[:6]
    made = [json.loads(line) for line in (general_runs[0] / "general.jsonl").read_text().splitlines()]
    made_in = general_runs[0].name
    assert [r["messages"][0]["content"] for r in made] == prompts[:6]
    assert sum(bool(r["meta"].get("unfinished")) for r in made) == 2  # the first and fourth hit the limit
    assert st.result.general_examples == 6
    general = [(m, fin) for m, fin in trained if m[-1]["content"].startswith("Well: ")]
    task = [(m, fin) for m, fin in trained if not m[-1]["content"].startswith("Well: ")]
    assert len(general) == 6 and all(m[0]["role"] == "user" for m, _ in general)
    assert task and all(m[0]["role"] == "system" and fin for m, fin in task)  # (the data's own system prompt)
    unfinished = {r["messages"][-1]["content"] for r in made if r["meta"].get("unfinished")}
    assert all(fin == (m[-1]["content"] not in unfinished) for m, fin in general)
    # made again (its run removed) with the same replies, the stage's new directory leaves the train key as it was
    shutil.rmtree(general_runs[0])
    again = train_project(tiny_project, overrides)
    assert again.cached and again.run_dir == st.run_dir
    general_runs = list((tiny_project / ".tunesmith" / "runs").glob("*-general-self-*"))
    assert len(general_runs) == 1 and general_runs[0].name != made_in
    # made once per base model and count: a second run with another recipe reuses it ...
    train_project(tiny_project, ["train.general_data=[builtin:self]", "train.general_share=0.2", "train.max_steps=2"])
    assert len(list((tiny_project / ".tunesmith" / "runs").glob("*-general-self-*"))) == 1
    # ... and one asking more (round(0.5 * 22 / 0.5) = 22) generates only the replies it lacks
    st = train_project(
        tiny_project, ["train.general_data=[builtin:self]", "train.general_share=0.5", "train.max_steps=1"]
    )
    assert len(list((tiny_project / ".tunesmith" / "runs").glob("*-general-self-*"))) == 2
    assert asked == prompts[:22] and st.result.general_examples == 22
    # a share too small for one example of this data (round(0.02 * 22 / 0.98) = 0) makes and mixes nothing
    st = train_project(
        tiny_project, ["train.general_data=[builtin:self]", "train.general_share=0.02", "train.max_steps=1"]
    )
    assert len(list((tiny_project / ".tunesmith" / "runs").glob("*-general-self-*"))) == 2
    assert not st.result.general_examples


def test_general_data_short_of_the_share_is_named():
    """General data short of train.general_share is named: on a large data set 200 general replies fall far short
    (a 9,095-query run trained two passes with 2% general data and lost 6 probe points), and the run says so."""
    from tunesmith.config import Config
    from tunesmith.data.project import general_shortfall, general_wanted

    cfg = Config.model_validate({"train": {"general_share": 0.1}})
    assert general_wanted(9_095, cfg) == 1_011 and general_wanted(1_801, cfg) == 200
    note = general_shortfall(9_095, 200, cfg)
    assert "200 examples, 2.2% of the mix" in note and "asks 10% (1011)" in note
    assert general_shortfall(1_801, 200, cfg) is None  # the share is met
    assert general_shortfall(9_095, 1_000, cfg) is None  # 99% of it: near enough
    assert general_shortfall(9_095, 0, cfg) is None  # no general data configured


def test_neftune_noise_reaches_the_labeled_head_loss_in_training_only(tiny_model_dir):
    """`train.neftune_alpha`: transformers' NEFTune hook on the input embeddings (switched on by `Trainer.train`)
    changes the loss tunesmith's CPU path computes while training, and nothing in evaluation; 0 leaves it off."""
    from transformers.integrations.neftune import activate_neftune

    from tunesmith.train.sft import build_trainer

    ref = resolve_model(str(tiny_model_dir))
    off = build_trainer(_cfg(lora={"r": 4}), ref, _records(), Path(tempfile.mkdtemp()), save_strategy="no")[0]
    assert off.args.neftune_noise_alpha is None
    trainer = build_trainer(
        _cfg(lora={"r": 4}, neftune_alpha=50.0), ref, _records(), Path(tempfile.mkdtemp()), save_strategy="no"
    )[0]
    assert trainer.args.neftune_noise_alpha == 50.0
    batch = next(iter(trainer.get_train_dataloader()))
    n = (batch["labels"][:, 1:] != -100).sum()
    loss = lambda: trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=n).item()
    trainer.model.eval()
    clean = loss()
    activate_neftune(trainer.model, trainer.args.neftune_noise_alpha, trainer.accelerator)
    assert loss() == clean  # evaluation: no noise
    trainer.model.train()
    torch.manual_seed(0)
    noisy = loss()
    assert noisy != clean and loss() != noisy  # fresh noise at every step
