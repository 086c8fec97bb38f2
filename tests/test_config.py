import json

import pytest

from tunesmith.config import Config, apply_updates, config_schema, load_config, update_overrides
from tunesmith.errors import TunesmithError


def write(tmp_path, text):
    (tmp_path / "tunesmith.yaml").write_text(text)
    return tmp_path


def test_defaults_are_valid_and_follow_the_guidance():
    cfg = Config()
    # passes adapt to the data set's size, and the validation split decides the checkpoint and when to stop
    assert cfg.train.epochs == "auto" and cfg.train.patience and 8 <= cfg.train.lora_r <= 16
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
    cfg = apply_updates(Config(), {"train": {"lora_r": 8, "dora": True}, "data": {"max_seq_len": 256}})
    assert (cfg.train.lora_r, cfg.train.dora, cfg.data.max_seq_len) == (8, True, 256)
    with pytest.raises(TunesmithError) as info:
        apply_updates(Config(), {"train": {"lora_r": "banana"}})
    assert "train.lora_r" in str(info.value.problems)
    # as --set strings for the APIs that take only those: each parses back to the same value and type
    overrides = update_overrides({"train": {"method": "qlora", "dora": True, "nproc": 2}, "tune": {"storage": "on"}})
    assert overrides == ['train.method="qlora"', "train.dora=true", "train.nproc=2", 'tune.storage="on"']
    (tmp_path / "tunesmith.yaml").write_text("{}\n")
    cfg, _ = load_config(tmp_path, overrides)
    assert (cfg.train.method, cfg.train.dora, cfg.train.nproc, cfg.tune.storage) == ("qlora", True, 2, "on")


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
