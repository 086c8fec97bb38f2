"""Checkpoints chosen by generated answers on the validation split; early stopping; the test split read last."""

import json

import pytest
from safetensors.torch import load_file

from tunesmith.config import load_config
from tunesmith.pipeline import run_project, train_project
from tunesmith.runs import list_runs
from tunesmith.train import selection


def scripted(values, seen):
    """A ValidationSelector.measure that returns `values` in turn and remembers the trainable weights it saw."""
    it = iter(values)

    def measure(self, model, tok, step, metrics, bf16):
        seen[step] = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        return next(it), {"task_accuracy": None}

    return measure


def test_the_best_validation_checkpoint_is_saved_and_training_stops_after_the_patience(tiny_project, monkeypatch):
    seen = {}
    monkeypatch.setattr(selection.ValidationSelector, "measure", scripted([0.2, 0.6, 0.4, 0.5, 0.3, 0.9], seen))
    st = train_project(tiny_project, ["train.max_steps=12", "train.eval_steps=2", "train.patience=3"])
    sel = st.result.selection
    # evaluations at steps 2, 4, 6, 8, 10: the best is step 4; three without improvement stop it at step 10
    assert sel["best_step"] == 4 and sel["best_value"] == 0.6 and sel["stopped_early"]
    assert [s for s, _ in sel["curve"]] == [2, 4, 6, 8, 10] and st.result.steps == 10
    saved = load_file(st.run_dir / "adapter" / "adapter_model.safetensors")
    best = seen[4]
    for name, tensor in saved.items():
        match = [v for k, v in best.items() if k.replace(".default", "") == name]
        assert match and match[0].equal(tensor), name  # the adapter written is step 4's, not the last
    rows = [json.loads(line) for line in (st.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val_task_accuracy" in r] == [2, 4, 6, 8, 10]
    assert all("val_loss" in r for r in rows if "val_task_accuracy" in r)


def test_training_throughput_leaves_out_the_validation_time(tiny_project, monkeypatch):
    """tokens/s is taken over the optimizer steps only: validations between steps (here 3 that take 0.5 s each)
    count in the wall time, not in the throughput the bar, the summary and the report show."""
    import time

    def slow_measure(self, model, tok, step, metrics, bf16):
        time.sleep(0.5)
        return 0.5, {"task_accuracy": 0.5}

    monkeypatch.setattr(selection.ValidationSelector, "measure", slow_measure)
    st = train_project(tiny_project, ["train.max_steps=6", "train.eval_steps=2", "train.patience=null"])
    written = json.loads((st.run_dir / "result.json").read_text())
    assert written["wall_s"] - written["step_s"] >= 1.5  # the three validations are outside the steps
    assert written["tokens_per_s"] == pytest.approx(written["tokens_seen"] / written["step_s"])
    assert st.result.tokens_per_s > written["tokens_seen"] / written["wall_s"]
    # metrics.jsonl's rows too: a row after a validation covers the steps since the last row, not the 0.5 s sleep
    rows = [json.loads(line) for line in (st.run_dir / "metrics.jsonl").read_text().splitlines()]
    rated = [r for r in rows if r.get("tokens_per_s")]
    after = [(r, p) for p, r in zip(rated, rated[1:]) if r["step"] in (3, 5)]
    assert len(after) == 2 and all((r["tokens_seen"] - p["tokens_seen"]) / r["tokens_per_s"] < 0.5 for r, p in after)


def test_validation_replies_are_generated_and_scored_with_the_eval_decoding(tiny_project):
    st = train_project(tiny_project, ["train.max_steps=4", "train.eval_steps=2"])
    sel = st.result.selection
    assert sel["metric"] == "task_accuracy" and [s for s, _ in sel["curve"]] == [2, 4]
    rows = [json.loads(line) for line in (st.run_dir / "validation" / "step-2" / "results.jsonl").open()]
    split = next(r for r in list_runs(tiny_project) if r["stage"] == "split")
    assert len(rows) == split["result"]["validation"] > 0
    assert all(r["suite"] == "validation" and "task_correct" in r["scores"] for r in rows)
    # decoded as the test set will be: the same limit derived from the training replies, and the constraint
    cfg, _ = load_config(tiny_project)
    assert all(r["new_tokens"] <= 64 for r in rows)
    # the last step was evaluated: its loss is the result's, not computed a second time
    logged = [json.loads(line) for line in (st.run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["eval_loss"] for r in logged if "eval_loss" in r and r["step"] == 4]
    assert len(losses) == 1 and st.result.eval_loss == losses[0]


def test_a_last_step_between_evaluations_is_evaluated_once_at_the_end(tiny_project):
    st = train_project(tiny_project, ["train.max_steps=3", "train.eval_steps=2"])
    assert [s for s, _ in st.result.selection["curve"]] == [2, 3]
    logged = [json.loads(line) for line in (st.run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["eval_loss"] for r in logged if "eval_loss" in r and r["step"] == 3]
    assert len(losses) == 1 and st.result.eval_loss == losses[0]


def test_the_test_split_is_not_read_before_training_is_done(tiny_project, monkeypatch):
    import importlib
    import pkgutil

    import tunesmith.pipeline as pipeline
    from tunesmith.data import project as project_data
    from tunesmith.pipeline import commands, training

    events = []
    real_read, real_train = project_data.read_records, training.train_stage

    def read(path):
        events.append(("read", path.name))
        return real_read(path)

    def train(*args, **kwargs):
        events.append(("train", "start"))
        st = real_train(*args, **kwargs)
        events.append(("train", "done"))
        return st

    # every read of a file the pipeline wrote, wherever it is looked up
    stages = [importlib.import_module(f"tunesmith.pipeline.{m.name}") for m in pkgutil.iter_modules(pipeline.__path__)]
    for module in [project_data, *stages]:
        if hasattr(module, "read_records"):
            monkeypatch.setattr(module, "read_records", read)
    for module in (training, commands):
        monkeypatch.setattr(module, "train_stage", train)
    run_project(tiny_project, ["train.max_steps=2", "tune.max_trials=2"], tune=True)
    first_test_read = events.index(("read", "heldout.jsonl"))
    trained = [i for i, e in enumerate(events) if e == ("train", "done")]
    assert len(trained) == 2 and first_test_read > max(trained)  # both trials, then the test split
    assert ("read", "validation.jsonl") in events[:first_test_read]


def test_epochs_auto_gives_small_data_sets_more_passes():
    from tunesmith.train.trainer import resolve_epochs

    assert resolve_epochs("auto", 300) == 10 and resolve_epochs("auto", 1500) == 4
    assert resolve_epochs("auto", 50_000) == 1 and resolve_epochs(2.5, 300) == 2.5
    assert resolve_epochs("auto", None) == 1  # recipes without a validation-chosen checkpoint: one pass


def test_epochs_auto_counts_a_label_tasks_examples_per_label(tmp_path, tiny_model_dir, monkeypatch):
    from conftest import QUEUES, routing_records, train_config
    from tunesmith.config import TaskConfig
    from tunesmith.eval.baselines import label_count
    from tunesmith.models import resolve_model
    from tunesmith.train import trainer
    from tunesmith.train.sft import build_trainer

    # 150 labels of 20 queries (about 4,000 examples with the oversampled catch-all and general data): 70 a label
    # asks for three passes, not the two that 5,400 examples give; Banking77's 77 labels change nothing
    assert trainer.resolve_epochs("auto", 4000, 150) == 3 and trainer.resolve_epochs("auto", 4000) == 2
    assert trainer.resolve_epochs("auto", 2000, 77) == trainer.resolve_epochs("auto", 2000) == 3
    replies = [json.dumps({"queue": q, "priority": "normal"}) for q in QUEUES * 4]
    assert label_count(TaskConfig(type="json"), replies) == len(QUEUES)  # (queue, priority) pairs
    assert label_count(TaskConfig(type="json", match_fields=["priority"]), replies) == 1
    assert label_count(TaskConfig(type="chat"), replies) is None
    # the cost plan and the search's first trial resolve `auto` the same way
    from tunesmith.config import Config
    from tunesmith.cost import Recipe, epochs_of
    from tunesmith.train.search.space import default_params, search_space

    assert epochs_of(Recipe(epochs="auto", labels=150), 4000) == 3 and epochs_of(Recipe(epochs="auto"), 4000) == 2
    space = search_space(Config())
    assert [default_params(Config(), space, 4000, n)["epochs"] for n in (150, None)] == [3, 2]
    # the trainer counts its records' labels (general data left out): 3 labels x 20 = 60 examples, 2 passes of 30
    monkeypatch.setattr(trainer, "AUTO_EXAMPLES", 1)
    monkeypatch.setattr(trainer, "LABEL_EXAMPLES", 20)
    ref = resolve_model(str(tiny_model_dir))
    for task, passes in (("json", 2), ("chat", 1)):
        cfg = train_config(epochs="auto", max_steps=None)
        cfg.task.type = task
        built, *_ = build_trainer(cfg, ref, routing_records(30), tmp_path / task)
        assert built.args.num_train_epochs == passes, task


@pytest.mark.parametrize(
    "gate, chosen",
    [
        ("heldout.task_accuracy", "task_accuracy"),
        ("format_validity", "format_validity"),
        ("general.prompt_strict_accuracy", "task_accuracy"),
    ],
)
def test_the_selection_metric_follows_the_gate_when_it_judges_the_heldout_suite(tiny_project, gate, chosen):
    cfg, _ = load_config(tiny_project, [f"eval.gate.metric={gate}"])
    assert selection.select_metric(cfg) == chosen


def test_an_adapter_is_merged_for_evaluation_only_when_the_replies_stay_the_same(tiny_project):
    from tunesmith.data.formats import load_records
    from tunesmith.eval.suite import cases_from_records
    from tunesmith.generate.backends import TransformersBackend
    from tunesmith.models import resolve_model

    st = train_project(tiny_project, ["train.max_steps=3", "train.lr=5e-3"])
    cfg, _ = load_config(tiny_project)
    ref = resolve_model(cfg.model.base)
    cases = cases_from_records(load_records([tiny_project / "data" / "tickets.jsonl"]), cfg.task)[:12]
    plain = TransformersBackend(ref, adapter=st.run_dir / "adapter", precision="fp32", merge=False)
    auto = TransformersBackend(ref, adapter=st.run_dir / "adapter", precision="fp32")
    want = [g.output for g in plain.generate(cases, max_new_tokens=12, batch_size=4)]
    # one batch and no more: nothing to gain from merging, so it is generated once and the choice left for later
    calls = []
    real = auto._generate
    auto._generate = lambda *a: (calls.append(1), real(*a))[1]
    one_batch = [g.output for g in plain.generate(cases[:4], max_new_tokens=12, batch_size=4)]
    assert [g.output for g in auto.generate(cases[:4], max_new_tokens=12, batch_size=4)] == one_batch
    assert len(calls) == 1 and auto.merge == "auto" and not auto.merged
    got = [g.output for g in auto.generate(cases, max_new_tokens=12, batch_size=4)]
    assert got == want and auto.merged and not plain.merged  # fp32: merging changes nothing, so it is kept
    assert plain.fingerprint == auto.fingerprint  # the same replies under the same cache key
    # bf16: merged or not (as measured), the replies are the unmerged adapter's, every one
    plain16 = TransformersBackend(ref, adapter=st.run_dir / "adapter", precision="bf16", merge=False)
    auto16 = TransformersBackend(ref, adapter=st.run_dir / "adapter", precision="bf16")
    want16 = [g.output for g in plain16.generate(cases, max_new_tokens=12, batch_size=4)]
    assert [g.output for g in auto16.generate(cases, max_new_tokens=12, batch_size=4)] == want16


def test_validation_replies_come_from_a_merged_copy_with_the_evaluations_attention(tiny_model_dir):
    """Training on a CPU takes eager attention; the copy that answers the validation cases decodes with SDPA, as
    the final evaluation does, and carries the adapter merged in; the training model is left as it was."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="eager")
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    twin = selection.merged_copy(model, bf16=False)
    assert twin.config._attn_implementation == "sdpa"
    assert model.config._attn_implementation == "eager" and hasattr(model, "merge_and_unload")
    ids = torch.tensor([[1, 5, 7, 9, 11]])
    with torch.no_grad():
        assert torch.allclose(twin(ids).logits, model(ids).logits, atol=1e-4)


def test_the_merged_copy_does_not_decode_through_the_training_models_forward_wrappers(tiny_model_dir):
    """TRL's SFTTrainer patches the base model's forward (its fused LM head) and accelerate wraps the PEFT model's
    in bf16 autocast, each a closure over the original bound method, which a deep copy does not rebind: the copy's
    replies would come from the training model (unmerged) unless the copy's wrappers are dropped."""
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="eager")
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    add_fused_lm_head(model.get_base_model())
    AcceleratorState._reset_state(reset_partial_state=True)  # a process-wide singleton other tests set up
    try:
        model = Accelerator(cpu=True, mixed_precision="bf16").prepare_model(model)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert "forward" in model.get_base_model().__dict__  # the wrapper this guards against
    twin = selection.merged_copy(model, bf16=False)
    assert not any("forward" in m.__dict__ for m in twin.modules())
    calls = []  # hooked after the copy, which would copy the hook too
    model.get_base_model().model.register_forward_hook(lambda *_: calls.append("training model"))
    with torch.no_grad():
        twin(torch.tensor([[1, 5, 7, 9, 11]]))
    assert calls == []
