"""Fuzzing the loaders with hypothesis: whatever bytes or JSON a file holds, reading and checking it yields records
and findings (or one clear TunesmithError for a file that is not text at all), never a traceback."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import RECORD_KEYS
from tunesmith.data.audit import run_checks
from tunesmith.data.findings import Finding
from tunesmith.data.formats import RecordError, iter_records, to_record
from tunesmith.data.records import Record
from tunesmith.errors import TunesmithError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
keys = st.sampled_from(RECORD_KEYS) | st.text(max_size=6)
shaped = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5), max_leaves=20
)
roles = st.sampled_from(["system", "user", "assistant", "tool", "human", "gpt", "wizard"])
messages = st.lists(st.fixed_dictionaries({"role": roles, "content": st.text(max_size=40)}), min_size=0, max_size=5)


tools = st.lists(
    st.just({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}})
    | st.fixed_dictionaries(
        {
            "function": st.just("f")
            | st.fixed_dictionaries({"name": st.text(max_size=3) | st.integers(), "parameters": json_values})
        }
    )
    | json_values,
    max_size=3,
)
calls = st.fixed_dictionaries(
    {"function": st.fixed_dictionaries({"name": st.sampled_from(["f", "g"]), "arguments": json_values})}
)


def _read_and_check(path):
    items = list(iter_records([path]))
    assert all(isinstance(i, (Record, Finding)) for i in items)
    report = run_checks(items)
    assert report.records == len(items)


@FUZZ
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes(tmp_path, data):
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(data)
    try:
        _read_and_check(path)
    except TunesmithError as err:  # binary or empty: a file-level error naming the file
        assert err.problems and err.problems[0].where == str(path)


@FUZZ
@given(lines=st.lists(json_values | shaped, min_size=1, max_size=6))
def test_arbitrary_json_lines(tmp_path, lines):
    path = tmp_path / "fuzz.jsonl"
    path.write_text("".join(json.dumps(v) + "\n" for v in lines), encoding="utf-8")
    _read_and_check(path)


@FUZZ
@given(obj=shaped.filter(lambda v: isinstance(v, dict)))
def test_to_record_raises_only_record_errors(obj):
    try:
        to_record(obj, "f.jsonl", 1)
    except RecordError as exc:
        assert exc.message


@FUZZ
@given(msgs=messages, tags=st.lists(st.text(max_size=5), max_size=3))
def test_conversations_of_any_shape_are_checked(msgs, tags):
    records = [Record(msgs, "f.jsonl", i + 1, tags=tags) for i in range(3)] if msgs else []
    report = run_checks(records, task_type="chat", label_of=lambda r: r.reply)
    assert report.records == len(records)


@FUZZ
@given(declared=tools, called=st.lists(calls, min_size=1, max_size=2))
def test_tool_declarations_and_calls_of_any_shape(declared, called):
    obj = {
        "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "", "tool_calls": called}],
        "tools": declared,
    }
    try:
        record = to_record(obj, "f.jsonl", 1)
    except RecordError:
        return  # e.g. arguments given as a string that is not JSON: reported as bad_record
    assert run_checks([record]).records == 1
