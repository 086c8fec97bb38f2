"""The gate's absolute target and the ship verdict: gates, target and the cheap alternatives weighed together, on
results rows written by hand."""

from __future__ import annotations

import pytest

from tunesmith.config import Config, GateConfig
from tunesmith.eval.compare import compare, compare_to_baselines, gate
from tunesmith.eval.verdict import ship_verdict

N = 250


def rows(right: int, n: int = N, suite: str = "heldout", metric: str = "task_correct") -> list[dict]:
    """`n` cases of which the first `right` pass."""
    return [
        {
            "suite": suite,
            "id": str(i),
            "tags": [],
            "scores": {metric: i < right},
            "latency_s": 0.1,
            "new_tokens": 1,
            "output": "x",
            "behavior": "answer",
        }
        for i in range(n)
    ]


def config(min_value: float | None = None, metric: str = "task_accuracy") -> Config:
    cfg = Config()
    cfg.eval.bootstrap_samples = 200
    cfg.eval.gate = GateConfig(metric=metric, min_value=min_value)
    return cfg


def verdict(base: int, tuned: int, alternatives: dict[str, int], cfg: Config, info=None) -> dict:
    tuned_rows = rows(tuned)
    cmp = compare(rows(base), tuned_rows, cfg)
    against = compare_to_baselines(tuned_rows, {k: rows(v) for k, v in alternatives.items()}, cfg, info)
    return ship_verdict(cmp, against, cfg)


def test_gate_checks_the_absolute_target():
    cfg = config(min_value=0.85)
    out = compare(rows(0), rows(57), cfg)  # 0.000 -> 0.228: far better than the base, far below the target
    assert out["gate"]["passed"] is False and out["gate"]["reason"] == "tuned 0.228 is below the target 0.850"
    assert out["gate"]["tuned"] == pytest.approx(0.228) and out["gate"]["min_value"] == 0.85
    assert compare(rows(0), rows(220), cfg)["gate"]["reason"] == "tuned beats base and reaches the target 0.850"
    assert compare(rows(0), rows(57), config())["gate"]["passed"] is True  # no target: beating the base is enough


def test_lower_is_better_target_is_a_ceiling():
    g = GateConfig(metric="ood.hallucination_rate", min_value=0.1)
    cmp_rows = [
        {
            "suite": "ood",
            "metric": "hallucination_rate",
            "n": 50,
            "base": 0.9,
            "tuned": 0.2,
            "delta": -0.7,
            "ci_low": -0.8,
            "ci_high": -0.6,
        }
    ]
    out = gate(cmp_rows, g)
    assert out["passed"] is False and out["reason"] == "tuned 0.200 is above the ceiling 0.100"
    cmp_rows[0].update(tuned=0.08, delta=-0.82, ci_low=-0.9, ci_high=-0.7)
    assert gate(cmp_rows, g)["passed"] is True


def test_a_cheaper_alternative_that_scores_higher_is_shipped_instead():
    out = verdict(0, 57, {"classifier": 195, "few_shot": 40}, config(), info={"classifier": {"train_s": 4.8}})
    assert out["ship"] is False
    assert out["headline"] == (
        "Do not ship: the TF-IDF classifier scores 0.780 vs the tuned model's 0.228 on heldout.task_accuracy"
    )
    assert out["instead"] == "the TF-IDF classifier (0.780 vs 0.228 on heldout.task_accuracy, 5 seconds to train)"
    clf = next(a for a in out["alternatives"] if a["name"] == "classifier")
    assert clf["value"] == pytest.approx(0.78) and clf["tuned"] == pytest.approx(0.228)
    assert clf["delta"] == pytest.approx(-0.552) and clf["ci_high"] < 0 and clf["verdict"] == "worse"
    assert clf["beats_tuned"] and clf["significant"] and clf["metric"] == "heldout.task_accuracy"
    few = next(a for a in out["alternatives"] if a["name"] == "few_shot")
    assert not few["beats_tuned"] and few["verdict"] == "better"
    assert any("TF-IDF classifier beats the tuned model" in r and "significantly" in r for r in out["reasons"])
    assert any(r.startswith("gate on heldout.task_accuracy: tuned beats base") for r in out["reasons"])


def test_nothing_reaches_the_target():
    out = verdict(0, 57, {"classifier": 195}, config(min_value=0.85))
    assert out["ship"] is False
    assert out["headline"] == ("Do not ship: tuned 0.228 is below the target 0.850 (gate on heldout.task_accuracy)")
    assert out["instead"].startswith("nothing yet: the best (the TF-IDF classifier, 0.780) is below the target 0.850")
    assert "tunesmith tune" in out["instead"]


def test_ship_when_every_gate_passes_and_every_alternative_is_beaten():
    out = verdict(0, 225, {"classifier": 195, "few_shot": 100}, config(min_value=0.85))
    assert out["ship"] is True and out["instead"] is None
    assert out["headline"].startswith(
        "Ship it: the tuned model scores 0.900 on heldout.task_accuracy, passes "
        "every gate and beats the TF-IDF classifier (0.780)"
    )
    assert all(a["verdict"] == "better" and not a["beats_tuned"] for a in out["alternatives"])


def test_a_higher_alternative_wins_even_without_significance():
    out = verdict(0, 200, {"classifier": 201}, config())
    clf = out["alternatives"][0]
    assert clf["verdict"] == "no significant difference" and not clf["significant"] and clf["beats_tuned"]
    assert out["ship"] is False and "TF-IDF classifier scores 0.804 vs the tuned model's 0.800" in out["headline"]
    assert any("not significantly, but it is far cheaper to run" in r for r in out["reasons"])
    assert out["instead"].startswith("the TF-IDF classifier (0.804 vs 0.800")


def test_a_tie_with_an_alternative_still_ships():
    out = verdict(0, 200, {"classifier": 200}, config())
    assert out["ship"] is True and "ties with the TF-IDF classifier (0.800)" in out["headline"]


def test_no_alternative_measured():
    out = verdict(0, 200, {}, config())
    assert out["ship"] is True and out["alternatives"] == []
    assert "no cheaper alternative was measured (eval.baselines)" in out["reasons"]
    failed = verdict(100, 100, {}, config())
    assert failed["ship"] is False and failed["headline"].startswith("Do not ship: improvement +0.000")
    assert failed["instead"].startswith("nothing yet: no model or alternative beats the base")


def test_an_alternative_without_the_gate_metric_is_not_measured():
    cfg = config()
    tuned_rows = rows(200)
    cmp = compare(rows(0), tuned_rows, cfg)
    against = compare_to_baselines(tuned_rows, {"few_shot": rows(10, suite="other")}, cfg)
    out = ship_verdict(cmp, against, cfg)
    assert out["ship"] is True and out["alternatives"][0]["verdict"] == "not measured"
    assert out["alternatives"][0]["value"] is None


def test_print_verdict():
    from rich.console import Console

    from tunesmith.cli.render import print_verdict

    console = Console(record=True, width=200)
    print_verdict(verdict(0, 57, {"classifier": 195}, config(), info={"classifier": {"train_s": 4.8}}), console)
    text = console.export_text()
    assert "Do not ship: the TF-IDF classifier scores 0.780" in text
    assert "Instead: the TF-IDF classifier (0.780 vs 0.228" in text
    assert "-0.552" in text and "worse" in text


def test_an_alternative_ships_instead_of_a_tuned_model_that_fails_another_gate():
    """Banking77's default run: the tuned model edges out the classifier on the task but forgets general
    instruction following; the classifier, far above the base, is what ships."""
    cfg = config()
    cfg.eval.gates = [GateConfig(metric="general.task_accuracy", min_delta=-0.05, require_significant=False)]
    tuned_rows = rows(204) + rows(13, n=50, suite="general")
    cmp = compare(rows(44) + rows(21, n=50, suite="general"), tuned_rows, cfg)
    against = compare_to_baselines(tuned_rows, {"classifier": rows(200)}, cfg, None)
    out = ship_verdict(cmp, against, cfg)
    assert out["ship"] is False and "gate on general.task_accuracy" in out["headline"]
    assert not out["alternatives"][0]["beats_tuned"]
    assert out["instead"] == (
        "the TF-IDF classifier (0.800 on heldout.task_accuracy; the tuned model scores 0.816 but fails a gate)"
    )


def test_an_alternative_measured_on_fewer_cases_is_quoted_beside_the_tuned_models_value_on_those():
    """An alternative's replies covered 6 of 250 cases (a hosted model's recorded replies): the headline put its
    1.000 on those beside the tuned model's 0.900 on all 250, as though 10 points were within an allowed drop of 2."""
    cfg = config()
    cfg.eval.gates = [GateConfig(metric="task_accuracy", min_delta=-0.5, require_significant=False, vs="few_shot")]
    tuned_rows = rows(225)
    cmp = compare(rows(0), tuned_rows, cfg)
    alternative = [dict(r, scores={"task_correct": True}) for r in rows(0)[220:226]]
    against = compare_to_baselines(tuned_rows, {"few_shot": alternative}, cfg)
    cmp["gates"] = [cmp["gate"], gate(against["few_shot"]["metrics"], cfg.eval.gates[0])]
    out = ship_verdict(cmp, against, cfg)
    assert out["ship"] and out["headline"].endswith(
        "stays within the allowed drop from few-shot prompting of the base model "
        "(1.000 vs the tuned model's 0.833 on the 6 cases both answered)"
    )


def test_a_model_ships_as_an_export_that_answers_as_it_did():
    """The banner said "Ship it" and `run` exited 0 while the GGUF, the file people deploy, missed its parity
    target (task accuracy 0.825 -> 0.61)."""
    from tunesmith.eval.verdict import with_parity

    out = verdict(0, 225, {"classifier": 195}, config())
    merged = {"kind": "merged", "runtime": "transformers", "passed": True, "target": "identical >= 95%"}
    q4 = {"kind": "q4_0", "runtime": "llama.cpp", "passed": False, "target": "task accuracy within 2 points"}
    assert with_parity(out, [merged]) == out
    some = with_parity(out, [merged, q4])
    assert some["ship"] and some["headline"].endswith(
        "; ship it as merged, not q4_0 (llama.cpp) (misses its parity target)"
    )
    none = with_parity(out, [q4])
    assert not none["ship"]
    assert none["headline"].startswith("Do not ship the exports: q4_0 (llama.cpp) misses its parity target")
    assert "tunesmith serve" in none["instead"] and none["reasons"][-1].startswith("q4_0 (llama.cpp) misses")
    chat = {**q4, "measured": False, "cause": "not measured: the checkpoint's task_accuracy is 0.000"}
    assert with_parity(out, [merged, chat])["headline"].endswith(
        "not q4_0 (llama.cpp) (could not be checked for parity)"
    )
    refused = verdict(0, 100, {"classifier": 195}, config())
    assert with_parity(refused, [q4]) == refused  # not shipped anyway: the deciding reason stays
