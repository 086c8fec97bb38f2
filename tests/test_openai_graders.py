"""OpenAI's graders as scorers and GRPO rewards: templates, operations, and what is not supported yet."""

import json

from tunesmith.eval.scorers import run_scorers
from tunesmith.eval.suite import EvalCase
from tunesmith.scorer_specs import scorer_problem
from tunesmith.train.grpo_rewards import reward_function


def _case(spec, expected=None):
    return EvalCase(id="c1", messages=[{"role": "user", "content": "route it"}], expected=expected, scorers=[spec])


def _check(op, reference="{{item.queue}}", output='{"queue": "Billing"}', inp="{{sample.output_json.queue}}"):
    spec = {"type": "string_check", "name": "q", "input": inp, "reference": reference, "operation": op}
    details: dict = {}
    scores = run_scorers(_case(spec, {"queue": "billing"}), output, None, details)
    return scores["check:q"], details


def test_string_check_operations_and_templates():
    assert _check("eq") == (False, {"q": "eq: 'Billing' vs 'billing'"})
    assert _check("ne")[0] is True
    assert _check("ilike")[0] is True and _check("like")[0] is False
    assert _check("eq", reference="Billing")[0] is True  # a literal reference
    assert _check("like", reference="bill", inp="{{sample.output_text}}")[0] is False  # 'Billing' holds no 'bill'
    assert _check("ilike", reference="bill", inp="{{ sample.output_text }}")[0] is True  # spaces inside the braces


def test_a_reference_to_a_missing_field_leaves_the_case_unscored_with_the_reason():
    passed, details = _check("eq", reference="{{item.team}}")
    assert passed is None and "{{item.team}}: no field 'team' (it has: expected, id, queue)" in details["q"]


def test_bad_specs_are_named_when_the_suite_is_read():
    bad_op = {"type": "string_check", "input": "{{sample.output_text}}", "reference": "x", "operation": "glob"}
    assert "not eq, ne, like or ilike" in scorer_problem(bad_op)[0]
    assert "needs 'reference', 'operation'" in scorer_problem({"type": "string_check", "input": "x"})[0]
    message, hint = scorer_problem({"type": "text_similarity", "input": "x", "reference": "y"})
    assert "'text_similarity' grader is not supported yet" in message and "string_check" in hint


def test_a_string_check_is_a_grpo_reward():
    spec = {
        "type": "string_check",
        "input": "{{sample.output_json.queue}}",
        "reference": "{{item.queue}}",
        "operation": "eq",
    }
    reward = reward_function(spec, None)
    expected = [json.dumps({"queue": "billing"})] * 2
    assert reward(["a", "b"], ['{"queue": "billing"}', '{"queue": "shipping"}'], expected=expected) == [1.0, 0.0]
