"""`tunesmith advise`: the guide's decision rules on representative answers, from a project, and through the CLI."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from conftest import routing_rows, write_jsonl
from tunesmith.advise import (
    EXAMPLES_NEEDED,
    MIN_EXAMPLES,
    STALE_FACT_SHARE,
    TARGET_ACCURACY,
    Answers,
    advise,
    answers_from_project,
    questionnaire,
    size_and_method,
)
from tunesmith.cli.plan import register
from tunesmith.cost import Recipe
from tunesmith.errors import TunesmithError

runner = CliRunner()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def kinds(advice) -> set[str]:
    return {r.points_to for r in advice.reasons}


def test_the_thresholds_are_the_guides():
    assert MIN_EXAMPLES == 50  # "50-200 excellent examples can show improvement"
    assert EXAMPLES_NEEDED == {
        "style": (50, 200),
        "classification": (200, 1000),
        "structured": (200, 1000),
        "reasoning": (500, 2000),  # "for complex domain behavior, expect 500-2,000 examples"
        "complex": (1000, None),
    }
    assert TARGET_ACCURACY == 0.95  # "consider fine-tuning to push past 95%"


def test_facts_that_change_point_to_rag():
    advice = advise(Answers(facts_change=True, examples=500))
    assert advice.recommendation == "rag" and kinds(advice) == {"rag"}
    assert advise(Answers(citations=True)).recommendation == "rag"


def test_format_and_style_point_to_fine_tuning():
    advice = advise(Answers(needs=["format", "style"], examples=300, volume="high", gpu="RTX 4090"))
    assert advice.recommendation == "fine-tune"
    assert advice.task == "structured" and advice.examples_needed == (200, 1000) and advice.examples_have == 300
    assert advice.model_size == "8B" and advice.method == "qlora" and advice.gpu == "RTX 4090"
    assert any("tunesmith cost" in s for s in advice.next_steps)


def test_behavior_plus_changing_facts_is_fine_tuning_plus_rag():
    advice = advise(Answers(needs=["classification", "facts"], examples=800))
    assert advice.recommendation == "fine-tune+rag" and kinds(advice) == {"fine-tune", "rag"}
    assert advice.examples_needed == (200, 1000)


def test_twenty_examples_point_to_prompting():
    advice = advise(Answers(needs=["format"], examples=20))
    assert advice.recommendation == "prompting"
    assert any(r.points_to == "prompting" and "20 examples" in r.text for r in advice.reasons)
    assert any("200+" in s for s in advice.next_steps)
    # with facts that change too, retrieval still helps while prompting
    assert advise(Answers(needs=["format"], facts_change=True, examples=20)).recommendation == "rag"


def test_low_volume_experiments_and_a_good_base_point_to_prompting():
    assert advise(Answers(needs=["style"], examples=500, volume="low")).recommendation == "prompting"
    assert advise(Answers(needs=["style"], examples=500, experimenting=True)).recommendation == "prompting"
    good_base = advise(Answers(needs=["format"], examples=500, base_accuracy=0.97))
    assert good_base.recommendation == "prompting" and "97%" in good_base.reasons[-1].text
    assert advise(Answers()).recommendation == "prompting"  # nothing points to training


def test_eval_results_add_fine_tuning_reasons():
    advice = advise(Answers(examples=300, base_format_validity=0.6, tuned_gate_passed=True))
    assert advice.recommendation == "fine-tune"
    assert any("60%" in r.text for r in advice.reasons) and any("gate passed" in r.text for r in advice.reasons)


def test_the_method_and_size_fit_the_gpu():
    planned = Recipe(batch_size=4, seq_len=1024)
    assert size_and_method(80, planned) == ("8B", "lora", None)  # a bf16 base fits: no quantization gap
    size, method, change = size_and_method(12, planned)  # RTX 3060: QLoRA
    assert (size, method) == ("8B", "qlora") and change.startswith("gradient checkpointing")
    assert size_and_method(4, planned)[0] in ("1B", "3B")
    assert size_and_method(0.5, planned) == (None, None, None)
    assert advise(Answers(gpu_memory_gib=80)).gpu == "your GPU"
    assumed = advise(Answers())
    assert assumed.gpu_memory_gib == 24 and any("assumed" in n for n in assumed.notes)


def test_a_few_stale_facts_are_a_next_step_not_a_reason_for_rag():
    advice = advise(Answers(needs=["format"], examples=300, stale_fact_share=0.01, stale_fact_records=3))
    assert advice.recommendation == "fine-tune"
    assert any(s.startswith("3 training replies state facts that change") for s in advice.next_steps)


def test_bad_answers_are_one_error_naming_each():
    with pytest.raises(TunesmithError) as err:
        advise(Answers(needs=["vibes"], volume="huge", task="novel"))
    assert len(err.value.problems) == 3


def test_answers_from_the_tiny_project(tiny_project):
    a = answers_from_project(tiny_project)
    assert a.examples == 30 and a.task == "structured" and "format" in a.needs
    assert a.stale_fact_share == 0 and a.base_accuracy is None
    assert a.model_shape is not None and a.recipe.batch_size == 4 and a.recipe.seq_len == 128
    advice = advise(a)
    assert advice.recommendation == "prompting"  # 30 examples
    assert advice.project_model["fits"] and advice.project_model["method"] == "lora"
    assert any("data doctor: 30 usable" in n for n in advice.notes)


def test_stale_facts_and_eval_results_of_a_project(tmp_path, tiny_model_dir):
    project = tmp_path / "pricing"
    rows = routing_rows(80)
    for i, row in enumerate(rows[:20]):  # a quarter of the replies quote a price
        row["messages"][-1]["content"] = json.dumps(
            {"queue": "billing", "priority": "normal", "note": f"the plan costs ${10 + i}.99 per month"}
        )
    write_jsonl(project / "data" / "tickets.jsonl", rows)
    (project / "tunesmith.yaml").write_text(
        f'model: {{base: "{tiny_model_dir}"}}\ntask: {{type: json, match_fields: [queue]}}\n'
    )
    (project / ".tunesmith").mkdir()
    (project / ".tunesmith" / "summary.json").write_text(
        json.dumps(
            {"gate": {"passed": True}, "base_metrics": {"heldout": {"task_accuracy": 0.4, "format_validity": 0.7}}}
        )
    )
    a = answers_from_project(project)
    assert a.stale_fact_share == pytest.approx(20 / 80) and a.stale_fact_share >= STALE_FACT_SHARE
    assert (a.base_accuracy, a.base_format_validity, a.tuned_gate_passed) == (0.4, 0.7, True)
    advice = advise(a)
    assert advice.recommendation == "fine-tune+rag"
    assert any(r.source.startswith("data doctor") and "25%" in r.text for r in advice.reasons)


def test_the_questionnaire_fills_the_answers():
    replies = iter(["format, tools", "high", "400", "RTX 4090"])
    yes_no = iter([False, False, False])
    a = questionnaire(Answers(), lambda *_, **__: next(replies), lambda *_, **__: next(yes_no))
    assert (a.needs, a.volume, a.examples, a.gpu, a.facts_change) == (
        ["format", "tools"],
        "high",
        400,
        "RTX 4090",
        False,
    )
    assert advise(a).recommendation == "fine-tune"


# ---------------------------------------------------------------------------------------------------- the CLI


def test_advise_from_flags_as_json(app):
    res = runner.invoke(app, ["advise", "--need", "format", "--examples", "20", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["recommendation"] == "prompting" and out["examples_needed"] == [200, 1000]
    res = runner.invoke(app, ["advise", "--need", "style", "--facts-change", "--examples", "300", "--gpu", "4090"])
    assert res.exit_code == 0 and "FINE-TUNING + RAG" in res.output and "RTX 4090" in res.output
    bad = runner.invoke(app, ["advise", "--gpu", "TPU v5"])
    assert isinstance(bad.exception, TunesmithError)


def test_advise_a_project_and_interactively(app, tiny_project):
    res = runner.invoke(app, ["advise", str(tiny_project), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["examples_have"] == 30 and out["recommendation"] == "prompting" and out["project_model"]["fits"]
    # the questionnaire overrides what the project said: 400 examples, high volume
    answers = "format\nn\nn\nhigh\nn\n400\nH100\n"
    res = runner.invoke(app, ["advise", str(tiny_project), "--interactive"], input=answers)
    assert res.exit_code == 0, res.output
    assert "Recommendation: FINE-TUNING" in res.output and "H100 80GB" in res.output
