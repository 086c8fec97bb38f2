import json

import pytest

from conftest import write_jsonl
from tunesmith.data.formats import RecordError, load_records, read_labeled, to_record
from tunesmith.data.records import Record
from tunesmith.errors import TunesmithError


def test_every_supported_format_becomes_messages(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
        {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}], "system": "s"},
        {"instruction": "a", "input": "ctx", "output": "b"},
        {"prompt": "a", "completion": "b"},
        {"prompt": [{"role": "user", "content": "a"}], "completion": [{"role": "assistant", "content": "b"}]},
    ]
    recs = load_records([write_jsonl(tmp_path / "mixed.jsonl", rows)])
    assert [r.messages[-1] for r in recs] == [{"role": "assistant", "content": "b"}] * 5
    assert recs[1].messages[0] == {"role": "system", "content": "s"}
    assert recs[2].messages[0]["content"] == "a\n\nctx"
    assert [r.line for r in recs] == [1, 2, 3, 4, 5]


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a",\n\n[1, 2]\n')
    with pytest.raises(TunesmithError) as info:
        load_records([path])
    wheres = [p.where for p in info.value.problems]
    assert f"{path}:2" in wheres and f"{path}:4" in wheres
    assert "not valid JSON" in str(info.value)


def test_bad_field_is_named(tmp_path):
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]},
            {"messages": [{"role": "user", "content": 5}]},
            {"text": "what format is this"},
        ],
    )
    with pytest.raises(TunesmithError) as info:
        load_records([path])
    text = str(info.value)
    assert "d.jsonl:1 [messages[1].role]" in text and "unknown role 'robot'" in text
    assert "d.jsonl:2 [messages[0].content]" in text
    assert "d.jsonl:3" in text and "unknown record format" in text


def test_tool_calls_are_kept_intact(tmp_path):
    tools = [{"type": "function", "function": {"name": "get_order", "parameters": {"type": "object"}}}]
    row = {
        "tools": tools,
        "messages": [
            {"role": "user", "content": "where is 42"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_order", "arguments": '{"id": 42}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": '{"status": "shipped"}'},
            {"role": "assistant", "content": "It shipped."},
        ],
    }
    rec = load_records([write_jsonl(tmp_path / "t.jsonl", [row])])[0]
    assert rec.tools == tools
    assert rec.messages[1]["tool_calls"][0]["function"]["arguments"] == {"id": 42}
    assert rec.messages[2]["tool_call_id"] == "c1"


def test_provenance_survives_a_round_trip(tmp_path):
    rec = Record(
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "orig.jsonl", 7, tags=["typo"]
    )
    again = load_records([write_jsonl(tmp_path / "split.jsonl", [rec.to_json()])])[0]
    assert (again.source, again.line, again.tags) == ("orig.jsonl", 7, ["typo"])


def test_a_preference_pairs_rejected_reply_is_part_of_its_content_hash():
    """The review's sample keeps each record's hash to notice a changed set: a pair whose rejected reply changed
    has changed. A record without one hashes as before (the review states already written stay valid)."""
    import hashlib

    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    plain = Record(messages=messages, source="a.jsonl", line=1)
    blob = json.dumps({"messages": messages, "tools": None}, sort_keys=True, ensure_ascii=False)
    assert plain.content_hash() == hashlib.sha256(blob.encode()).hexdigest()
    one, other = ([{"role": "assistant", "content": reply}] for reply in ("Go away.", "No."))
    hashes = {Record(messages=messages, source="a.jsonl", line=1, rejected=r).content_hash() for r in (one, other)}
    assert len(hashes) == 2 and plain.content_hash() not in hashes


def test_labeled_csv_becomes_classification_conversations(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text('text,category\n"card charged, twice",billing\n"app crashes\non start",technical\n,billing\n')
    with pytest.raises(TunesmithError) as info:
        read_labeled(path, "text", "category")
    assert f"{path}:5 [text]" in str(info.value)  # the quoted newline makes the empty row's line 5
    path.write_text('text,category\n"card charged, twice",billing\n"app crashes\non start",technical\n')
    recs = read_labeled(path, "text", "category", system="Classify.", json_key="label")
    assert recs[0].messages == [
        {"role": "system", "content": "Classify."},
        {"role": "user", "content": "card charged, twice"},
        {"role": "assistant", "content": json.dumps({"label": "billing"})},
    ]
    assert [r.line for r in recs] == [2, 3]


@pytest.mark.parametrize(
    "row,prompt,reply",
    [
        ({"question": "2+2?", "answer": "#### 4"}, "2+2?", "#### 4"),
        ({"input": "hola", "output": "hello"}, "hola", "hello"),
        ({"query": "reset pin", "response": "Open settings."}, "reset pin", "Open settings."),
        ({"prompt": "hi", "response": "hello"}, "hi", "hello"),
        ({"text": "card lost", "label": 7}, "card lost", "7"),
    ],
)
def test_common_column_pairs_are_read_as_prompt_and_reply(row, prompt, reply):
    from tunesmith.data.audit import run_checks
    from tunesmith.data.findings import Severity

    rec = to_record(row, "d.jsonl", 1)
    assert rec.format == "columns" and (rec.prompt[-1]["content"], rec.reply) == (prompt, reply)
    assert not rec.unknown_keys
    report = run_checks([rec])
    assert not [f for f in report.findings if f.severity == Severity.ERROR]


def test_a_common_pair_keeps_its_system_column_and_reports_the_fields_it_drops():
    rec = to_record({"question": "2+2?", "answer": "4", "system": "Be terse.", "source": "gsm"}, "d.jsonl", 1)
    assert rec.messages[0] == {"role": "system", "content": "Be terse."} and rec.unknown_keys == ["source"]


@pytest.mark.parametrize(
    "row,fmt",
    [
        ({"instruction": "Add.", "input": "1 2", "output": "3"}, "alpaca"),  # input/output inside an Alpaca row
        ({"prompt": "Capital?", "completion": " Paris", "response": "x"}, "prompt_completion"),
        ({"prompt": "Capital?", "chosen": "Paris.", "rejected": "Lyon.", "response": "x"}, "preference"),
    ],
)
def test_known_formats_take_precedence_over_the_common_pairs(row, fmt):
    assert to_record(row, "d.jsonl", 1).format == fmt


def test_a_row_with_two_common_pairs_asks_for_a_mapping():
    with pytest.raises(RecordError) as exc:
        to_record({"question": "q", "answer": "a", "input": "i", "output": "o"}, "d.jsonl", 1)
    assert exc.value.field == "input" and "question/answer and input/output" in exc.value.message
    assert "data.columns" in exc.value.hint


def test_an_unknown_shape_names_the_pairs_it_would_take_and_the_fields_it_has():
    with pytest.raises(RecordError) as exc:
        to_record({"q": "x", "a": "y"}, "d.jsonl", 3)
    assert exc.value.message == "unknown record format (keys: a, q)"
    assert "question/answer" in exc.value.hint and "text/label" in exc.value.hint
    assert "data.columns" in exc.value.hint
