"""The reasoning-task path on GSM8K-shaped records written here (never the shared file): `{question, answer}` rows
read through the column mapping, split, held-out cases that expect the number each worked solution ends with, the
numeric scorer and GRPO's numeric reward, the data check of a math task, and a GRPO run of two steps on the tiny
random model rewarded by the numeric scorer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import write_jsonl
from tunesmith.config import ColumnsConfig, Config, TaskConfig
from tunesmith.data.audit import run_checks
from tunesmith.data.findings import Code, Severity
from tunesmith.data.formats import load_records
from tunesmith.data.split import split_records
from tunesmith.eval.scorers import run_scorers, score_case
from tunesmith.eval.suite import EvalCase, cases_from_records

NAMES = ["Ann", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal", "Ivy", "Jo", "Kai", "Lu"]
MATH = TaskConfig(type="math")
MAPPING = ColumnsConfig(prompt="question", reply="answer")


def gsm_rows(n: int = 12) -> list[dict]:
    """GSM8K's shape: a word problem, and a worked solution with calculator annotations ending in `#### <n>`."""
    rows = []
    for i in range(n):
        boxes, pens, price = i + 2, 3 * i + 1, i + 5
        total = boxes * pens
        rows.append(
            {
                "question": f"{NAMES[i]} buys {boxes} boxes at ${price} each, with {pens} pens in every box. "
                f"How many pens does {NAMES[i]} get?",
                "answer": f"Each box holds {pens} pens and {NAMES[i]} pays ${price} a box.\n"
                f"So {boxes} * {pens} = <<{boxes}*{pens}={total}>>{total} pens.\n#### {total:,}",
            }
        )
    return rows


def worked(n: float) -> str:
    return f"First 2 * 3 = <<2*3=6>>6, then more.\n#### {n:g}"


def test_rows_read_through_the_mapping_are_split_into_cases_that_expect_the_final_number(tmp_path):
    path = write_jsonl(tmp_path / "gsm.jsonl", gsm_rows())
    records = load_records([path], columns=MAPPING)
    assert [r.format for r in records] == ["columns"] * 12 and records[0].reply.endswith("#### 2")
    train, heldout = split_records(records, fraction=0.25, seed=0)
    assert len(heldout) == 3 and not {r.where for r in train} & {r.where for r in heldout}
    cases = cases_from_records(heldout, MATH)
    answers = {r["question"]: float(r["answer"].rsplit("#### ", 1)[1].replace(",", "")) for r in gsm_rows()}
    assert [c.expected for c in cases] == [answers[c.messages[-1]["content"]] for c in cases]
    assert all(isinstance(c.expected, float) and c.behavior == "answer" for c in cases)
    # a chat task would expect the whole worked text, which no reply ever equals
    assert cases_from_records(heldout, TaskConfig())[0].expected == heldout[0].reply.strip()

    case, want = cases[0], cases[0].expected
    assert score_case(case, worked(want), MATH)["task_correct"] is True
    assert score_case(case, f"so the answer is {want:g} pens.", MATH)["task_correct"] is True  # the last number
    scores = score_case(case, worked(want + 1), MATH, hit_limit=True)
    assert scores["task_correct"] is False and scores["hit_token_limit"] is True


def test_a_math_reply_without_a_number_stays_text():
    from tunesmith.eval.suite import expected_from_reply

    assert expected_from_reply("I cannot tell: the price is missing.", MATH) == "I cannot tell: the price is missing."
    assert expected_from_reply("It sold 48 + 24 = 72 clips.\n#### 1,272", MATH) == 1272.0


@pytest.mark.parametrize(
    ("expected", "output", "passed"),
    [
        ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", "48 + 24 = 72.\n#### 72", True),
        ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", "She sold 24 clips.", False),
        ("1,200", "#### 1200", True),
        (72, "so 72 in all", True),
        ("no number at all", "#### 5", None),
    ],
)
def test_the_numeric_scorer_reads_a_worked_solution_as_the_expected_answer(expected, output, passed):
    case = EvalCase(
        id="1", messages=[{"role": "user", "content": "q"}], expected=expected, scorers=[{"type": "numeric"}]
    )
    details: dict = {}
    assert run_scorers(case, output, None, details) == {"check:numeric": passed}
    assert passed is not None or "has no number" in details["numeric"]


def test_the_data_check_of_a_math_task_asks_no_pushback_and_no_stale_facts_and_hints_at_math():
    records = load_records_from(gsm_rows())
    math = run_checks(records, task_type="math")
    codes = {f.code for f in math.findings}
    assert not math.has_errors and math.n_kept == 12
    assert not codes & {Code.NO_PUSHBACK, Code.STALE_FACT, Code.WORKED_ANSWERS, Code.PII}
    chat = run_checks(records, task_type="chat")  # the same data under the default task type
    (hint,) = [f for f in chat.findings if f.code == Code.WORKED_ANSWERS]
    assert hint.severity == Severity.WARNING and "12 of 12" in hint.message and "task.type: math" in hint.hint
    assert {Code.NO_PUSHBACK, Code.STALE_FACT} <= {f.code for f in chat.findings}
    prose = run_checks(load_records_from([{"question": "hi", "answer": "#### Hello, a heading"}]), task_type="chat")
    assert Code.WORKED_ANSWERS not in {f.code for f in prose.findings}


def load_records_from(rows: list[dict]):
    from tunesmith.data.formats import to_record

    return [to_record(r, "gsm.jsonl", i + 1, columns=MAPPING) for i, r in enumerate(rows)]


def test_advise_reads_a_math_project_as_a_reasoning_task(tmp_path, tiny_model_dir):
    from tunesmith.advise.project import answers_from_project

    write_jsonl(tmp_path / "data" / "train.jsonl", gsm_rows())
    (tmp_path / "tunesmith.yaml").write_text(
        f'model: {{base: "{tiny_model_dir}"}}\ntask: {{type: math}}\n'
        "data: {train: [data/train.jsonl], columns: {prompt: question, reply: answer}}\n"
    )
    answers = answers_from_project(tmp_path)
    assert (answers.task, answers.needs, answers.examples) == ("reasoning", ["reasoning"], 12)
    assert answers.stale_fact_share == 0.0  # the problems' prices are givens, not facts that change


def test_grpo_rewards_a_math_task_with_the_numeric_scorer_by_default():
    from tunesmith.train.grpo import prompt_rows
    from tunesmith.train.grpo_rewards import default_rewards, reward_functions

    cfg = Config(task=MATH)
    assert default_rewards(cfg, None) == [{"type": "numeric"}]
    rows = prompt_rows(load_records_from(gsm_rows(2)), cfg)
    assert [json.loads(r["expected"]) for r in rows] == [2.0, 12.0] and rows[0]["prompt"][-1]["role"] == "user"
    (reward,), weights = reward_functions(cfg, None)
    got = reward([r["prompt"] for r in rows], ["so 2 pens\n#### 2", "#### 13"], expected=[r["expected"] for r in rows])
    assert got == [1.0, 0.0] and weights == [1.0]


def test_a_gsm8k_project_runs_grpo_on_the_numeric_reward_end_to_end(tmp_path, tiny_model_dir):
    """check -> split -> 2 GRPO steps rewarded by the numeric scorer -> base and tuned scored on the final number."""
    from tunesmith.pipeline import run_project

    project = tmp_path / "gsm"
    write_jsonl(project / "data" / "train.jsonl", gsm_rows())
    (project / "tunesmith.yaml").write_text(f"""
model: {{base: "{tiny_model_dir}"}}
task: {{type: math}}
data: {{train: [data/train.jsonl], columns: {{prompt: question, reply: answer}}, max_seq_len: 128}}
eval: {{max_new_tokens: 8, batch_size: 8, bootstrap_samples: 200}}
train: {{objective: grpo, max_steps: 2, batch_size: 4, grpo: {{max_completion_tokens: 8}}, logging_steps: 1,
        precision: fp32}}
""")
    summary = run_project(project)
    stages = {s["stage"]: s["run"] for s in summary["stages"]}
    result = json.loads((Path(stages["train"]) / "result.json").read_text())
    assert result["objective"] == "grpo" and result["steps"] == 2 and result["rewards"] == ["numeric"]
    assert result["reward_first"] is not None
    rows = [json.loads(line) for line in (Path(stages["eval-tuned"]) / "results.jsonl").open()]
    held = [r for r in rows if r["suite"] == "heldout"]
    assert held and all(isinstance(r["expected"], float) for r in held)
    assert all(r["scores"]["task_correct"] is not None for r in held)
    assert ("heldout", "task_accuracy") in {(m["suite"], m["metric"]) for m in summary["metrics"]}


def test_grpo_samples_as_long_as_the_evaluation_allows_by_default(tiny_model_dir):
    from tunesmith.config import Config
    from tunesmith.data.records import Record
    from tunesmith.models import load_tokenizer, resolve_model
    from tunesmith.train.grpo import completion_limit

    tok = load_tokenizer(resolve_model(str(tiny_model_dir)))
    worked = "Natalia sold 48/2 = <<48/2=24>>24 clips in May. Altogether 48+24 = <<48+24=72>>72 clips.\n#### 72"
    records = [Record(messages=[{"role": "user", "content": "How many?"}, {"role": "assistant", "content": worked}])]
    cfg = Config.model_validate({"task": {"type": "math"}})
    tokens = len(tok(worked, add_special_tokens=False)["input_ids"])
    assert completion_limit(cfg, records, tok) == int(tokens * 1.25) + 8  # the eval's own rule: the answer fits
    cfg = Config.model_validate({"train": {"grpo": {"max_completion_tokens": 16}}})
    assert completion_limit(cfg, records, tok) == 16
