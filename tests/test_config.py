import json
import re
import warnings

import pytest

from tunesmith.config import (
    Config,
    TrainConfig,
    apply_updates,
    config_schema,
    flat_train,
    load_config,
    recipe_sources,
    update_overrides,
)
from tunesmith.errors import TunesmithError, TunesmithWarning


def write(tmp_path, text):
    (tmp_path / "tunesmith.yaml").write_text(text)
    return tmp_path


def test_defaults_are_valid_and_follow_the_guidance():
    cfg = Config()
    # passes adapt to the data set's size, and the validation split decides the checkpoint and when to stop
    assert cfg.train.epochs == "auto" and cfg.train.patience and 8 <= cfg.train.lora.r <= 16
    assert cfg.data.heldout_fraction == 0.2 and cfg.data.validation_fraction == 0.1
    assert cfg.model.trust_remote_code is False


def test_every_problem_is_listed_with_its_yaml_path(tmp_path):
    project = write(tmp_path, "train:\n  lr: -1\n  epochz: 2\ndata:\n  heldout_fraction: 3\n")
    with pytest.raises(TunesmithError) as info:
        load_config(project)
    text = str(info.value)
    assert "3 problem(s)" in text
    assert "train.lr" in text and "data.heldout_fraction" in text
    assert "train.epochz" in text and "did you mean `epochs`" in text


def test_yaml_syntax_error_names_the_line(tmp_path):
    project = write(tmp_path, "train:\n  lr: 1\n bad: [\n")
    with pytest.raises(TunesmithError) as info:
        load_config(project)
    assert "tunesmith.yaml:" in info.value.problems[0].where


def test_set_overrides_are_parsed_as_yaml(tmp_path):
    project = write(tmp_path, "train:\n  lr: 0.001\n")
    cfg, _ = load_config(project, ["train.lr=1e-4", "eval.suites=[a.jsonl, b.jsonl]", "task.type=json"])
    assert cfg.train.lr == pytest.approx(1e-4)
    assert cfg.eval.suites == ["a.jsonl", "b.jsonl"]
    with pytest.raises(TunesmithError, match="KEY=VALUE"):
        load_config(project, ["train.lr"])


def test_missing_project_has_a_hint(tmp_path):
    with pytest.raises(TunesmithError) as info:
        load_config(tmp_path / "nope")
    assert "tunesmith init" in str(info.value)


def test_schema_documents_every_field():
    schema = config_schema()
    json.dumps(schema)
    for name, section in schema["$defs"].items():
        for field, spec in section.get("properties", {}).items():
            assert spec.get("description"), f"{name}.{field} has no description"


def test_typed_updates_keep_their_types(tmp_path):
    updates = {"train": {"lora": {"r": 8, "dora": True}}, "data": {"max_seq_len": 256}}
    cfg = apply_updates(Config(), updates)
    assert (cfg.train.lora.r, cfg.train.lora.dora, cfg.train.lora.alpha, cfg.data.max_seq_len) == (8, True, 32, 256)
    with pytest.raises(TunesmithError) as info:
        apply_updates(Config(), {"train": {"lora": {"r": "banana"}}})
    assert "train.lora.r" in str(info.value.problems)
    # as --set strings for the APIs that take only those: each parses back to the same value and type
    overrides = update_overrides(
        {"train": {"method": "qlora", "lora": {"dora": True}, "nproc": 2}, "tune": {"storage": "on"}}
    )
    assert overrides == ['train.method="qlora"', "train.lora.dora=true", "train.nproc=2", 'tune.storage="on"']
    (tmp_path / "tunesmith.yaml").write_text("{}\n")
    cfg, _ = load_config(tmp_path, overrides)
    assert (cfg.train.method, cfg.train.lora.dora, cfg.train.nproc, cfg.tune.storage) == ("qlora", True, 2, "on")


def test_train_has_documented_sub_sections_for_lora_dpo_and_grpo(tmp_path):
    project = write(
        tmp_path,
        "train:\n  lora: {r: 8, alpha: 16, rslora: true, target_modules: [q_proj]}\n  objective: grpo\n"
        "  dpo: {beta: 0.3}\n  grpo: {generations: 2, max_completion_tokens: 16, rewards: [{type: json}]}\n",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new keys warn about nothing
        t = load_config(project)[0].train
    assert (t.lora.r, t.lora.alpha, t.lora.rslora, t.lora.target_modules) == (8, 16, True, ["q_proj"])
    assert (t.dpo.beta, t.grpo.generations, t.grpo.max_completion_tokens) == (0.3, 2, 16)
    assert t.grpo.rewards == [{"type": "json"}]
    defs = config_schema()["$defs"]
    lora_fields = {"r", "alpha", "dropout", "dora", "rslora", "target_modules", "layers"}
    assert set(defs["LoraOptions"]["properties"]) == lora_fields
    assert "rank" in defs["LoraOptions"]["properties"]["r"]["description"]
    with pytest.raises(TunesmithError) as info:
        load_config(write(tmp_path, "train:\n  lora: {rank: 8}\n"))
    assert "train.lora.rank" in str(info.value) and "unknown field" in str(info.value)


def test_a_flat_key_in_the_yaml_is_read_at_its_new_place_with_one_warning(tmp_path):
    project = write(tmp_path, "train:\n  lora_r: 8\n  dora: true\n  dpo_beta: 0.2\n  grpo_generations: 6\n")
    with pytest.warns(TunesmithWarning) as caught:
        t = load_config(project)[0].train
    assert (t.lora.r, t.lora.dora, t.dpo.beta, t.grpo.generations) == (8, True, 0.2, 6)
    notes = [w.message.problem for w in caught if isinstance(w.message, TunesmithWarning)]
    assert len(notes) == 4  # one each, naming the file, the old key and the new one
    assert notes[0].where == f"{project / 'tunesmith.yaml'}: train.lora_r"
    assert notes[0].message == "deprecated: read as train.lora.r" and "lora: {r: 8}" in notes[0].hint


def test_a_flat_key_in_an_override_sets_its_new_place(tmp_path):
    project = write(tmp_path, "train:\n  lora: {r: 16, alpha: 64}\n")
    with pytest.warns(TunesmithWarning) as caught:
        cfg = load_config(project, ["train.lora_r=8", "train.rewards=[{type: json}]"])[0]
    assert [str(w.message).split(":")[0] for w in caught] == ["--set train.lora_r=8", "--set train.rewards=[{type"]
    assert "train.lora_r is read as train.lora.r" in str(caught[0].message)
    assert (cfg.train.lora.r, cfg.train.lora.alpha, cfg.train.grpo.rewards) == (8, 64, [{"type": "json"}])
    sources = {name: (value, where) for name, value, where in recipe_sources(cfg, project, ["train.lora_r=8"])}
    assert sources["lora.r"] == (8, "--set") and sources["lora.alpha"] == (64, "tunesmith.yaml")
    # the file's flat key, overridden at the new place: the override wins, the file's key still warns
    project = write(tmp_path, "train:\n  lora_r: 4\n")
    with pytest.warns(TunesmithWarning, match="train.lora_r"):
        assert load_config(project, ["train.lora.r=32"])[0].train.lora.r == 32
    # typed updates (the Python API, the CLI's flags) read a flat key too
    with pytest.warns(TunesmithWarning, match="options: train.lora_alpha"):
        assert apply_updates(Config(), {"train": {"lora_alpha": 8}}).train.lora.alpha == 8


def test_an_old_and_a_new_key_that_disagree_are_an_error(tmp_path):
    project = write(tmp_path, "train:\n  lora_r: 8\n  lora: {r: 16}\n")
    with pytest.raises(TunesmithError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_config(project)
    problem = info.value.problems[0]
    assert problem.where.endswith("tunesmith.yaml: train.lora_r") and "keep only lora.r" in problem.message
    with pytest.raises(TunesmithError, match="disagree"):
        apply_updates(Config(), {"train": {"rewards": [{"type": "json"}], "grpo": {"rewards": []}}})
    with pytest.raises(ValueError, match="disagree"):  # the Python API: a pydantic ValidationError
        TrainConfig(dpo_beta=0.2, dpo={"beta": 0.3})
    with pytest.warns(TunesmithWarning):  # the same value twice is no conflict
        assert TrainConfig(dpo_beta=0.3, dpo={"beta": 0.3}).dpo.beta == 0.3


def test_the_flat_layout_of_a_train_section_is_the_one_before_the_sub_sections():
    flat = flat_train(TrainConfig(lora={"r": 8}).model_dump(mode="json"))
    assert not {"lora", "dpo", "grpo"} & flat.keys()
    assert (flat["lora_r"], flat["lora_alpha"], flat["dpo_beta"], flat["rewards"]) == (8, 32, 0.1, [])
    assert flat_train(flat) == flat  # an old run's dump reads as it is
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from tunesmith.config import nest_moved

        assert TrainConfig.model_validate(nest_moved(flat, quiet=True)) == TrainConfig(lora={"r": 8})
        # a key added to a sub-section later stays there when set, and leaves the flat form (the cache key) unset
        layered = flat_train(TrainConfig(lora={"r": 8, "layers": 15}).model_dump(mode="json"))
        assert layered == {**flat, "lora": {"layers": 15}}
        assert TrainConfig.model_validate(nest_moved(layered, quiet=True)) == TrainConfig(lora={"r": 8, "layers": 15})


def test_task_scorers_are_checked_when_the_config_is_read(tmp_path):
    project = write(tmp_path, "task:\n  type: json\n  scorers:\n  - {type: string_chek, input: x, reference: y}\n")
    with pytest.raises(TunesmithError) as info:
        load_config(project)
    assert "task" in str(info.value) and "string_check" in str(info.value)  # did you mean
    grader = "{type: label_model, input: [{role: user, content: x}], labels: [a], passing_labels: [a], model: m}"
    judged = f"task:\n  scorers:\n  - {grader}\n"
    with pytest.raises(TunesmithError) as info:
        load_config(write(tmp_path, judged))
    assert "task.scorers[0]" in str(info.value) and "eval.judge" in str(info.value)
    cfg, _ = load_config(write(tmp_path, "task:\n  scorers:\n  - {type: contains, text: refund}\n"))
    assert cfg.task.scorers == [{"type": "contains", "text": "refund"}]


def _problems(project, overrides=None) -> list[str]:
    with pytest.raises(TunesmithError) as info:
        load_config(project, overrides)
    return [str(p) for p in info.value.problems]


def test_a_gate_metric_nobody_measures_is_refused_when_the_config_loads(tmp_path):
    project = write(tmp_path, "task: {type: json, match_fields: [queue]}\neval:\n  gate: {metric: task_acuracy}\n")
    (bad,) = _problems(project)
    assert "eval.gate.metric" in bad and "'task_acuracy' is not a metric" in bad and "`task_accuracy`?" in bad
    gates = "[{metric: redteem.task_accuracy}, {metric: latency_s}, {metric: general.task_accuracy}]"
    problems = _problems(project, [f"eval.gates={gates}", "eval.gate.metric=task_accuracy"])
    assert len(problems) == 3 and "no suite 'redteem'" in problems[0]
    assert "measured over a whole suite" in problems[1] and "'task_accuracy' is not a metric of general" in problems[2]
    fixed = "eval.gate.metric=task_accuracy"
    (bad,) = _problems(project, [fixed, "train.select_metric=queue_acuracy"])
    assert "train.select_metric" in bad and "`queue_accuracy`?" in bad
    (bad,) = _problems(project, [fixed, "train.select_metric=heldout.task_accuracy"])
    assert "without a suite" in bad
    # what an evaluation does measure passes: a match field, a suite, the general probe, a slice, a scorer's pass rate
    write(tmp_path, "task: {type: json, match_fields: [queue]}\neval: {suites: [eval/redteam.jsonl]}\n")
    good = (
        "[{metric: queue_accuracy}, {metric: redteam.behavior_accuracy}, {metric: general.prompt_strict_accuracy}, "
        "{metric: 'heldout#edge.task_accuracy'}, {metric: redteam.polite_pass_rate}, {metric: hallucination_rate}]"
    )
    cfg, _ = load_config(project, [f"eval.gates={good}", "train.select_metric=latency_s"])
    assert len(cfg.eval.gates) == 6


def test_a_gate_target_is_a_share_not_a_percent(tmp_path):
    project = write(tmp_path, "eval:\n  gate: {min_value: 85}\n  gates: [{min_delta: 2}]\n")
    problems = _problems(project)
    assert len(problems) == 2 and "eval.gate.min_value" in problems[0] and "less than or equal to 1" in problems[0]
    assert "eval.gates[0].min_delta" in problems[1]


def test_a_gate_on_a_suite_that_is_not_evaluated_stops_before_any_stage(tmp_path):
    from tunesmith.pipeline.preparation import prepare

    cfg, project = load_config(write(tmp_path, "eval:\n  gates: [{metric: general.prompt_strict_accuracy}]\n"))
    with pytest.raises(TunesmithError) as info:
        prepare(cfg, project, with_suites=False)
    problem = info.value.problems[0]
    assert problem.where == "eval.gates[0].metric" and "general probe is off" in problem.message
    assert "eval.general_probe: true" in problem.hint and not (project / ".tunesmith").exists()


def test_a_key_written_twice_is_an_error_naming_the_second_line(tmp_path):
    project = write(tmp_path, "train:\n  lr: 0.001\n  epochs: 2\n  lr: 0.01\n")
    with pytest.raises(TunesmithError) as info:
        load_config(project)
    (problem,) = info.value.problems
    assert problem.where == f"{project / 'tunesmith.yaml'}:4" and "`lr` is already set on line 2" in problem.message
    with pytest.raises(TunesmithError, match="already set on line 1"):
        load_config(write(tmp_path, "train: {lr: 0.1}\neval: {}\ntrain: {epochs: 2}\n"))
    # a merged mapping's keys may be overridden, as YAML means them to be
    merged = "eval:\n  gate: &g {min_delta: 0.1}\n  gates: [{<<: *g, min_delta: 0.2}]\n"
    assert load_config(write(tmp_path, merged))[0].eval.gates[0].min_delta == 0.2


def test_an_unreadable_config_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "tunesmith.yaml").mkdir()
    (problem,) = _problems_of(lambda: load_config(tmp_path))
    assert problem.where == str(tmp_path / "tunesmith.yaml") and problem.message == "is a directory"
    other = tmp_path / "other"
    other.mkdir()
    write(other, "{}\n")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr("pathlib.Path.read_bytes", denied)
    (problem,) = _problems_of(lambda: load_config(other))
    assert problem.where == str(other / "tunesmith.yaml") and problem.message == "permission denied"
    assert "permissions" in problem.hint


def _problems_of(call):
    with pytest.raises(TunesmithError) as info:
        call()
    return info.value.problems


def test_a_mistake_in_an_override_is_blamed_on_the_override(tmp_path):
    project = write(tmp_path, "train:\n  lr: 0.001\n")
    (problem,) = _problems_of(lambda: load_config(project, ["train.lrr=0.1"]))
    assert problem.where == "--set train.lrr=0.1" and problem.hint == "did you mean `lr`?"
    (problem,) = _problems_of(lambda: load_config(project, ["train={epochs: 0}"]))
    assert problem.where == "--set train={epochs: 0}: train.epochs"
    (problem,) = _problems_of(lambda: load_config(write(tmp_path, "train:\n  lrr: 1\n"), ["train.lr=0.1"]))
    assert problem.where == f"{project / 'tunesmith.yaml'}:2 [train.lrr]"  # the file's line of the key


def test_config_problems_name_yaml_paths_not_pydantic_types(tmp_path):
    project = write(
        tmp_path,
        "train:\n  epochs: three\n  oversample: {out_of_scope: 0}\n  lora: {target_modules: 5}\n"
        "  grpo: {max_completion_tokens: lots}\neval:\n  baselines: [classifer]\n  suites: [{pth: eval/a.jsonl}]\n"
        "  general_probe_limit: 0\ntask:\n  json_schema: 5\n",
    )
    problems = _problems_of(lambda: load_config(project))
    located = [re.fullmatch(r".*tunesmith\.yaml:(\d+) \[(.+)\]", p.where).groups() for p in problems]
    where = [path for _, path in located]
    lines = {path: int(line) for line, path in located}  # each mistake's own line in the file
    assert lines == {
        "train.epochs": 2,
        "train.oversample.out_of_scope": 3,
        "train.lora.target_modules": 4,
        "train.grpo.max_completion_tokens": 5,
        "eval.baselines[0]": 7,
        "eval.suites[0].pth": 8,
        "eval.general_probe_limit": 9,
        "task.json_schema": 11,
    }
    assert sorted(where) == sorted(
        [
            "task.json_schema",
            "eval.suites[0].pth",
            "eval.general_probe_limit",
            "eval.baselines[0]",
            "train.lora.target_modules",
            "train.grpo.max_completion_tokens",
            "train.oversample.out_of_scope",
            "train.epochs",
        ]
    )  # one problem per mistake
    by = dict(zip(where, problems))
    assert by["eval.suites[0].pth"].hint == "did you mean `path`?"
    assert by["train.epochs"].message == "Input should be a valid number or 'auto' (got 'three')"
    assert by["task.json_schema"].message == "Input should be a valid string or a valid dictionary (got 5)"
    assert "greater than or equal to 1" in by["train.oversample.out_of_scope"].message


def test_yes_and_no_are_not_numbers(tmp_path):
    project = write(
        tmp_path,
        "train:\n  batch_size: true\n  general_kl: yes\n  epochs: on\n  oversample: {other: true}\n"
        "eval:\n  gate: {min_value: on}\n  general_probe: true\nmodel: {trust_remote_code: yes}\n",
    )
    problems = _problems_of(lambda: load_config(project))
    where = sorted(re.search(r"\[(.+)\]$", p.where).group(1) for p in problems)
    assert where == ["eval.gate.min_value", "train.batch_size", "train.epochs", "train.general_kl", "train.oversample"]
    assert all("true/false" in p.message for p in problems)
    assert TrainConfig(batch_size=4, general_kl=1).general_kl == 1.0  # numbers stay numbers


def test_a_file_that_is_not_yaml_is_not_read_as_the_config(tmp_path):
    data = tmp_path / "three.jsonl"
    data.write_text('{"messages": []}\n')
    (problem,) = _problems_of(lambda: load_config(data))
    assert problem.where == str(data) and problem.message == "is a file, not a project directory"
    notes = tmp_path / "notes.md"
    notes.write_text("# notes\n")
    assert _problems_of(lambda: load_config(notes))[0].message == "is a file, not a project directory"
    named = tmp_path / "other.yml"
    named.write_text("train: {lr: 0.01}\n")
    assert load_config(named)[0].train.lr == 0.01  # a config file by any .yaml/.yml name still reads


def test_the_eval_steps_default_is_described_as_the_trainer_does_it():
    text = TrainConfig.model_fields["eval_steps"].description
    assert "about two evaluations per epoch" in text


def test_the_metric_names_a_config_may_name_are_those_an_evaluation_measures():
    from tunesmith.config import metrics
    from tunesmith.eval import compare, evaluate

    keys = ("task_correct", "format_valid", "hit_token_limit", "behavior_correct", "hallucinated", "prompt_strict")
    assert {evaluate.metric_name(k) for k in (*keys, "prompt_loose")} == set(metrics.CASE_METRICS)
    assert metrics.SLICE_METRICS == compare.SLICE_METRICS and set(metrics.CASE_METRICS) >= compare.LOWER_IS_BETTER
    details = {"instructions": {"ids": ["a"], "strict": [True], "loose": [True]}}
    row = {"scores": {"task_correct": True}, "output": "no", "latency_s": 1.0, "new_tokens": 3, "details": details}
    rows = [{**row, "behavior": b} for b in ("refuse", "escalate", "clarify", "abstain")]
    measured = set(evaluate.aggregate(rows, hourly_usd=1.0)) - {"cases"}
    assert measured <= set(metrics.CASE_METRICS) | set(metrics.SUITE_METRICS)
