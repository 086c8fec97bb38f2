"""OpenAI's graders as scorers and GRPO rewards: templates, every grader type, the judge, the python subprocess,
multi's formula, and the spec checks that name a bad grader before anything runs."""

import json

import pytest
from typer.testing import CliRunner

from chat_server import ChatServer
from conftest import write_jsonl
from tunesmith.cli import app
from tunesmith.config import Config, EndpointConfig
from tunesmith.errors import TunesmithError
from tunesmith.eval.openai_graders import GradingContext, Item
from tunesmith.eval.scorers import grade_cases, run_scorers
from tunesmith.eval.suite import EvalCase, project_suites
from tunesmith.scorer_specs import scorer_problem
from tunesmith.scorer_specs.formula import FormulaError, evaluate, formula_names
from tunesmith.train.grpo_rewards import reward_function

runner = CliRunner()
TEXT = "{{sample.output_text}}"


def _case(spec, expected=None, i=1):
    return EvalCase(id=f"c{i}", messages=[{"role": "user", "content": "route it"}], expected=expected, scorers=[spec])


def _grades(spec, outputs, expected, context=None):
    cases = [_case(spec, e, i) for i, e in enumerate(expected)]
    return grade_cases(spec, cases, outputs, None, context)


def _reward(spec, completions, expected, context=None):
    return reward_function(spec, None, context)(["p"] * len(completions), completions, expected=expected)


# --- string_check ------------------------------------------------------------------------------------------------


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
    assert _check("like", reference="bill", inp=TEXT)[0] is False  # 'Billing' holds no 'bill'
    assert _check("ilike", reference="bill", inp="{{ sample.output_text }}")[0] is True  # spaces inside the braces


def test_a_reference_to_a_missing_field_leaves_the_case_unscored_with_the_reason():
    passed, details = _check("eq", reference="{{item.team}}")
    assert passed is None and "{{item.team}}: no field 'team' (it has: expected, id, queue)" in details["q"]


def test_a_string_check_is_a_grpo_reward():
    spec = {"type": "string_check", "input": "{{sample.output_json.queue}}", "reference": "{{item.queue}}"}
    expected = [json.dumps({"queue": "billing"})] * 2
    got = _reward({**spec, "operation": "eq"}, ['{"queue": "billing"}', '{"queue": "shipping"}'], expected)
    assert got == [1.0, 0.0]


def test_a_reward_that_cannot_grade_rewards_zero_and_says_so_once(caplog):
    spec = {"type": "string_check", "name": "team", "input": TEXT, "reference": "{{item.team}}", "operation": "eq"}
    reward = reward_function(spec, None)
    with caplog.at_level("WARNING", logger="tunesmith.train.rewards"):
        assert reward(["p", "p"], ["a", "b"], expected=[json.dumps({"queue": "x"})] * 2) == [0.0, 0.0]
        reward(["p"], ["a"], expected=[json.dumps({"queue": "x"})])
    assert len(caplog.records) == 1
    assert "reward team: 2 of 2 replies unscored (0.0), e.g. {{item.team}}: no field 'team'" in caplog.text


# --- text_similarity ---------------------------------------------------------------------------------------------


def _similarity(metric):
    return {"type": "text_similarity", "input": TEXT, "reference": "{{item.expected}}", "evaluation_metric": metric}


def test_text_similarity_scores_each_metric_and_passes_at_the_threshold():
    want, close, far = "the cat sat on the mat", "the cat sat on a mat", "quarterly revenue grew"
    for metric in ("fuzzy_match", "bleu", "gleu", "rouge_1", "rouge_2", "rouge_5", "rouge_l", "cosine"):
        spec = {**_similarity(metric), "pass_threshold": 0.3}
        same, near, other = _grades(spec, [want, close, far], [want] * 3)
        assert same.score == pytest.approx(1.0) and same.passed, metric
        assert 0 < near.score < 1 or metric == "rouge_5", metric  # 5-grams: the one change breaks both
        assert other.score < near.score or metric == "rouge_5", metric
        assert other.passed is False and f"< pass_threshold 0.3 ({metric})" in other.detail, metric
    assert _grades({**_similarity("rouge_1"), "pass_threshold": 0.9}, [close], [want])[0].passed is False
    assert _grades({**_similarity("bleu"), "pass_threshold": 0.5}, ["", ""], ["", "x"])[1].score == 0.0


def test_text_similarity_rewards_its_score_not_just_pass_or_fail():
    spec = {**_similarity("fuzzy_match"), "pass_threshold": 0.99}
    got = _reward(spec, ["billing", "bill", "xyz"], [json.dumps("billing")] * 3)
    assert got[0] == 1.0 and 0.5 < got[1] < 1.0 and got[2] == 0.0


# --- score_model and label_model: the judge ----------------------------------------------------------------------


def _judge(messages, tools):
    """A judge that scores a reply by its length and labels it by a keyword; 'mute' gets no verdict."""
    assert messages[0]["role"] == "system" and '{"result"' in messages[0]["content"]
    asked = messages[-1]["content"]
    if "mute" in asked:
        return {"content": "I cannot decide."}
    if "exactly one of" in messages[0]["content"]:  # label_model's instruction
        return {"content": 'Thinking... {"result": "%s"}' % ("polite" if "please" in asked else "rude")}
    return {"content": f'Step 1 looks fine. {{"result": {min(10, len(asked.split()) - 1)}}}'}


SCORE = {
    "type": "score_model",
    "name": "quality",
    "input": [{"role": "user", "content": "Score: {{sample.output_text}}"}],
    "range": [0, 10],
    "pass_threshold": 3,
    "model": "o4-mini",  # OpenAI's model name: kept, not used
}
LABEL = {
    "type": "label_model",
    "input": [{"role": "system", "content": "Is it polite?"}, {"role": "user", "content": "{{sample.output_text}}"}],
    "labels": ["polite", "rude"],
    "passing_labels": ["polite"],
}


def test_score_model_asks_the_judge_and_reads_its_score():
    with ChatServer(_judge) as server:
        context = GradingContext(EndpointConfig(base_url=server.base_url, model="judge", max_retries=0))
        grades = _grades(SCORE, ["one two three four", "one", "mute"], [None] * 3, context)
        assert len(server.requests) == 3 and server.requests[0]["model"] == "judge"
        assert [g.score for g in grades[:2]] == [4.0, 1.0]
        assert grades[0].passed is True and grades[1].passed is False and "< pass_threshold 3" in grades[1].detail
        assert grades[2].passed is None and "the judge gave no score" in grades[2].detail
        assert _reward(SCORE, ["one two", "a b c d e f"], [json.dumps(None)] * 2, context) == [2.0, 6.0]
        out_of_range = {**SCORE, "range": [0, 1]}
        assert "outside range [0, 1]" in _grades(out_of_range, ["one two three"], [None], context)[0].detail


def test_label_model_passes_on_a_passing_label():
    with ChatServer(_judge) as server:
        context = GradingContext(EndpointConfig(base_url=server.base_url, model="judge", max_retries=0))
        grades = _grades(LABEL, ["please help", "now!", "mute"], [None] * 3, context)
        assert [g.passed for g in grades] == [True, False, None] and grades[0].detail == "label 'polite'"
        assert "named none of the labels (polite, rude)" in grades[2].detail
        # the spec's own system message follows tunesmith's instruction, in one leading system message
        system = server.requests[0]["messages"][0]
        assert system["role"] == "system" and system["content"].endswith("Is it polite?")
        assert _reward(LABEL, ["please", "no"], [json.dumps(None)] * 2, context) == [1.0, 0.0]


def test_a_model_grader_without_a_judge_says_so_at_the_check_and_at_first_use(tmp_path):
    grade = _grades(SCORE, ["x"], [None])[0]  # no context: no judge
    assert grade.passed is None and "set eval.judge" in grade.detail
    with pytest.raises(ValueError, match=r"train.grpo.rewards\[0\]: score_model asks a judge model: set eval.judge"):
        Config.model_validate({"train": {"grpo": {"rewards": [SCORE]}}})
    judge = {"base_url": "http://x/v1", "model": "j"}
    Config.model_validate({"train": {"grpo": {"rewards": [SCORE]}}, "eval": {"judge": judge}})
    write_jsonl(tmp_path / "s.jsonl", [{"messages": [{"role": "user", "content": "hi"}], "scorers": [LABEL]}])
    cfg = Config.model_validate({"eval": {"suites": ["s.jsonl"]}})
    with pytest.raises(TunesmithError, match="label_model, which asks a judge model") as err:
        project_suites(cfg, tmp_path)
    assert err.value.problems[0].where.endswith("s.jsonl:1") and "eval.judge" in err.value.problems[0].hint


def test_a_judge_that_fails_leaves_the_cases_unscored():
    with ChatServer(lambda m, t: {"status": 500, "message": "judge crashed"}) as server:
        context = GradingContext(EndpointConfig(base_url=server.base_url, model="judge", max_retries=0))
        grade = _grades(SCORE, ["x"], [None], context)[0]
    assert grade.passed is None and "the judge failed: endpoint answered HTTP 500" in grade.detail


# --- python ------------------------------------------------------------------------------------------------------

PYTHON = """
import json
seen = []

def grade(sample, item):
    seen.append(1)  # one process for the whole batch: this counts the replies it graded
    text = sample["output_text"]
    if text == "raise":
        raise ValueError("no good")
    if text == "loop":
        while True:
            pass
    if text == "word":
        return "high"
    if text.startswith("count"):
        print("noise on stdout never breaks the protocol")
        return len(seen) / 10
    return float(text == item["expected"])
"""


def test_the_python_grader_runs_a_batch_in_one_subprocess_and_survives_what_goes_wrong():
    spec = {"type": "python", "source": PYTHON, "timeout": 0.5, "pass_threshold": 1.0}
    outputs = ["a", "count", "raise", "loop", "word", "b", "count"]
    grades = _grades(spec, outputs, ["a"] * len(outputs))
    assert grades[0].passed is True and grades[0].score == 1.0
    assert grades[1].score == pytest.approx(0.2) and grades[1].passed is False  # the batch's second reply
    assert grades[2].score == 0.0 and grades[2].detail == "scored 0: ValueError: no good (line 9)"
    assert grades[3].score == 0.0 and "timed out after 0.5s" in grades[3].detail  # the rest still graded:
    assert grades[4].score == 0.0 and "grade returned str, not a number" in grades[4].detail
    assert grades[5].passed is False and grades[5].score == 0.0
    assert grades[6].score == pytest.approx(0.3)  # a fresh process after the timeout, the third reply it saw
    assert _reward(spec, ["a", "raise", "count"], [json.dumps("a")] * 3) == [1.0, 0.0, 0.3]


def test_a_python_grader_that_fails_to_load_scores_every_case_zero():
    spec = {"type": "python", "source": "import no_such_module\ndef grade(sample, item):\n    return 1.0"}
    grades = _grades(spec, ["a", "b"], [None, None])
    assert all(g.score == 0.0 and "the source did not load: ModuleNotFoundError" in g.detail for g in grades)


# --- multi -------------------------------------------------------------------------------------------------------

MULTI = {
    "type": "multi",
    "graders": {
        "exact": {"type": "string_check", "input": TEXT, "reference": "{{item.expected}}", "operation": "eq"},
        "close": {**_similarity("fuzzy_match"), "pass_threshold": 0.5},
    },
    "calculate_output": "0.5 * exact + 0.5 * close ^ 2",
    "pass_threshold": 0.7,
}


def test_multi_combines_its_graders_scores_by_the_formula():
    same, near = _grades(MULTI, ["billing", "bill"], ["billing", "billing"])
    assert same.score == 1.0 and same.passed is True
    fuzzy = 8 / 11  # rapidfuzz's ratio of "bill" and "billing"
    assert near.score == pytest.approx(0.5 * fuzzy**2) and near.passed is False  # ^ binds tighter than *
    assert "exact=0, close=0.727" in near.detail
    assert _reward(MULTI, ["billing", "bill"], [json.dumps("billing")] * 2) == pytest.approx([1.0, 0.5 * fuzzy**2])
    missing = {
        **MULTI,
        "graders": {**MULTI["graders"], "exact": {**MULTI["graders"]["exact"], "reference": "{{item.x}}"}},
    }
    grade = _grades(missing, ["billing"], ["billing"])[0]
    assert grade.passed is None and "exact: {{item.x}}: no field 'x'" in grade.detail
    log_zero = {**MULTI, "calculate_output": "log(exact)"}
    assert "math domain error" in _grades(log_zero, ["bill"], ["billing"])[0].detail


def test_formulas_are_walked_never_evaluated():
    assert formula_names("min(a, b) + max(c, 1) * floor(d) - -e / 2") == {"a", "b", "c", "d", "e"}
    assert evaluate("2 ^ 3 ^ 2 + sqrt(a) + abs(-1) + ceil(0.1) + exp(0) + log(1)", {"a": 4}) == 512 + 2 + 1 + 1 + 1
    for bad in ("__import__('os').system('true')", "a.b", "a if b else c", "[a][0]", "max(a)", "'x'", "a < b", "1 +"):
        with pytest.raises(FormulaError):
            formula_names(bad)
    with pytest.raises(FormulaError, match="ZeroDivisionError"):
        evaluate("a / b", {"a": 1, "b": 0})
    with pytest.raises(FormulaError, match="OverflowError"):
        evaluate("10 ^ 10 ^ 10", {})


# --- spec checks -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"type": "string_check", "input": TEXT, "reference": "x", "operation": "glob"}, "not eq, ne, like or ilike"),
        ({"type": "string_check", "input": "x"}, "needs 'reference', 'operation'"),
        ({**_similarity("bleu")}, "needs 'pass_threshold'"),
        ({**_similarity("meteor"), "pass_threshold": 0.5}, "meteor needs NLTK's WordNet download"),
        ({**_similarity("jaccard"), "pass_threshold": 0.5}, "unknown evaluation_metric 'jaccard'"),
        ({**_similarity("bleu"), "pass_threshold": "high"}, "pass_threshold 'high' is not a number"),
        ({**SCORE, "range": [1, 0]}, "range [1, 0] is not [low, high]"),
        ({**SCORE, "input": "rate it"}, "input must be a non-empty list of messages"),
        ({**SCORE, "input": [{"role": "user"}]}, "input[0] is not a message"),
        ({**LABEL, "passing_labels": ["kind"]}, "passing_labels ['kind'] must be a non-empty list of the labels"),
        ({"type": "python", "source": "def grade(sample, item)\n  return 1"}, "source does not compile (line 1)"),
        ({"type": "python", "source": "def score(sample, item):\n    return 1"}, "defines no top-level grade"),
        ({"type": "python", "source": "def grade(s, i):\n    return 1", "timeout": 0}, "timeout 0 is not"),
        ({**MULTI, "calculate_output": "exact + fuzzy"}, "calculate_output names 'fuzzy', not a grader"),
        ({**MULTI, "calculate_output": "exact.real"}, "'exact.real' is not allowed"),
        ({**MULTI, "graders": {"r": {"type": "regex", "pattern": "x"}}}, "graders.r: not an OpenAI grader"),
        ({**MULTI, "graders": {"x": {"type": "string_check", "input": "x"}}}, "graders.x: grader 'string_check' needs"),
        ({**MULTI, "graders": {"my-grader": MULTI["graders"]["exact"]}}, "'my-grader' cannot appear in a formula"),
    ],
)
def test_bad_grader_specs_are_named_when_the_suite_is_read(spec, message):
    problem = scorer_problem(spec)
    assert problem is not None and message in problem[0], problem


def test_good_grader_specs_pass_and_an_unknown_type_names_the_supported_ones():
    for spec in (
        SCORE,
        LABEL,
        MULTI,
        {"type": "python", "source": PYTHON},
        {**_similarity("rouge_l"), "pass_threshold": 1},
    ):
        assert scorer_problem(spec) is None, spec
    message, hint = scorer_problem({"type": "endpoint", "url": "x"})
    assert "unknown scorer 'endpoint'" in message and "text_similarity" in hint and "multi" in hint
    _, nested_hint = scorer_problem({**MULTI, "graders": {"e": {"type": "endpoint"}}})
    assert "string_check, text_similarity, score_model, label_model, python, multi" in nested_hint


# --- from the CLI: a suite graded by OpenAI's graders, batched per suite -----------------------------------------


def test_eval_score_grades_recorded_outputs_with_openai_graders(tmp_path):
    python = {"type": "python", "name": "seen", "source": PYTHON, "pass_threshold": 0.3}
    scorers = [python, {**SCORE, "pass_threshold": 2}, {**MULTI, "name": "blend"}]
    cases = [{"id": f"c{i}", "messages": [{"role": "user", "content": "?"}], "expected": "billing"} for i in range(3)]
    suite = write_jsonl(tmp_path / "s.jsonl", [{**c, "scorers": scorers} for c in cases])
    outputs = ["billing", "count", "count billing"]
    responses = write_jsonl(tmp_path / "r.jsonl", [{"id": f"c{i}", "output": o} for i, o in enumerate(outputs)])
    with ChatServer(_judge) as server:
        (tmp_path / "tunesmith.yaml").write_text(f"eval: {{judge: {{base_url: '{server.base_url}', model: j}}}}\n")
        args = ["eval", "score", "--suite", str(suite), "--responses", str(responses), "--project", str(tmp_path)]
        res = runner.invoke(app, [*args, "--out", str(tmp_path / "rows.jsonl"), "--json"])
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.output[res.output.index("{") :])["metrics"]  # after the judge's progress bar
    # one python process for the suite: the two "count" replies are its 2nd and 3rd (0.2 fails, 0.3 passes)
    assert metrics["seen_pass_rate"] == pytest.approx(2 / 3)
    assert metrics["quality_pass_rate"] == pytest.approx(1 / 3) and metrics["blend_pass_rate"] == pytest.approx(1 / 3)
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert rows[1]["details"]["seen"] == "score 0.2 < pass_threshold 0.3"
    assert rows[2]["details"]["quality"] == "score 2 (judge)" and len(server.requests) == 3


def test_grades_prepared_for_a_suite_are_read_case_by_case():
    spec = {"type": "python", "source": PYTHON}
    context = GradingContext()
    cases = [_case(spec, "a", i) for i in range(3)]
    context.prepare((c, "count") for c in cases)
    assert [context.grade(spec, [Item(c, "count")])[0].score for c in cases] == pytest.approx([0.1, 0.2, 0.3])
