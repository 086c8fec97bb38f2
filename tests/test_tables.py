"""Parquet, Arrow, saved `datasets` directories and JSON-array files: read as records that keep their file and
1-based row, through the same checks as JSONL, with bad rows and columns named."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tunesmith.config import ColumnsConfig, load_config
from tunesmith.data.audit import check_files
from tunesmith.data.findings import Code
from tunesmith.data.formats import load_records
from tunesmith.data.tables import is_table, scan_rows
from tunesmith.errors import TunesmithError
from tunesmith.files import data_sha256

GSM = {
    "question": [
        "Ann has 3 apples and buys 2. How many?",
        "Bo reads 4 pages a day. Pages in 3 days?",
        "A box holds 6 eggs. Eggs in 5 boxes?",
    ],
    "answer": ["3 + 2 = 5\n#### 5", "4 * 3 = 12\n#### 12", "6 * 5 = 30\n#### 30"],
}


def write_parquet(path, columns: dict) -> object:
    pq.write_table(pa.table(columns), path)
    return path


def write_arrow_stream(path, columns: dict) -> object:
    table = pa.table(columns)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return path


def test_parquet_rows_are_recognised_records_with_their_row(tmp_path):
    path = write_parquet(tmp_path / "gsm8k.parquet", GSM)
    recs = load_records([path], base=tmp_path)
    assert [r.where for r in recs] == ["gsm8k.parquet:1", "gsm8k.parquet:2", "gsm8k.parquet:3"]
    assert recs[2].format == "columns" and recs[2].reply.endswith("#### 30")


def test_an_arrow_stream_file_and_a_saved_dataset_read_like_parquet(tmp_path):
    import datasets

    arrow = write_arrow_stream(tmp_path / "gsm8k.arrow", GSM)
    saved = tmp_path / "gsm8k_saved"
    datasets.Dataset.from_dict(GSM).save_to_disk(str(saved))
    assert is_table(arrow) and is_table(saved)
    for path in (arrow, saved):
        recs = load_records([path])
        assert [r.line for r in recs] == [1, 2, 3] and recs[0].prompt[-1]["content"].startswith("Ann has")


def test_a_message_column_of_structs_reads_without_the_nulls_arrow_fills_in(tmp_path):
    messages = [
        [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"type": "function", "function": {"name": "weather", "arguments": "{}"}}],
            },
            {"role": "tool", "content": "sunny"},
            {"role": "assistant", "content": "Sunny."},
        ],
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
    ]
    path = write_parquet(tmp_path / "chat.parquet", {"messages": messages})
    recs = load_records([path])
    assert recs[1].messages == messages[1] and not recs[1].unknown_keys  # no `tool_calls: None` left behind
    assert recs[0].messages[1]["tool_calls"][0]["function"]["name"] == "weather"


def test_a_nested_column_of_the_wrong_type_names_the_row_and_column(tmp_path):
    path = write_parquet(
        tmp_path / "bad.parquet",
        {
            "messages": [
                [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
                [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
            ],
            "tags": [["a"], None],
        },
    )
    bad = write_parquet(tmp_path / "nested.parquet", {"question": ["q1", "q2"], "answer": [["x"], ["y", "z"]]})
    with pytest.raises(TunesmithError) as exc:
        load_records([bad])
    assert [p.where for p in exc.value.problems] == [f"{bad}:1 [answer]", f"{bad}:2 [answer]"]
    assert "got list" in exc.value.problems[0].message
    assert len(load_records([path])) == 2  # a null list cell is no tags, not an error
    report = check_files([bad], keep=False)
    assert [(f.code, f.where, f.field) for f in report.findings if f.code == Code.BAD_RECORD] == [
        (Code.BAD_RECORD, f"{bad}:1", "answer"),
        (Code.BAD_RECORD, f"{bad}:2", "answer"),
    ]


def test_tables_read_through_a_mapping_and_a_missing_column_is_named(tmp_path):
    path = write_parquet(tmp_path / "intents.parquet", {"utterance": ["card lost", "refund"], "intent": [3, 7]})
    cols = ColumnsConfig(prompt="utterance", label="intent", json_key="intent")
    assert [json.loads(r.reply) for r in load_records([path], columns=cols)] == [{"intent": "3"}, {"intent": "7"}]
    with pytest.raises(TunesmithError) as exc:
        load_records([path], columns=ColumnsConfig(prompt="text", label="intent"))
    assert exc.value.problems[0].where == f"{path}:1 [text]"
    assert "it has: intent, utterance" in exc.value.problems[0].message


def test_the_parallel_audit_reads_tables_as_the_serial_one_does(tmp_path):
    rows = {"question": [f"What is {i} plus {i}?" for i in range(30)], "answer": [f"#### {2 * i}" for i in range(30)]}
    path = write_parquet(tmp_path / "sums.parquet", rows)
    one, two = (check_files([path], workers=w, keep=False) for w in (1, 2))
    assert one.records == two.records == 30
    assert [f.to_json() for f in one.findings] == [f.to_json() for f in two.findings]


def test_a_json_array_file_is_read_as_records_by_row(tmp_path):
    path = tmp_path / "alpaca.json"
    rows = [{"instruction": "Add.", "input": "1 2", "output": "3"}, {"instruction": "Say hi.", "output": "hi"}]
    path.write_text("\ufeff" + json.dumps(rows, indent=2), encoding="utf-8")
    recs = load_records([path])
    assert [(r.format, r.line) for r in recs] == [("alpaca", 1), ("alpaca", 2)]


def test_a_broken_json_array_names_the_row_and_where_in_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[{"question": "q", "answer": "a"},\n 7,\n {"question": "q2" "answer": "b"}]', encoding="utf-8")
    items = list(scan_rows(path))
    assert [n for n, _ in items] == [1, 2, 3]
    assert items[1][1].message == "expected a JSON object, got int"
    assert "line 3 column" in items[2][1].message
    report = check_files([path], keep=False)
    assert [(f.code, f.where) for f in report.findings if f.code == Code.BAD_LINE] == [
        (Code.BAD_LINE, f"{path}:2"),
        (Code.BAD_LINE, f"{path}:3"),
    ]


def test_a_file_that_is_not_parquet_is_one_problem_naming_it(tmp_path):
    path = tmp_path / "fake.parquet"
    path.write_bytes(b"not a parquet file at all")
    with pytest.raises(TunesmithError) as exc:
        load_records([path])
    (problem,) = exc.value.problems
    assert problem.where == str(path) and "Parquet" in problem.hint


def test_a_saved_dataset_with_splits_asks_for_one_split(tmp_path):
    import datasets

    saved = tmp_path / "gsm8k"
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict(GSM), "test": datasets.Dataset.from_dict(GSM)}
    ).save_to_disk(str(saved))
    with pytest.raises(TunesmithError) as exc:
        load_records([saved])
    assert "train" in exc.value.problems[0].message and str(saved / "train") in exc.value.problems[0].hint


def test_a_project_reads_a_saved_dataset_and_hashes_its_contents(tmp_path):
    import datasets

    from tunesmith.pipeline import data_files

    saved = tmp_path / "data" / "gsm8k"
    datasets.Dataset.from_dict(GSM).save_to_disk(str(saved))
    (tmp_path / "tunesmith.yaml").write_text("data:\n  train: [data/*]\n")
    cfg, project = load_config(tmp_path)
    assert data_files(cfg, project) == [saved]
    before = data_sha256(saved)
    datasets.Dataset.from_dict({**GSM, "answer": ["#### 1"] * 3}).save_to_disk(str(tmp_path / "other"))
    assert data_sha256(tmp_path / "other") != before == data_sha256(saved)
