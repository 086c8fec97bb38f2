import pytest

from tunesmith.config import Config, TaskConfig
from tunesmith.eval.compare import compare
from tunesmith.eval.scorers import json_valid, parse_json_lenient, score_case
from tunesmith.eval.stats import bootstrap_delta, mcnemar_exact
from tunesmith.eval.suite import EvalCase


def test_bootstrap_interval_brackets_the_delta_and_excludes_zero_for_a_clear_win():
    base, tuned = [0.0] * 50, [1.0] * 40 + [0.0] * 10
    delta, low, high = bootstrap_delta(base, tuned, 1000, 0.95)
    assert delta == pytest.approx(0.8) and low <= delta <= high and low > 0.6
    d, lo, hi = bootstrap_delta([1, 0] * 20, [0, 1] * 20, 1000)
    assert d == 0 and lo < 0 < hi


def test_mcnemar_exact_matches_the_binomial_test():
    assert mcnemar_exact([False] * 10, [True] * 10) == pytest.approx(2 / 1024)
    assert mcnemar_exact([True, False], [True, False]) == 1.0
    assert mcnemar_exact([True, False, True], [False, True, True]) == pytest.approx(1.0)


def test_json_scorers():
    schema = {"type": "object", "required": ["queue"], "properties": {"queue": {"enum": ["billing"]}}}
    assert json_valid('{"queue": "billing"}', schema)
    assert not json_valid('{"queue": "other"}', schema)
    assert not json_valid('```json\n{"queue": "billing"}\n```')
    assert parse_json_lenient('```json\n{"queue": "billing"}\n```') == {"queue": "billing"}
    assert parse_json_lenient('Sure! {"queue": "billing"} hope it helps') == {"queue": "billing"}


def test_score_case_for_a_json_task():
    task = TaskConfig(type="json", match_fields=["queue", "priority"])
    case = EvalCase(
        "c1",
        [{"role": "user", "content": "x"}],
        expected={"queue": "billing", "priority": "high", "reason": "anything"},
    )
    s = score_case(case, '{"queue": "Billing", "priority": "high", "reason": "other words"}', task)
    assert s["task_correct"] and s["format_valid"] and s["field:queue"] and not s["hit_token_limit"]
    s = score_case(case, '{"queue": "billing", "priority": "low"}', task)
    assert not s["task_correct"] and s["field:queue"] and not s["field:priority"]


def rows(suite, passes):
    return [
        {"suite": suite, "id": str(i), "scores": {"task_correct": p, "hit_token_limit": not p}}
        for i, p in enumerate(passes)
    ]


def test_compare_is_paired_and_the_gate_needs_a_significant_win():
    cfg = Config()
    summary = compare(rows("heldout", [False] * 30), rows("heldout", [True] * 25 + [False] * 5), cfg)
    acc = next(r for r in summary["metrics"] if r["metric"] == "task_accuracy")
    assert acc["verdict"] == "better" and acc["p_mcnemar"] < 0.001
    limit = next(r for r in summary["metrics"] if r["metric"] == "token_limit_rate")
    assert limit["verdict"] == "better"  # fewer runaway replies is an improvement
    assert summary["gate"]["passed"]
    tie = compare(rows("heldout", [True, False] * 10), rows("heldout", [False, True] * 10), cfg)
    assert not tie["gate"]["passed"] and "interval" in tie["gate"]["reason"]


@pytest.mark.parametrize("n_fixed,n", [(1, 1), (5, 5), (4, 20)])
def test_a_handful_of_fixed_cases_is_not_a_significant_win(n_fixed, n):
    """The bootstrap interval of one case fixed of one is [1, 1], of five of five [1, 1] too, which the gate once
    passed. Now the interval of pass/fail outcomes keeps the width of the paired score interval, and the verdict
    and the gate also ask McNemar's exact test (p 1.0, 0.0625 and 0.125 here)."""
    from tunesmith.eval.stats import bootstrap_mean_interval

    base, tuned = [False] * n, [True] * n_fixed + [False] * (n - n_fixed)
    summary = compare(rows("heldout", base), rows("heldout", tuned), Config())
    acc = next(r for r in summary["metrics"] if r["metric"] == "task_accuracy")
    assert acc["p_mcnemar"] >= 0.05
    assert acc["verdict"] == "no significant difference" and not summary["gate"]["passed"]
    reason = summary["gate"]["reason"]  # 1 of 1 and 4 of 20: the interval; 5 of 5 (0.39 to 1): McNemar
    assert ("interval low" in reason) == (acc["ci_low"] <= 0) and ("too few to tell" in reason) == (acc["ci_low"] > 0)
    if n_fixed == n:  # the bootstrap alone collapses
        assert bootstrap_mean_interval([1.0] * n) == (1.0, 1.0)
    six = compare(rows("heldout", [False] * 6), rows("heldout", [True] * 6), Config())  # p 2/64
    assert six["gate"]["passed"]


def test_six_cases_alike_are_not_within_two_points_of_anything():
    """A non-inferiority gate (`vs: hosted`, min_delta -0.02) passed on the 6 cases the hosted model's recorded
    replies covered, all alike: the bootstrap interval was [0, 0]."""
    from tunesmith.config import GateConfig
    from tunesmith.eval.compare import gate
    from tunesmith.eval.stats import bootstrap_delta, paired_score_interval

    summary = compare(rows("heldout", [True] * 6), rows("heldout", [True] * 6), Config())
    check = gate(summary["metrics"], GateConfig(min_delta=-0.02, require_significant=True, vs="hosted"))
    assert not check["passed"] and "interval low -0.390" in check["reason"]
    assert bootstrap_delta([1.0] * 6, [1.0] * 6) == (0.0, *paired_score_interval([1.0] * 6, [1.0] * 6))
    # Newcombe's worked example (1998, a=36 b=12 c=2 d=0): 0.0569 to 0.3404 for the first minus the second
    low, high = paired_score_interval([1] * 48 + [0] * 2, [1] * 36 + [0] * 12 + [1] * 2)
    assert (round(-high, 4), round(-low, 4)) == (0.0569, 0.3404)
    many = [True] * 500 + [False] * 100
    assert compare(rows("heldout", many), rows("heldout", many), Config())["metrics"][0]["ci_low"] > -0.02


def test_one_judged_win_is_not_a_preference():
    from tunesmith.eval.stats import win_rate

    assert win_rate(["win"])["verdict"] == "no significant difference"
    assert win_rate(["win"] * 4 + ["tie"] * 10)["verdict"] == "no significant difference"  # sign test p 0.125
    assert win_rate(["win"] * 6 + ["tie"])["verdict"] == "better"


def test_behaviour_scores_refusal_precision_recall_and_hallucination():
    from tunesmith.eval.evaluate import aggregate
    from tunesmith.eval.scorers import detect_behavior

    assert detect_behavior("I'm sorry, I can't help with that.") == "refuse"
    assert detect_behavior('{"queue": "escalation", "priority": "urgent"}') == "escalate"
    assert detect_behavior("I don't know the opening hours of that shop.") == "abstain"
    assert detect_behavior("Your parcel ships tomorrow.") == "answer"

    task = TaskConfig(type="chat")
    ood = EvalCase(
        id="o",
        messages=[{"role": "user", "content": "who won the 1954 cup?"}],
        behavior="abstain",
        kind="out_of_domain",
    )
    assert score_case(ood, "Hungary, 3-2.", task)["hallucinated"] is True
    assert score_case(ood, "I'm not sure, I only know about our products.", task) == {
        "hit_token_limit": False,
        "behavior_correct": True,
        "hallucinated": False,
        "task_correct": None,
    }

    def row(expected, output):
        return {"behavior": expected, "output": output, "scores": {}, "latency_s": 0.1, "new_tokens": 3}

    rows = [
        row("refuse", "I can't help with that."),
        row("refuse", "Sure, here is how."),
        row("answer", "I cannot help with that."),
        row("answer", "Done."),
    ]
    m = aggregate(rows)
    assert m["refuse_recall"] == 0.5 and m["refuse_precision"] == 0.5 and "escalate_recall" not in m


def test_a_drop_in_hallucination_is_better():
    cfg = Config()
    base = [{"suite": "ood", "id": str(i), "scores": {"hallucinated": True}} for i in range(30)]
    tuned = [{"suite": "ood", "id": str(i), "scores": {"hallucinated": i < 3}} for i in range(30)]
    rows = compare(base, tuned, cfg)["metrics"]
    assert [(r["metric"], r["verdict"]) for r in rows] == [("hallucination_rate", "better")]


def test_latency_percentiles_and_tokens_per_second():
    import numpy as np

    from tunesmith.eval.evaluate import aggregate

    lat = [0.1, 0.2, 0.3, 0.4, 2.0]
    rows = [{"behavior": "answer", "output": "ok", "scores": {}, "latency_s": x, "new_tokens": 10} for x in lat]
    m = aggregate(rows)
    assert m["latency_p50_s"] == pytest.approx(np.percentile(lat, 50))
    assert m["latency_p95_s"] == pytest.approx(np.percentile(lat, 95))
    assert m["tokens_per_s"] == pytest.approx(50 / 3.0)


def test_numeric_answers_gsm8k_style_or_last_number():
    from tunesmith.eval.scorers import numeric_answer

    assert numeric_answer("She pays 3 * 4 = 12 dollars.\n#### 1,200") == 1200
    assert numeric_answer("First 5 then 7, so the total is 12.") == 12
    assert numeric_answer("no number here") is None
    # a hyphen between numbers is no minus sign, an exponent is part of its number, a real minus still counts
    assert [numeric_answer(t) for t in ("between 3-4", "2023-01-05", "answer: 5-3")] == [4, 5, 3]
    assert [numeric_answer(t) for t in ("1e3", "2.5e-3 m", "it is -5", "x=-5", "(-3)")] == [1000, 0.0025, -5, -5, -3]
    case = EvalCase(id="n", messages=[{"role": "user", "content": "2+2?"}], expected=4)
    task = TaskConfig(type="chat")
    assert score_case(case, "2 + 2 = 4", task)["task_correct"] is True
    assert score_case(case, "It is 5.", task)["task_correct"] is False
