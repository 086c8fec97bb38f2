"""`tunesmith import openai-job`: a saved OpenAI fine-tuning job (supervised, DPO, reinforcement) and its data
become a project that loads and whose data checks clean; bad input is named by file, line and field."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.config import Config, load_config
from tunesmith.data.formats import load_records
from tunesmith.errors import TunesmithError
from tunesmith.migrate import HYPERPARAMETERS, import_openai_job
from tunesmith.starter import starter_sections

FIXTURES = Path(__file__).parent / "fixtures" / "openai_jobs"
VALIDATION = {"supervised": "supervised_valid.jsonl", "dpo": None, "reinforcement": "reinforcement_valid.jsonl"}
OBJECTIVE = {"supervised": "sft", "dpo": "dpo", "reinforcement": "grpo"}
runner = CliRunner()


def _args(method: str, out: Path, *extra: str) -> list[str]:
    args = ["import", "openai-job", str(FIXTURES / f"{method}_job.json")]
    args += ["--training-file", str(FIXTURES / f"{method}_train.jsonl"), "--out", str(out), *extra]
    return args + (["--validation-file", str(FIXTURES / VALIDATION[method])] if VALIDATION[method] else [])


def _config_value(cfg: Config, key: str):
    return functools.reduce(getattr, key.split("."), cfg)


def _job(tmp_path: Path, kind: str = "reinforcement", **changes) -> Path:
    """A fixture job with `changes` (`method__type="x"` sets job["method"]["type"]) written to tmp_path."""
    job = json.loads((FIXTURES / f"{kind}_job.json").read_text())
    for path, value in changes.items():
        *parents, last = path.split("__")
        functools.reduce(dict.__getitem__, parents, job)[last] = value
    out = tmp_path / "job.json"
    out.write_text(json.dumps(job))
    return out


@pytest.mark.parametrize("method", ["supervised", "dpo", "reinforcement"])
def test_each_method_becomes_a_project_that_loads_and_checks_clean(method, tmp_path, tiny_model_dir):
    before = {p.name: p.read_bytes() for p in FIXTURES.iterdir()}
    out = tmp_path / "proj"
    res = runner.invoke(app, _args(method, out, "--base", str(tiny_model_dir)))
    assert res.exit_code == 0, res.output
    assert {p.name: p.read_bytes() for p in FIXTURES.iterdir()} == before  # the inputs are never modified
    assert (
        "The job's settings -> tunesmith.yaml" in res.output and f"train.objective: {OBJECTIVE[method]}" in res.output
    )

    cfg, project = load_config(out)
    assert cfg.train.objective == OBJECTIVE[method] and cfg.model.base == str(tiny_model_dir)
    assert cfg.eval.general_probe and (out / "eval").is_dir()  # the starter's eval section and eval/ directory
    if method == "supervised":  # the starter's whole general mix: its data, share and KL weight
        starter = starter_sections()["train"]
        t = cfg.train
        assert (t.general_data, t.general_share, t.general_kl) == tuple(
            starter[k] for k in ("general_data", "general_share", "general_kl")
        )
        assert t.general_kl > 0
    for which in ("validation", "test"):  # the files `tunesmith run` reads besides data.train
        for name in getattr(cfg.data, which):
            assert load_records([project / name])
    check = runner.invoke(app, ["data", "check", str(out), "--json"])
    assert check.exit_code == 0, check.output
    assert not [f for f in json.loads(check.output)["findings"] if f["severity"] == "error"]


def test_hyperparameters_map_through_the_one_table(tmp_path):
    sft = import_openai_job(
        FIXTURES / "supervised_job.json", FIXTURES / "supervised_train.jsonl", tmp_path / "sft", base="x/y"
    )
    cfg, _ = load_config(tmp_path / "sft")
    default_lr = Config().train.lr
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.seed) == (3, 4, 1234)
    assert cfg.train.lr == pytest.approx(2.0 * default_lr)
    lr_row = next(m for m in sft.mapping if m.config_key == "train.lr")
    assert lr_row.source == "method.supervised.hyperparameters.learning_rate_multiplier"
    assert lr_row.how == f"2.0 x tunesmith's default lr {default_lr}"

    dpo = import_openai_job(FIXTURES / "dpo_job.json", FIXTURES / "dpo_train.jsonl", tmp_path / "dpo")
    cfg, _ = load_config(tmp_path / "dpo")
    by_key = {h.job_key: h.config_key for h in HYPERPARAMETERS}
    assert _config_value(cfg, by_key["beta"]) == 0.2 and cfg.train.epochs == 2
    assert cfg.train.batch_size == Config().train.batch_size  # "auto": tunesmith's own default
    assert cfg.model.base == Config().model.base  # the built-in model unless --base
    assert {m.source: m.how for m in dpo.mapping}["method.dpo.hyperparameters.batch_size"].startswith("auto")

    rft = import_openai_job(
        FIXTURES / "reinforcement_job.json", FIXTURES / "reinforcement_train.jsonl", tmp_path / "rft"
    )
    cfg, _ = load_config(tmp_path / "rft")
    assert cfg.train.epochs == "auto" and cfg.train.lr == default_lr
    unused = {m.source.rsplit(".", 1)[-1]: m.given for m in rft.mapping if m.config_key is None}
    assert unused == {
        "compute_multiplier": "auto",
        "reasoning_effort": "medium",
        "eval_interval": "auto",
        "eval_samples": "auto",
    }


def test_a_job_saved_before_method_existed_is_supervised_with_its_top_level_hyperparameters(tmp_path):
    job = _job(tmp_path, "supervised", method=None, hyperparameters={"n_epochs": 5, "batch_size": "auto"})
    result = import_openai_job(job, FIXTURES / "supervised_train.jsonl", tmp_path / "p")
    cfg, _ = load_config(tmp_path / "p")
    assert cfg.train.objective == "sft" and cfg.train.epochs == 5
    assert {m.source for m in result.mapping} >= {"hyperparameters.n_epochs", "hyperparameters.batch_size", "seed"}


def test_openai_dpo_lines_become_preference_pairs(tmp_path):
    with pytest.raises(TunesmithError):  # tunesmith's reader does not take OpenAI's DPO lines as they are
        load_records([FIXTURES / "dpo_train.jsonl"])
    import_openai_job(FIXTURES / "dpo_job.json", FIXTURES / "dpo_train.jsonl", tmp_path / "p")
    records = load_records([tmp_path / "p" / "data" / "train.jsonl"])
    first = json.loads((FIXTURES / "dpo_train.jsonl").read_text().splitlines()[0])
    assert records[0].format == "preference" and records[0].prompt == first["input"]["messages"]
    assert records[0].reply == first["preferred_output"][0]["content"]
    assert records[0].rejected == first["non_preferred_output"]


def test_a_developer_turn_becomes_a_system_turn(tmp_path):
    import_openai_job(
        FIXTURES / "supervised_job.json",
        FIXTURES / "supervised_train.jsonl",
        tmp_path / "p",
        validation_file=FIXTURES / "supervised_valid.jsonl",
    )
    records = load_records([tmp_path / "p" / "data" / "validation.jsonl"])
    assert [r.messages[0]["role"] for r in records] == ["system", "system"]


def test_the_grader_is_the_grpo_reward_and_scores_the_held_out_cases(tmp_path):
    from tunesmith.data.records import Record
    from tunesmith.eval.scorers import score_case
    from tunesmith.eval.suite import cases_from_records
    from tunesmith.train.grpo import prompt_rows
    from tunesmith.train.grpo_rewards import reward_function

    import_openai_job(FIXTURES / "reinforcement_job.json", FIXTURES / "reinforcement_train.jsonl", tmp_path / "p")
    grader = json.loads((FIXTURES / "reinforcement_job.json").read_text())["method"]["reinforcement"]["grader"]
    cfg, project = load_config(tmp_path / "p")
    assert cfg.train.grpo.rewards == [grader] and cfg.task.type == "json" and cfg.task.scorers == [grader]
    assert cfg.eval.gate.metric == "task_accuracy" and cfg.eval.decoding == "free"
    train = load_records([project / "data" / "train.jsonl"])
    assert len(train) == 8

    case = cases_from_records(train[:1], cfg.task)[0]  # a held-out case, as `tunesmith run` makes it
    assert (
        isinstance(train[0], Record)
        and case.scorers == [grader]
        and case.expected["queue"] in ("billing", "technical", "shipping")
    )
    right, wrong = json.dumps({"queue": case.expected["queue"]}), json.dumps({"queue": "nowhere"})
    assert score_case(case, right, cfg.task)["task_correct"] is True
    assert score_case(case, wrong, cfg.task)["task_correct"] is False

    rows = prompt_rows(train[:1], cfg)  # what GRPO samples from: the prompt, and the item as `expected`
    queue = json.loads(rows[0]["expected"])["queue"]
    reward = reward_function(cfg.train.grpo.rewards[0], None)
    assert reward(
        [rows[0]["prompt"]] * 2, [json.dumps({"queue": queue}), "{}"], expected=[rows[0]["expected"]] * 2
    ) == [
        1.0,
        0.0,
    ]


def test_a_grader_the_config_rejects_is_a_warning_and_the_project_is_still_written(tmp_path):
    grader = {
        "type": "text_similarity",
        "name": "sim",
        "input": "{{sample.output_text}}",
        "reference": "{{item.queue}}",
    }
    grader |= {"evaluation_metric": "meteor", "pass_threshold": 0.5}  # meteor needs a download: refused either way
    job = _job(tmp_path, method__reinforcement__grader=grader)
    res = runner.invoke(
        app,
        ["import", "openai-job", str(job), "--training-file", str(FIXTURES / "reinforcement_train.jsonl")]
        + ["--out", str(tmp_path / "p")],
    )
    assert res.exit_code == 0, res.output
    assert "warning:" in res.output and "grader" in res.output
    written = yaml.safe_load((tmp_path / "p" / "tunesmith.yaml").read_text())
    assert written["train"]["grpo"]["rewards"] == [grader] and written["task"]["scorers"] == [grader]
    with pytest.raises(TunesmithError):
        load_config(tmp_path / "p")


def test_the_hosted_model_becomes_a_baseline_with_a_non_inferiority_gate(tmp_path):
    runner.invoke(app, _args("supervised", tmp_path / "p"))
    text = (tmp_path / "p" / "tunesmith.yaml").read_text()
    assert "Hosted base model: gpt-4o-mini-2024-07-18" in text and "ft:gpt-4o-mini-2024-07-18:lumen::sft123" in text
    written = yaml.safe_load(text)["eval"]
    assert written["baselines"] == [
        "auto",
        {
            "name": "hosted",
            "base_url": "https://api.openai.com/v1",
            "model": "ft:gpt-4o-mini-2024-07-18:lumen::sft123",
            "api_key_env": "OPENAI_API_KEY",
        },
    ]
    assert written["gates"][-1] == {
        "metric": "task_accuracy",
        "min_delta": -0.02,
        "require_significant": False,
        "vs": "hosted",
    }
    cfg, _ = load_config(tmp_path / "p")  # the config takes the endpoint baseline and its gate
    assert cfg.eval.gates[-1].vs == "hosted"


def test_a_non_empty_directory_needs_force(tmp_path):
    out = tmp_path / "p"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    res = runner.invoke(app, _args("dpo", out))
    assert isinstance(res.exception, TunesmithError) and "not empty" in str(res.exception)
    assert runner.invoke(app, _args("dpo", out, "--force")).exit_code == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "tunesmith.yaml").exists()

    mine = out / "data" / "train.jsonl"  # an input where the import would write: never written over
    shutil.copy(FIXTURES / "dpo_train.jsonl", mine)
    before = mine.read_bytes()
    with pytest.raises(TunesmithError, match="Would overwrite an input"):
        import_openai_job(FIXTURES / "dpo_job.json", mine, out, force=True)
    assert mine.read_bytes() == before


def _error(out: Path, job: Path, training: Path = FIXTURES / "supervised_train.jsonl") -> str:
    with pytest.raises(TunesmithError) as info:
        import_openai_job(job, training, out / "out")
    assert not (out / "out").exists()  # nothing written
    return str(info.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ((FIXTURES / "chat_completion.json").read_text(), "it is a 'chat.completion' object"),
        (json.dumps({"object": "file", "id": "file-abc", "purpose": "fine-tune"}), "it is a 'file' object"),
        (json.dumps({"object": "list", "data": [], "has_more": False}), "a list of objects"),
        (json.dumps([{"id": "ftjob-1"}]), "it holds a JSON array"),
        ('{"id": "ftjob-1",', "not valid JSON"),
        (json.dumps({"id": "ftjob-1"}), "model: Field required"),
    ],
)
def test_a_file_of_another_shape_is_named_with_what_was_expected(tmp_path, content, expected):
    job = tmp_path / "job.json"
    job.write_text(content)
    message = _error(tmp_path, job)
    assert str(job) in message and expected in message and "GET /v1/fine_tuning/jobs/{id}" in message


def test_an_unknown_method_names_the_three(tmp_path):
    message = _error(tmp_path, _job(tmp_path, method__type="distillation"))
    assert "unknown method 'distillation': expected supervised, dpo or reinforcement" in message
    assert "method.type" in message


def test_bad_hyperparameters_and_a_missing_grader_are_named(tmp_path):
    message = _error(tmp_path, _job(tmp_path, "supervised", method__supervised__hyperparameters={"n_epochs": 0}))
    assert "method.supervised.hyperparameters.n_epochs" in message and "0 is not a whole number" in message
    message = _error(
        tmp_path, _job(tmp_path, method__reinforcement__grader=None), FIXTURES / "reinforcement_train.jsonl"
    )
    assert "method.reinforcement.grader" in message


def test_bad_data_files_are_named_by_file_line_and_field(tmp_path):
    job = FIXTURES / "supervised_job.json"
    missing = tmp_path / "nope.jsonl"
    message = _error(tmp_path, job, missing)
    assert str(missing) in message and "--training-file" in message

    lines = (FIXTURES / "supervised_train.jsonl").read_text().splitlines()
    bad = tmp_path / "train.jsonl"
    bad.write_text("\n".join([lines[0], '{"messages": [', lines[1]]) + "\n")
    message = _error(tmp_path, job, bad)
    assert f"{bad}:2" in message and "not valid JSON" in message

    message = _error(tmp_path, job, FIXTURES / "dpo_train.jsonl")  # a DPO file given for a supervised job
    assert "dpo_train.jsonl:1 [messages]" in message and "a supervised line needs `messages`" in message
    message = _error(tmp_path, FIXTURES / "dpo_job.json", FIXTURES / "supervised_train.jsonl")
    assert "supervised_train.jsonl:1 [input]" in message

    shutil.copy(FIXTURES / "dpo_train.jsonl", bad)
    row = json.loads(bad.read_text().splitlines()[0])
    row["preferred_output"][0]["role"] = "robot"
    bad.write_text(json.dumps(row) + "\n")
    message = _error(tmp_path, FIXTURES / "dpo_job.json", bad)
    assert f"{bad}:1 [preferred_output[0].role]" in message and "unknown role 'robot'" in message


def _write_lines(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _supervised_prompts() -> list[tuple[str, str]]:
    """(user message, reply) of each line of the supervised fixture's training file."""
    lines = (FIXTURES / "supervised_train.jsonl").read_text().splitlines()
    return [(m[-2]["content"], m[-1]["content"]) for m in (json.loads(line)["messages"] for line in lines)]


def test_recorded_hosted_replies_are_copied_and_become_the_hosted_baseline(tmp_path):
    from tunesmith.config import RecordedBaseline
    from tunesmith.eval.named_baselines import score_recorded
    from tunesmith.eval.suite import cases_from_records

    prompts = _supervised_prompts()
    rows = [{"prompt": p, "output": reply} for p, reply in prompts[:-2]] + [{"prompt": "not asked", "output": "x"}]
    replies = _write_lines(tmp_path / "replies.jsonl", rows)
    before = replies.read_bytes()
    res = runner.invoke(app, _args("supervised", tmp_path / "p", "--hosted-replies", str(replies)))
    assert res.exit_code == 0, res.output
    assert replies.read_bytes() == before  # the input is never modified
    copied = tmp_path / "p" / "data" / "hosted-replies.jsonl"
    assert [json.loads(line) for line in copied.read_text().splitlines()] == rows
    output = " ".join(res.output.split())
    assert f"2 of {len(prompts)} training prompt(s) have no reply" in output and "data/train.jsonl:7" in output
    assert f"1 repl(ies) answer no prompt of the training and validation files ({replies}:{len(rows)})" in output

    written = yaml.safe_load((tmp_path / "p" / "tunesmith.yaml").read_text())["eval"]
    assert written["baselines"] == ["auto", {"name": "hosted", "responses": "data/hosted-replies.jsonl"}]
    assert written["gates"][-1] == {
        "metric": "task_accuracy",
        "min_delta": -0.02,
        "require_significant": False,
        "vs": "hosted",
    }
    cfg, project = load_config(tmp_path / "p")
    entry = cfg.eval.baselines[-1]
    assert isinstance(entry, RecordedBaseline) and cfg.eval.gates[-1].vs == "hosted"
    cases = cases_from_records(load_records([project / "data" / "train.jsonl"]), cfg.task)
    rec = score_recorded(entry, project, cases, cfg, None)  # what `tunesmith run` does with the held-out cases
    assert rec.missing == [c.id for c in cases[-2:]] and rec.metrics["heldout"]["task_accuracy"] == 1.0

    import_openai_job(  # the Python API: the same project
        FIXTURES / "supervised_job.json", FIXTURES / "supervised_train.jsonl", tmp_path / "api", hosted_replies=replies
    )
    assert (tmp_path / "api" / "data" / "hosted-replies.jsonl").read_text() == copied.read_text()
    assert yaml.safe_load((tmp_path / "api" / "tunesmith.yaml").read_text())["eval"]["baselines"][-1] == {
        "name": "hosted",
        "responses": "data/hosted-replies.jsonl",
    }


@pytest.mark.parametrize(
    ("lines", "where", "expected"),
    [
        (['{"prompt": "hi", "output": "ok"}', '{"prompt": "hi",'], ":2", "not valid JSON"),
        (['{"output": "ok"}'], ":1 [prompt]", "needs the `prompt` it answers"),
        (['{"id": "case-1", "output": 3}'], ":1 [output]", "a string `output` (got int)"),
        (['{"prompt": "hi"}'], ":1 [output]", "(got none)"),
        (["[1, 2]"], ":1", "expected a JSON object"),
        ([""], "", "the file has no records"),
    ],
)
def test_bad_hosted_replies_are_named_by_file_and_line(tmp_path, lines, where, expected):
    replies = tmp_path / "replies.jsonl"
    replies.write_text("\n".join(lines) + "\n")
    with pytest.raises(TunesmithError) as info:
        import_openai_job(
            FIXTURES / "supervised_job.json",
            FIXTURES / "supervised_train.jsonl",
            tmp_path / "p",
            hosted_replies=replies,
        )
    assert f"{replies}{where}" in str(info.value) and expected in str(info.value)
    assert not (tmp_path / "p").exists()  # nothing written
    missing = tmp_path / "nope.jsonl"
    res = runner.invoke(app, _args("supervised", tmp_path / "p", "--hosted-replies", str(missing)))
    assert isinstance(res.exception, TunesmithError) and str(missing) in str(res.exception)
    assert "--hosted-replies" in str(res.exception) and not (tmp_path / "p").exists()


def test_json_replies_make_a_json_task_that_compares_their_label_like_fields(tmp_path):
    queues, priorities = ["billing", "technical", "shipping"], ["low", "high"]
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"ticket {i}"},
                {
                    "role": "assistant",
                    "content": json.dumps(
                        {"queue": queues[i % 3], "priority": priorities[i % 2], "reason": f"because of {i}"}
                    ),
                },
            ]
        }
        for i in range(12)
    ]
    train = _write_lines(tmp_path / "train.jsonl", rows)
    result = import_openai_job(FIXTURES / "supervised_job.json", train, tmp_path / "json")
    cfg, _ = load_config(tmp_path / "json")
    assert cfg.task.type == "json" and cfg.task.match_fields == ["queue", "priority"]  # `reason` is free text
    assert any("task.type json" in note and "its queue and priority match" in note for note in result.notes)

    for row in rows[:2]:
        row["messages"][-1]["content"] = "Billing, probably."
    import_openai_job(FIXTURES / "supervised_job.json", _write_lines(train, rows), tmp_path / "chat")
    cfg, _ = load_config(tmp_path / "chat")
    assert cfg.task.type == "chat" and not cfg.task.match_fields  # a reply that is not JSON: free text
