"""Column mapping (`data.columns`, `data convert --prompt-column ...`): rows read through the fields the user names,
and every field that is missing or of the wrong type named with its file, line and the fields the row has."""

import json

import pytest

from conftest import write_jsonl
from tunesmith.config import ColumnsConfig, load_config
from tunesmith.data.audit import check_files
from tunesmith.data.findings import Code, Severity
from tunesmith.data.formats import load_records, to_record
from tunesmith.errors import TunesmithError


def test_a_mapping_reads_prompt_reply_and_system_fields():
    cols = ColumnsConfig(prompt="q", reply="a", system="sys")
    rec = to_record({"q": "2+2?", "a": 4, "sys": "Be terse.", "id": 9, "extra": 1}, "d.jsonl", 5, columns=cols)
    assert rec.messages == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]
    assert (rec.format, rec.where, rec.id, rec.unknown_keys) == ("columns", "d.jsonl:5", "9", ["extra"])


def test_a_null_system_cell_is_no_system_prompt():
    rec = to_record(
        {"q": "hi", "a": "hello", "sys": None}, "d", 1, columns=ColumnsConfig(prompt="q", reply="a", system="sys")
    )
    assert [m["role"] for m in rec.messages] == ["user", "assistant"]


def test_a_label_becomes_the_reply_as_json_under_the_key():
    cols = ColumnsConfig(prompt="utterance", label="intent", json_key="intent")
    rec = to_record({"utterance": "card lost", "intent": " lost_card "}, "d", 1, columns=cols)
    assert json.loads(rec.reply) == {"intent": "lost_card"}
    bare = to_record(
        {"utterance": "card lost", "intent": 3}, "d", 1, columns=ColumnsConfig(prompt="utterance", label="intent")
    )
    assert bare.reply == "3"


def test_a_mapping_reads_preference_pairs_with_and_without_a_prompt_field():
    cols = ColumnsConfig(prompt="question", chosen="good", rejected="bad")
    rec = to_record({"question": "Capital of France?", "good": "Paris.", "bad": "Lyon."}, "d", 1, columns=cols)
    assert rec.prompt == [{"role": "user", "content": "Capital of France?"}] and rec.reply == "Paris."
    assert rec.rejected == [{"role": "assistant", "content": "Lyon."}]
    implicit = ColumnsConfig(chosen="good", rejected="bad")
    rec = to_record(
        {"good": "\n\nHuman: hi\n\nAssistant: hello", "bad": "\n\nHuman: hi\n\nAssistant: go"}, "d", 1, columns=implicit
    )
    assert rec.prompt == [{"role": "user", "content": "hi"}] and rec.rejected[-1]["content"] == "go"


def test_a_mapping_reads_every_row_even_one_in_a_known_format(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "hi", "completion": "x", "out": "hello"}])
    (rec,) = load_records([path], columns=ColumnsConfig(prompt="prompt", reply="out"))
    assert rec.reply == "hello" and rec.unknown_keys == ["completion"]


def test_a_missing_field_names_file_line_and_the_fields_the_row_has(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "a"}, {"question": "q2", "solution": "b"}])
    with pytest.raises(TunesmithError) as exc:
        load_records([path], columns=ColumnsConfig(prompt="question", reply="answer"))
    (problem,) = exc.value.problems
    assert problem.where == f"{path}:2 [answer]"
    assert "it has: question, solution" in problem.message and "data.columns" in problem.hint


@pytest.mark.parametrize(
    "row,field",
    [
        ({"q": ["not", "messages"], "a": "x"}, "q[0]"),
        ({"q": [{"role": "user", "content": 5}], "a": "x"}, "q[0].content"),
        ({"q": {"text": "hi"}, "a": "x"}, "q"),
        ({"q": "hi", "a": ["x"]}, "a"),
    ],
)
def test_a_field_of_the_wrong_type_is_named(row, field):
    from tunesmith.data.formats import RecordError

    with pytest.raises(RecordError) as exc:
        to_record(row, "d", 1, columns=ColumnsConfig(prompt="q", reply="a"))
    assert exc.value.field == field


def test_a_preference_error_names_the_users_field():
    from tunesmith.data.formats import RecordError

    with pytest.raises(RecordError) as exc:
        to_record(
            {"q": "hi", "good": "same", "bad": "same"},
            "d",
            1,
            columns=ColumnsConfig(prompt="q", chosen="good", rejected="bad"),
        )
    assert exc.value.field == "bad"


@pytest.mark.parametrize(
    "fields,says",
    [
        ({"prompt": "q"}, "exactly one reply"),
        ({"prompt": "q", "reply": "a", "label": "l"}, "exactly one reply"),
        ({"prompt": "q", "chosen": "c"}, "go together"),
        ({"reply": "a"}, "name the `prompt` field"),
        ({"prompt": "q", "reply": "a", "json_key": "k"}, "`json_key` applies to `label`"),
    ],
)
def test_a_mapping_that_does_not_hold_together_is_a_config_error_with_its_path(tmp_path, fields, says):
    (tmp_path / "tunesmith.yaml").write_text(json.dumps({"data": {"columns": fields}}))
    with pytest.raises(TunesmithError) as exc:
        load_config(tmp_path)
    (problem,) = exc.value.problems
    assert problem.where.endswith("tunesmith.yaml:1 [data.columns]") and says in problem.message


def test_a_misspelt_mapping_key_gets_a_did_you_mean(tmp_path):
    (tmp_path / "tunesmith.yaml").write_text(json.dumps({"data": {"columns": {"promt": "q", "reply": "a"}}}))
    with pytest.raises(TunesmithError) as exc:
        load_config(tmp_path)
    assert any("`prompt`" in p.hint for p in exc.value.problems)


def test_the_audit_reads_through_the_mapping_in_every_worker_count(tmp_path):
    rows = [{"q": f"question number {i} about cards", "a": f"answer {i % 3}"} for i in range(40)]
    rows[7] = {"q": "no answer here"}
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    cols = ColumnsConfig(prompt="q", reply="a")
    one, two = (check_files([path], workers=w, columns=cols, keep=False) for w in (1, 2))
    assert [f.to_json() for f in one.findings] == [f.to_json() for f in two.findings]
    bad = [f for f in one.findings if f.code == Code.BAD_RECORD]
    assert [(f.where, f.field, f.severity) for f in bad] == [(f"{path}:8", "a", Severity.ERROR)]
    assert (one.records, one.n_rejected) == (40, 1)


def test_a_projects_data_commands_read_through_its_mapping(tmp_path):
    from tunesmith.data.convert import resolve_data_paths

    write_jsonl(tmp_path / "data" / "train.jsonl", [{"q": "2+2?", "a": "4"}, {"q": "3+3?", "a": "6"}])
    (tmp_path / "tunesmith.yaml").write_text("data:\n  columns: {prompt: q, reply: a}\n")
    files, fmt, base, columns = resolve_data_paths([tmp_path])
    assert columns == ColumnsConfig(prompt="q", reply="a")
    assert [r.reply for r in load_records(files, fmt, base, columns)] == ["4", "6"]
