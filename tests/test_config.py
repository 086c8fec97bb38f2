import json
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
    assert set(defs["LoraOptions"]["properties"]) == {"r", "alpha", "dropout", "dora", "rslora", "target_modules"}
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
