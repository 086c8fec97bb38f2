"""Property-based fuzzing of every reader of user files: at least 1,000 generated cases each, zero tracebacks, and
every error names the file, the line and the field.

    .venv/bin/python -m pytest -q tests/test_fuzz_readers.py        # the figures print in the terminal summary

Each reader gets files that start from a valid example of its format and are then broken the way real files break:
values of the wrong type, missing / extra / misspelt keys, nulls, huge and unicode and control-character strings,
deep nesting, huge integers, lone surrogates; and at the byte level a BOM, CRLF line ends, blank lines, a truncated
last line, non-UTF-8 bytes, NUL bytes, an empty file, a corrupt `.gz`. A reader either returns or raises
`TunesmithError`; anything else is a traceback and fails the test. What "names the file, line and field" means,
reader by reader (the conventions `tunesmith.errors.Problem.where` already follows):

- JSONL data (ChatML `messages`, OpenAI fine-tuning, ShareGPT, Alpaca, prompt/completion, preference pairs, the
  common prompt/reply column pairs and rows read through a `data.columns` mapping, plain or `.jsonl.gz`), labeled
  JSONL, eval suites: `FILE:LINE [field]`; JSON-array `.json` files the same with the 1-based row for the line. Only a
  problem with the whole line (not UTF-8,
  not JSON, nested too deeply, not an object, over the size limit, no known record format) may leave out
  `[field]`; only a problem with the whole file (empty, binary, not gzip, duplicate case ids) may be just `FILE`.
  A suite line that cannot be read becomes a case whose `error` starts with `FILE:LINE [field]: `.
- CSV: `FILE:LINE [column]`, or `FILE:LINE` for a line the CSV parser (or UTF-8 decoding) rejects.
- The data audit (`check_files`): every `bad_line` / `bad_record` finding has `where == FILE:LINE`, and a
  `bad_record` names its field unless the record has no known format.
- `tunesmith.yaml`: `FILE:LINE` for YAML that does not parse (or is not UTF-8), else `FILE: yaml.path[i].field`.
- Review state (`review.json`): `FILE [field.path[i]]`, or `FILE:LINE` for JSON that does not parse; the journal:
  `JOURNAL:LINE` or `JOURNAL [seq N]`.
- `... and N more` (the cap on a long list of problems) has an empty `where` and is allowed as it is.

Line numbers must lie within the file. The figures (cases per reader, returned vs raised TunesmithError, time) are
printed at the end of the run (terminal summary section "reader fuzzing").
"""

from __future__ import annotations

import copy
import gzip
import json
import re
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import RECORD_KEYS
from tunesmith.config import ColumnsConfig, TaskConfig, load_config
from tunesmith.data.audit import check_files
from tunesmith.data.findings import Code
from tunesmith.data.formats import FORMATS, load_records, read_labeled
from tunesmith.data.records import Record
from tunesmith.errors import TunesmithError
from tunesmith.eval.suite import PROBE, load_suite
from tunesmith.review.state import JOURNAL_FILE, STATE_FILE, load_state, read_state

CASES = 1000
# derandomize: the same 1,000+ cases in every run, so CI is reproducible (new seeds are explored by hand with
# HYPOTHESIS_SEED-style runs: `pytest tests/test_fuzz_readers.py -p hypothesis --hypothesis-seed=N`).
FUZZ = settings(
    max_examples=CASES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)
WORK = Path(tempfile.mkdtemp(prefix="tunesmith-fuzz-"))

# ------------------------------------------------------------------------------------------------- the figures

FIGURES: dict[str, Counter] = defaultdict(Counter)
SECONDS: dict[str, float] = defaultdict(float)


def _call(reader: str, fn):
    """Run one case; count whether it returned or raised TunesmithError. Any other exception propagates (a bug)."""
    start = time.perf_counter()
    try:
        out = fn()
    except TunesmithError as err:
        FIGURES[reader]["raised"] += 1
        return None, err
    finally:
        SECONDS[reader] += time.perf_counter() - start
    FIGURES[reader]["returned"] += 1
    return out, None


def figures_table() -> str:
    rows = [f"{'reader':<28}{'cases':>7}{'returned':>10}{'raised':>8}{'tracebacks':>12}{'seconds':>9}"]
    for name, c in FIGURES.items():
        n = c["returned"] + c["raised"]
        rows.append(f"{name:<28}{n:>7}{c['returned']:>10}{c['raised']:>8}{0:>12}{SECONDS[name]:>9.1f}")
    total = sum(c["returned"] + c["raised"] for c in FIGURES.values())
    rows.append(f"{'total':<28}{total:>7}{'':>30}{sum(SECONDS.values()):>9.1f}")
    return "\n".join(rows)


class _Summary:
    """Prints the figures in pytest's terminal summary (visible without -s)."""

    def pytest_terminal_summary(self, terminalreporter):
        if FIGURES:
            terminalreporter.write_sep("=", "reader fuzzing (hypothesis): cases per reader")
            terminalreporter.write_line(figures_table())


@pytest.fixture(scope="module", autouse=True)
def _figures_in_summary(request):
    name = "tunesmith-reader-fuzz-figures"
    if not request.config.pluginmanager.has_plugin(name):
        request.config.pluginmanager.register(_Summary(), name)
    yield


# ------------------------------------------------------------------------------------------ generic mutations

CONTROL = "".join(map(chr, range(0, 32))) + "\x7f\x85\u2028\u2029\ufeff\u200b"
short_weird_text = (
    st.text(max_size=12)
    | st.text(alphabet=st.sampled_from(CONTROL), max_size=6)
    | st.sampled_from(
        [
            "",
            " ",
            "\ud800",
            "\udfff",
            "é" * 3,
            "😀",
            "\u202e",
            "null",
            "true",
            "{",
            "[]",
            "\n\nHuman:",
            "\n\nAssistant:",
            "Human: hi",
            "a" * 5000,
        ]
    )
)
weird_text = short_weird_text | st.builds(lambda n: "x" * n, st.sampled_from([70_000, 140_000]))
numbers = st.integers() | st.sampled_from([10**30, -(10**30), 2**63, 0, -1]) | st.floats()
scalars = st.none() | st.booleans() | numbers | weird_text


def _nest(depth: int, kind: str):
    value: object = "deep"
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


deep = st.builds(_nest, st.sampled_from([30, 150]), st.sampled_from(["list", "dict"]))  # deeper: at the byte level
junk = (
    st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=6,
    )
    | deep
)
# PyYAML is pure Python here (~a second per 100 KB string): the config gets the same junk without huge strings.
small_junk = (
    st.recursive(
        st.none() | st.booleans() | numbers | short_weird_text,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=6,
    )
    | deep
)


def _paths(obj, prefix=()):
    """Every container in `obj` with the path to it."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)):
                out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            if isinstance(v, (dict, list)):
                out += _paths(v, prefix + (i,))
    return out


def _get(obj, path):
    for p in path:
        obj = obj[p]
    return obj


@st.composite
def mutated(draw, base, keys=(), max_mutations=3, junk=junk):
    """`base` (a valid object) with 0..max_mutations random mutations at random places."""
    obj = copy.deepcopy(draw(base))
    for _ in range(draw(st.integers(0, max_mutations))):
        if not isinstance(obj, dict):
            break
        node = _get(obj, draw(st.sampled_from(_paths(obj))))
        op = draw(st.sampled_from(["replace", "replace", "delete", "add", "rename", "null", "wrap", "empty"]))
        if isinstance(node, dict):
            slots = list(node)
            new_key = draw(st.sampled_from(list(keys)) | st.text(max_size=6)) if keys else draw(st.text(max_size=6))
        else:
            slots = list(range(len(node)))
            new_key = None
        if op == "add":
            if new_key is None:
                node.append(draw(junk))
            else:
                node[new_key] = draw(junk)
            continue
        if not slots:
            continue
        slot = draw(st.sampled_from(slots))
        if op == "replace":
            node[slot] = draw(junk)
        elif op == "null":
            node[slot] = None
        elif op == "wrap":
            node[slot] = [node[slot]] if draw(st.booleans()) else {"value": node[slot]}
        elif op == "empty":
            node[slot] = draw(st.sampled_from(["", [], {}, 0]))
        elif op == "delete":
            del node[slot]
        elif op == "rename" and isinstance(node, dict):
            node[str(slot)[:-1] + draw(st.sampled_from(["", "s", "_", "X"]))] = node.pop(slot)
    return obj


DEEP_LIST = b"[" * 5000 + b"]" * 5000
DEEP_DICT = b'{"messages": ' + b'{"a": ' * 3000 + b"1" + b"}" * 3001


@st.composite
def jsonl_bytes(draw, record, max_lines=4):
    """A JSONL file of mutated records, broken at the byte level now and then."""
    rows = draw(st.lists(record, min_size=0, max_size=max_lines))
    ascii_ = draw(st.booleans())
    lines = []
    for row in rows:
        text = json.dumps(row, ensure_ascii=ascii_)
        lines.append(text.encode("utf-8", "surrogatepass"))
    lines += draw(
        st.lists(
            st.sampled_from(
                [
                    b"",
                    b"   ",
                    b"not json",
                    b"[1, 2]",
                    b'"a string"',
                    b"42",
                    b"null",
                    b'{"messages": [',
                    b"\xff\xfe{}",
                    b'{"a": "caf\xe9"}',
                    b"{}",
                    b"\x00\x00",
                    b'{"n": ' + b"9" * 5000 + b"}",
                    DEEP_LIST,
                    DEEP_DICT,
                ]
            ),
            max_size=2,
        )
    )
    lines = draw(st.permutations(lines)) if lines else lines
    eol = draw(st.sampled_from([b"\n", b"\r\n", b"\n\n"]))
    data = eol.join(lines) + (eol if draw(st.booleans()) else b"")
    if data and draw(st.integers(0, 9)) == 0:  # a truncated last line (a crash mid-write)
        data = data[: draw(st.integers(0, len(data) - 1))]
    if draw(st.integers(0, 7)) == 0:
        data = b"\xef\xbb\xbf" + data
    return data


def _where_line(where: str, path: Path, lines: int) -> tuple[int, str | None] | None:
    """(line, field) when `where` is `PATH:LINE` or `PATH:LINE [field]` with LINE inside the file, else None."""
    m = re.fullmatch(re.escape(str(path)) + r":(\d+)(?: \[(.+)\])?", where, re.S)
    if not m or not 1 <= int(m.group(1)) <= lines:
        return None
    return int(m.group(1)), m.group(2)


def _lines(data: bytes) -> int:
    return max(1, data.count(b"\n") + 1)


WHOLE_LINE = (
    "not UTF-8",
    "not valid JSON",
    "JSON nested too deeply",
    "expected a JSON object",
    "line is ",
    "unknown record format",
    "cannot decompress",
)
FILE_LEVEL_TITLES = ("Empty data file", "Not a text file", "Cannot read data file")


def _assert_jsonl_error(err: TunesmithError, path: Path, lines: int, extra_file_level: tuple = ()) -> None:
    assert err.problems, err
    for p in err.problems:
        assert p.message, err
        if p.where == "" and p.message.startswith("... and "):
            continue
        if p.where == str(path):
            assert err.title in FILE_LEVEL_TITLES + extra_file_level or any(
                err.title.startswith(t) for t in extra_file_level
            ), err
            continue
        located = _where_line(p.where, path, lines)
        assert located is not None, f"no file:line in {p.where!r} ({err})"
        if located[1] is None:
            assert p.message.startswith(WHOLE_LINE), f"no [field] in {p.where!r}: {p.message}"


# -------------------------------------------------------------------------------------- JSONL training data


def msg(role, content):
    return {"role": role, "content": content}


CHATML = [
    {"messages": [msg("system", "Be brief."), msg("user", "hi"), msg("assistant", "hello")], "tags": ["a"], "id": 1},
    {
        "messages": [msg("user", "2+2?"), msg("assistant", "4"), msg("user", "and 3+3?"), msg("assistant", "6")],
        "meta": {"source": "orig.jsonl", "line": 7},
    },
    {"messages": [msg("user", "q"), msg("assistant", "good")], "rejected": [msg("assistant", "bad")]},
]
OPENAI = [
    {
        "messages": [
            msg("user", "Weather in Paris?"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            msg("assistant", "Sunny."),
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        "parallel_tool_calls": False,
    },
    {
        "messages": [
            msg("system", "You route tickets."),
            msg("user", "refund"),
            {"role": "assistant", "content": "billing", "weight": 1},
        ]
    },
]
SHAREGPT = [
    {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}], "system": "Be brief."},
    {
        "conversations": [
            {"from": "system", "value": "tools"},
            {"from": "human", "value": "time?"},
            {"from": "function_call", "value": '{"name": "now", "arguments": {}}'},
            {"from": "observation", "value": "12:00"},
            {"from": "gpt", "value": "noon"},
        ]
    },
]
ALPACA = [
    {"instruction": "Add the numbers.", "input": "1 2", "output": "3"},
    {"instruction": "Say hi.", "input": "", "output": "hi", "system": "Be kind."},
]
PROMPT_COMPLETION = [
    {"prompt": "The capital of France is", "completion": " Paris."},
    {"prompt": [msg("user", "hi")], "completion": [msg("assistant", "hello")]},
]
PREFERENCE = [
    {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon."},
    {"prompt": [msg("user", "hi")], "chosen": [msg("assistant", "hello")], "rejected": [msg("assistant", "go away")]},
    {"chosen": [msg("user", "hi"), msg("assistant", "hello")], "rejected": [msg("user", "hi"), msg("assistant", "no")]},
    {"chosen": "\n\nHuman: hi\n\nAssistant: hello there", "rejected": "\n\nHuman: hi\n\nAssistant: go away"},
]


def _record(templates):
    return mutated(st.sampled_from(templates), RECORD_KEYS)


@st.composite
def data_file(draw, templates, gz_ok=True):
    """(path, bytes written, physical lines) of a JSONL data file, sometimes gzipped (and then sometimes corrupt)."""
    data = draw(jsonl_bytes(_record(templates)))
    lines = _lines(data)
    if gz_ok and draw(st.integers(0, 5)) == 0:
        path = WORK / "data.jsonl.gz"
        packed = gzip.compress(data)
        how = draw(st.sampled_from(["ok", "ok", "truncate", "flip", "plain"]))
        if how == "truncate":
            packed = packed[: draw(st.integers(0, len(packed)))]
        elif how == "flip":
            i = draw(st.integers(0, len(packed) - 1))
            packed = packed[:i] + bytes([packed[i] ^ 0xFF]) + packed[i + 1 :]
        elif how == "plain":  # named .gz, not gzipped
            packed = data
        path.write_bytes(packed)
        return path, lines if how in ("ok", "plain") else 10**9  # corrupt: garbage may decompress to more lines
    path = WORK / "data.jsonl"
    path.write_bytes(data)
    return path, lines


def _check_records(records: list[Record], path: Path, lines: int) -> None:
    for rec in records:
        assert isinstance(rec, Record) and rec.messages
        if rec.source == str(path):
            assert 1 <= rec.line <= lines


def _fuzz_load_records(name, templates, fmt, drawn):
    path, lines = drawn
    records, err = _call(name, lambda: load_records([path], fmt))
    if err is not None:
        _assert_jsonl_error(err, path, lines)
    else:
        _check_records(records, path, lines)


@FUZZ
@given(drawn=data_file(CHATML), fmt=st.sampled_from(["auto", "messages"]))
def test_fuzz_jsonl_chatml_messages(drawn, fmt):
    _fuzz_load_records("jsonl (ChatML messages)", CHATML, fmt, drawn)


@FUZZ
@given(drawn=data_file(OPENAI), fmt=st.sampled_from(["auto", "openai"]))
def test_fuzz_openai_jsonl(drawn, fmt):
    _fuzz_load_records("OpenAI fine-tuning JSONL", OPENAI, fmt, drawn)


@FUZZ
@given(drawn=data_file(SHAREGPT), fmt=st.sampled_from(["auto", "sharegpt"]))
def test_fuzz_sharegpt(drawn, fmt):
    _fuzz_load_records("ShareGPT", SHAREGPT, fmt, drawn)


@FUZZ
@given(drawn=data_file(ALPACA + PROMPT_COMPLETION), fmt=st.sampled_from(["auto", "alpaca", "prompt_completion"]))
def test_fuzz_alpaca_and_prompt_completion(drawn, fmt):
    _fuzz_load_records("Alpaca, prompt/completion", ALPACA + PROMPT_COMPLETION, fmt, drawn)


@FUZZ
@given(drawn=data_file(PREFERENCE), fmt=st.sampled_from(["auto", "preference"]))
def test_fuzz_preference_pairs(drawn, fmt):
    _fuzz_load_records("preference pairs", PREFERENCE, fmt, drawn)


ALL_RECORDS = CHATML + OPENAI + SHAREGPT + ALPACA + PROMPT_COMPLETION + PREFERENCE


@FUZZ
@given(drawn=data_file(ALL_RECORDS), fmt=st.sampled_from(FORMATS))
def test_fuzz_jsonl_any_declared_format(drawn, fmt):
    """Every format's records read with every declared `data.format` (a mismatch is an error, not a KeyError)."""
    _fuzz_load_records("jsonl (declared format)", ALL_RECORDS, fmt, drawn)


@FUZZ
@given(drawn=data_file(ALL_RECORDS))
def test_fuzz_audit_check_files(drawn):
    """`data check`: unreadable lines and records become findings at FILE:LINE; only a whole-file problem raises."""
    path, lines = drawn
    report, err = _call("data check (audit)", lambda: check_files([path]))
    if err is not None:
        _assert_jsonl_error(err, path, lines)  # only the whole file (or a .gz past a line) stops a check
        assert all(p.where == str(path) or p.message.startswith("cannot decompress") for p in err.problems), err
        return
    for f in report.findings:
        if f.code in (Code.BAD_LINE, Code.BAD_RECORD):
            assert _where_line(f.where, path, lines) is not None, f
            assert f.field or f.message.startswith(WHOLE_LINE), f


COLUMN_ROWS = [
    {"question": "2+2?", "answer": "#### 4"},
    {"input": "hola", "output": "hello", "system": "Translate."},
    {"query": "reset pin", "response": "Open settings."},
    {"prompt": "hi", "response": "hello"},
    {"text": "card lost", "label": "lost_card", "id": 3},
    {"q": "2+2?", "a": 4, "sys": "Be terse."},
    {"q": [msg("user", "hi")], "a": "hello", "good": "yes", "bad": "no"},
]
COLUMN_KEYS = (
    "question",
    "answer",
    "input",
    "output",
    "query",
    "response",
    "prompt",
    "text",
    "label",
    "system",
    "q",
    "a",
    "sys",
    "good",
    "bad",
    "role",
    "content",
    "id",
    "tags",
    "meta",
    "instruction",
    "completion",
)
MAPPINGS = [
    None,
    ColumnsConfig(prompt="q", reply="a", system="sys"),
    ColumnsConfig(prompt="text", label="label", json_key="intent"),
    ColumnsConfig(prompt="q", chosen="good", rejected="bad"),
]


@FUZZ
@given(drawn=data_file(COLUMN_ROWS), columns=st.sampled_from(MAPPINGS))
def test_fuzz_column_pairs_and_mappings(drawn, columns):
    """Common prompt/reply pairs (recognised) and rows read through a `data.columns` mapping: a missing or
    mistyped field is named with its line."""
    path, lines = drawn
    records, err = _call("column pairs, data.columns", lambda: load_records([path], columns=columns))
    if err is not None:
        _assert_jsonl_error(err, path, lines)
    else:
        _check_records(records, path, lines)


@st.composite
def json_array_file(draw):
    """(path, bytes, an upper bound on its rows) of a JSON-array `.json` file, broken at the byte level now and then."""
    rows = draw(st.lists(_record(ALL_RECORDS + COLUMN_ROWS), min_size=0, max_size=4))  # " 7," below: a non-object
    data = json.dumps(rows, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 1]))).encode(
        "utf-8", "surrogatepass"
    )
    if draw(st.integers(0, 5)) == 0:
        i = draw(st.integers(0, len(data)))
        data = data[:i] + draw(st.sampled_from([b"\xe9", b",", b"]", b"}", b"\x00", b" 7,", DEEP_LIST])) + data[i:]
    if draw(st.integers(0, 7)) == 0:
        data = data[: draw(st.integers(1, len(data)))]
    if draw(st.integers(0, 7)) == 0:
        data = b"\xef\xbb\xbf" + data
    path = WORK / "rows.json"
    path.write_bytes(data)
    return path, max(_lines(data), data.count(b",") + 2)  # rows, or lines when it no longer reads as an array


@FUZZ
@given(drawn=json_array_file())
def test_fuzz_json_array_file(drawn):
    """A JSON-array file: each element a record at FILE:ROW; a broken element ends the file as a bad line."""
    path, rows = drawn
    records, err = _call("JSON array (.json)", lambda: load_records([path]))
    if err is not None:
        _assert_jsonl_error(err, path, rows)
    else:
        _check_records(records, path, rows)


# ------------------------------------------------------------------------------------- labeled CSV and JSONL

CSV_CELLS = st.sampled_from(
    [
        "hello",
        "refund please",
        "billing",
        "",
        " ",
        '"quoted, with comma"',
        '"open quote',
        'mid"quote',
        "multi\nline",
        '"multi\nline"',
        "tab\there",
        "caf\xe9",
        "😀",
        "\x00",
        "a,b,c",
        "x" * 140_000,
    ]
) | st.text(max_size=8)


@st.composite
def csv_bytes(draw):
    header = draw(
        st.sampled_from(
            [
                ["text", "label"],
                ["label", "text"],
                ["text"],
                ["txt", "label"],
                ["text", "label", "extra"],
                ["\ufefftext", "label"],
                [],
            ]
        )
    )
    rows = [",".join(header)]
    for _ in range(draw(st.integers(0, 4))):
        n = draw(st.integers(max(0, len(header) - 1), len(header) + 1))
        rows.append(",".join(draw(CSV_CELLS) for _ in range(n)))
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = eol.join(rows) + (eol if draw(st.booleans()) else "")
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 6)) == 0:
        data = b"\xef\xbb\xbf" + data
    if draw(st.integers(0, 6)) == 0:  # a Latin-1 byte somewhere
        i = draw(st.integers(0, len(data)))
        data = data[:i] + b"\xe9" + data[i:]
    if data and draw(st.integers(0, 9)) == 0:
        data = data[: draw(st.integers(0, len(data) - 1))]
    return data


def _assert_labeled(reader, path: Path, data: bytes, json_key) -> None:
    lines = _lines(data.replace(b"\r\n", b"\n").replace(b"\r", b"\n"))
    records, err = _call(reader, lambda: read_labeled(path, "text", "label", json_key=json_key))
    if err is None:
        _check_records(records, path, lines)
        return
    assert err.problems, err
    for p in err.problems:
        if p.where == "" and p.message.startswith("... and "):
            continue
        if p.where == str(path):
            assert err.title in FILE_LEVEL_TITLES, err
            continue
        located = _where_line(p.where, path, lines)
        assert located is not None, f"no file:line in {p.where!r} ({err})"
        if located[1] is None:  # a line the parser rejects
            assert err.title.startswith(("Malformed CSV", "Malformed JSONL")), err


@FUZZ
@given(data=csv_bytes(), json_key=st.sampled_from([None, "label"]))
def test_fuzz_csv(data, json_key):
    path = WORK / "rows.csv"
    path.write_bytes(data)
    _assert_labeled("CSV (labeled rows)", path, data, json_key)


LABELED = [{"text": "refund please", "label": "billing"}, {"text": "app crashes", "label": "technical", "id": 3}]


@FUZZ
@given(data=jsonl_bytes(mutated(st.sampled_from(LABELED), ("text", "label", "id"))))
def test_fuzz_labeled_jsonl(data):
    path = WORK / "rows.jsonl"
    path.write_bytes(data)
    _assert_labeled("labeled JSONL", path, data, None)


# ---------------------------------------------------------------------------------------------- eval suites

CASES_TUNESMITH = [
    {
        "id": "c1",
        "messages": [msg("user", "Refund my order")],
        "expected": "billing",
        "behavior": "answer",
        "kind": "task",
        "tags": ["edge_case"],
    },
    {
        "id": "c2",
        "messages": [msg("system", "Route."), msg("user", "hack the bank"), msg("assistant", "I can't.")],
        "behavior": "refuse",
        "kind": "redteam",
        "scorers": [{"type": "regex", "pattern": "^I can"}, {"type": "behavior"}],
    },
    {
        "messages": [
            msg("user", "weather?"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"type": "function", "function": {"name": "w", "arguments": "{}"}}],
            },
        ],
        "tools": [{"type": "function", "function": {"name": "w"}}],
        "kind": "out_of_domain",
    },
]
CASES_IFEVAL = [json.loads(line) for line in PROBE.read_text(encoding="utf-8").splitlines()[:40] if line.strip()]
SUITE_KEYS = (
    "id",
    "key",
    "messages",
    "expected",
    "behavior",
    "kind",
    "tags",
    "scorers",
    "type",
    "pattern",
    "prompt",
    "instruction_id_list",
    "kwargs",
    "num_words",
    "relation",
    "nth_paragraph",
    "num_paragraphs",
    "role",
    "content",
    "tools",
)


def _fuzz_suite(reader: str, name: str, data: bytes) -> None:
    """`data` written as the suite file `name` and loaded: its cases name their line, or it fails naming it."""
    path = WORK / name
    path.write_bytes(data)
    lines = _lines(data)
    cases, err = _call(reader, lambda: load_suite(path, TaskConfig(type="chat")))
    if err is not None:
        _assert_jsonl_error(err, path, lines, ("Bad eval suite",))
        return
    for case in cases:
        assert _where_line(case.where, path, lines) is not None, case.where
        if case.error is not None:
            m = re.match(re.escape(str(path)) + r":(\d+) \[(.+?)\]: \S", case.error, re.S)
            assert m and m.group(2), case.error
            assert not case.messages
        else:
            assert case.messages


@FUZZ
@given(data=jsonl_bytes(mutated(st.sampled_from(CASES_TUNESMITH), SUITE_KEYS)))
def test_fuzz_eval_suite(data):
    _fuzz_suite("eval suite", "suite.jsonl", data)


@FUZZ
@given(data=jsonl_bytes(mutated(st.sampled_from(CASES_IFEVAL), SUITE_KEYS)))
def test_fuzz_ifeval_suite(data):
    _fuzz_suite("eval suite (IFEval format)", "ifeval.jsonl", data)


# ---------------------------------------------------------------------------------------------- tunesmith.yaml

CONFIG = {
    "model": {"base": "builtin:smollm2-135m-instruct", "trust_remote_code": False},
    "task": {
        "type": "json",
        "system_prompt": "Route the ticket.",
        "match_fields": ["queue"],
        "json_schema": {"type": "object", "required": ["queue"]},
    },
    "data": {
        "train": ["data/*.jsonl"],
        "format": "auto",
        "heldout_fraction": 0.2,
        "seed": 1,
        "stratify_by": "auto",
        "max_seq_len": 512,
        "near_dup_threshold": 0.8,
    },
    "eval": {
        "suites": [
            "eval/redteam.jsonl",
            {"path": "eval/edge.jsonl", "scorers": [{"type": "regex", "pattern": "^x"}], "max_new_tokens": 32},
        ],
        "general_probe": True,
        "max_new_tokens": 64,
        "gate": {"metric": "task_accuracy", "min_delta": 0.0},
        "gates": [{"metric": "general.prompt_strict_accuracy", "min_delta": -0.02}],
        "judge": {"base_url": "http://127.0.0.1:8000/v1", "model": "judge", "concurrency": 2},
    },
    "train": {
        "method": "lora",
        "objective": "grpo",
        "grpo": {"rewards": [{"type": "json_schema", "weight": 0.5}, {"type": "reward_model", "path": "rm"}]},
        "epochs": 1,
        "lr": 2e-4,
        "lora": {"r": 8, "target_modules": ["q_proj"]},
        "dpo_beta": 0.2,  # a key that moved (to dpo.beta): read with a warning
        "report_to": ["tensorboard"],
    },
    "export": {"formats": ["adapter", "gguf"], "gguf_types": ["q8_0"]},
    "budget": {"hourly_usd": 1.5, "max_train_minutes": 10},
}
CONFIG_KEYS = (
    "model",
    "task",
    "data",
    "eval",
    "train",
    "export",
    "budget",
    "type",
    "path",
    "scorers",
    "rewards",
    "lora",
    "lora_r",
    "dpo",
    "method",
    "objective",
    "dora",
    "rslora",
    "weight",
    "pattern",
    "function",
    "metric",
    "suites",
    "base",
)
YAML_BREAKS = [
    "n: " + "9" * 5000,
    "deep: " + "[" * 1000,
    "deep: " + "{a: " * 1000,
    "\tmodel: x",
    "model: [unclosed",
    "key: 'open",
    "  bad: indent",
    "- list at top",
    ": no key",
    "a: b: c",
    "&a x",
    "*missing",
    "!!python/object:os.system x",
    "%YAML 9.9",
    "---",
    "...",
    "x: !!binary 'not base64'",
    "? complex\n: key",
    "k: @reserved",
]


@st.composite
def config_bytes(draw):
    obj = draw(mutated(st.just(CONFIG), CONFIG_KEYS, max_mutations=4, junk=small_junk))
    if draw(st.integers(0, 9)) == 0:
        obj = draw(small_junk)
    text = yaml.safe_dump(
        obj, allow_unicode=draw(st.booleans()), default_flow_style=draw(st.booleans()), sort_keys=False
    )
    lines = text.splitlines()
    if draw(st.integers(0, 3)) == 0:
        at = draw(st.integers(0, len(lines)))
        lines.insert(at, draw(st.sampled_from(YAML_BREAKS)))
    text = draw(st.sampled_from(["\n", "\r\n"])).join(lines) + "\n"
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 7)) == 0:
        data = b"\xef\xbb\xbf" + data
    if draw(st.integers(0, 7)) == 0:
        i = draw(st.integers(0, len(data)))
        data = data[:i] + draw(st.sampled_from([b"\xe9", b"\xff", b"\x00", b"\x85"])) + data[i:]
    if draw(st.integers(0, 9)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


def test_a_config_key_of_blanks_is_named_readably():
    """Found by fuzzing in CI: a key of spaces gave the YAML path '  ' (nothing a person can see)."""
    path = WORK / "blank-key.yaml"
    path.write_bytes(b"\xef\xbb\xbf' ': null\n")
    with pytest.raises(TunesmithError) as err:
        load_config(path)
    assert err.value.problems[0].where == f"{path}:1 [' ']"


@FUZZ
@given(data=config_bytes())
@pytest.mark.filterwarnings("ignore::tunesmith.errors.TunesmithWarning")  # the moved key it holds, read anyway
def test_fuzz_config_yaml(data):
    path = WORK / "tunesmith.yaml"
    path.write_bytes(data)
    lines = _lines(data)
    cfg, err = _call("tunesmith.yaml (config)", lambda: load_config(path))
    if err is None:
        return
    assert err.problems, err
    for p in err.problems:
        if _where_line(p.where, path, lines + 1) is not None:  # YAML syntax: file:line (an end mark may be EOF+1)
            continue
        m = re.fullmatch(re.escape(str(path)) + r": (\S.*)", p.where, re.S)
        assert m, f"no file and YAML path in {p.where!r} ({err})"


# ---------------------------------------------------------------------------------------- review state files

NOW = "2026-01-01T00:00:00+00:00"
SAMPLE_STATE = {
    "format": 1,
    "kind": "sample",
    "created": NOW,
    "seed": 1,
    "seq": 0,
    "source": {
        "path": "data/a.jsonl",
        "sha256": "ab" * 32,
        "records": 3,
        "fraction": 0.5,
        "min_score": 3,
        "threshold": 0.7,
    },
    "items": [
        {
            "id": "i0",
            "index": 0,
            "where": "data/a.jsonl:1",
            "hash": "h0",
            "messages": [msg("user", "q"), msg("assistant", "a")],
            "version": 0,
            "decision": {"rating": None, "edited": None, "at": None},
        },
        {
            "id": "i1",
            "index": 2,
            "where": "data/a.jsonl:3",
            "hash": "h1",
            "messages": [msg("user", "q2"), msg("assistant", "a2")],
            "version": 1,
            "decision": {"rating": 4, "edited": "better", "at": NOW},
        },
    ],
}
PREFERENCE_STATE = {
    "format": 1,
    "kind": "preference",
    "created": NOW,
    "seed": 1,
    "seq": 0,
    "source": {"a": "run-a", "b": "run-b", "names": ["base", "tuned"], "suite": "heldout"},
    "items": [
        {
            "id": "p0",
            "suite": "heldout",
            "case": "c0",
            "prompt": "q",
            "output_a": "x",
            "output_b": "y",
            "swap": False,
            "version": 0,
            "preferred": None,
            "at": None,
        },
        {
            "id": "p1",
            "suite": "heldout",
            "case": "c1",
            "prompt": None,
            "output_a": "x",
            "output_b": "y",
            "swap": True,
            "version": 2,
            "preferred": "tie",
            "at": NOW,
        },
    ],
}
STATE_KEYS = (
    "format",
    "kind",
    "created",
    "seed",
    "seq",
    "source",
    "items",
    "id",
    "index",
    "where",
    "hash",
    "messages",
    "version",
    "decision",
    "rating",
    "edited",
    "at",
    "records",
    "fraction",
    "names",
    "preferred",
    "swap",
    "output_a",
)
JOURNAL = [
    {
        "seq": 1,
        "at": NOW,
        "item": "i0",
        "version": 0,
        "action": "keep",
        "value": None,
        "accepted": True,
        "current_version": 0,
    },
    {"seq": 2, "at": NOW, "item": "i1", "version": 1, "action": "score", "value": 5, "accepted": True},
    {"seq": 1, "at": NOW, "item": "p0", "version": 0, "action": "left", "value": None, "accepted": True},
    {"seq": 3, "item": "p1", "action": "edit", "value": "new", "accepted": False},
]
JOURNAL_KEYS = ("seq", "at", "item", "version", "action", "value", "accepted")


@st.composite
def review_dir(draw):
    state = draw(mutated(st.sampled_from([SAMPLE_STATE, PREFERENCE_STATE]), STATE_KEYS, max_mutations=4))
    text = json.dumps(state, indent=draw(st.sampled_from([None, 2])), ensure_ascii=draw(st.booleans()))
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        data = b"\xef\xbb\xbf" + data
    if draw(st.integers(0, 9)) == 0:
        data = data.replace(b"\n", b"\r\n")
    if draw(st.integers(0, 9)) == 0:
        i = draw(st.integers(0, len(data)))
        data = (
            data[:i]
            + draw(
                st.sampled_from(
                    [b"\xe9", b"\xff", b"\x00", b",", b"}", b'"n": ' + b"9" * 5000 + b",", DEEP_LIST + b","]
                )
            )
            + data[i:]
        )
    if draw(st.integers(0, 9)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    journal = draw(st.none() | jsonl_bytes(mutated(st.sampled_from(JOURNAL), JOURNAL_KEYS), max_lines=3))
    directory = WORK / "review"
    directory.mkdir(exist_ok=True)
    (directory / STATE_FILE).write_bytes(data)
    (directory / JOURNAL_FILE).unlink(missing_ok=True)
    if journal is not None:
        (directory / JOURNAL_FILE).write_bytes(journal)
    return directory, data, journal


def _assert_state_error(err: TunesmithError, directory: Path, data: bytes, journal: bytes | None) -> None:
    state, log = directory / STATE_FILE, directory / JOURNAL_FILE
    assert err.problems, err
    for p in err.problems:
        if p.where == "" and p.message.startswith("... and "):
            continue
        if _where_line(p.where, state, _lines(data)) is not None:  # JSON syntax or encoding: file:line
            continue
        if re.fullmatch(re.escape(str(state)) + r" \[.+\]", p.where, re.S):  # a field
            continue
        if journal is not None and (
            _where_line(p.where, log, _lines(journal)) or re.fullmatch(re.escape(str(log)) + r" \[seq \d+\]", p.where)
        ):
            continue
        raise AssertionError(f"no file and line or field in {p.where!r} ({err})")


@FUZZ
@given(drawn=review_dir())
def test_fuzz_review_state(drawn):
    directory, data, journal = drawn
    state, err = _call("review state + journal", lambda: load_state(directory))
    if err is not None:
        _assert_state_error(err, directory, data, journal)
        return
    again, err = _call("review state (read_state)", lambda: read_state(directory))
    assert err is None and again.kind == state[0].kind


# ------------------------------------------------------------------------------------- regressions found here


def _write(name: str, data: bytes) -> Path:
    path = WORK / "regress" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


def _only_problem(exc_info) -> str:
    err = exc_info.value
    assert len(err.problems) == 1, err
    return err.problems[0].where


def test_regression_huge_integer_is_a_bad_line_not_a_traceback():
    path = _write("huge.jsonl", b'{"messages": [], "n": ' + b"9" * 5000 + b"}\n")
    with pytest.raises(TunesmithError) as exc:
        load_records([path])
    assert _only_problem(exc) == f"{path}:1" and "not valid JSON" in exc.value.problems[0].message


def test_regression_corrupt_gzip_names_the_file_and_line():
    rows = b"".join(json.dumps({"prompt": f"q{i}" * 2000, "completion": "a"}).encode() + b"\n" for i in range(40))
    packed = gzip.compress(rows)
    path = _write("cut.jsonl.gz", packed[: len(packed) // 2])  # cut short past the first block
    with pytest.raises(TunesmithError) as exc:
        load_records([path])
    assert re.fullmatch(re.escape(str(path)) + r":\d+", _only_problem(exc))
    assert exc.value.problems[0].message.startswith("cannot decompress")


@pytest.mark.parametrize(
    "fmt,field",
    [
        ("sharegpt", "conversations"),
        ("prompt_completion", "prompt"),
        ("preference", "chosen"),
        ("alpaca", "instruction"),
    ],
)
def test_regression_declared_format_without_its_key(fmt, field):
    path = _write("declared.jsonl", b'{"messages": [{"role": "user", "content": "hi"}]}\n')
    with pytest.raises(TunesmithError) as exc:
        load_records([path], fmt)
    assert _only_problem(exc) == f"{path}:1 [{field}]"


def test_regression_prompt_completion_of_empty_lists_is_no_record():
    path = _write("empty-pc.jsonl", b'{"prompt": [], "completion": []}\n')
    with pytest.raises(TunesmithError) as exc:
        load_records([path])
    assert _only_problem(exc) == f"{path}:1 [prompt]"


def test_regression_sharegpt_function_call_that_is_not_an_object():
    row = {"conversations": [{"from": "human", "value": "hi"}, {"from": "function_call", "value": "[1]"}]}
    path = _write("fc.jsonl", json.dumps(row).encode() + b"\n")
    with pytest.raises(TunesmithError) as exc:
        load_records([path])
    assert _only_problem(exc) == f"{path}:1 [conversations[1].value]"


def test_regression_llama_factory_sharegpt_tools_and_arguments_as_json_strings_are_read():
    """LLaMA-Factory's ShareGPT tool data writes `tools` and a function_call's `arguments` as JSON strings: the
    record was rejected ("tools must be a list"; the arguments "not of type 'object'") where the same call in
    OpenAI's format is read."""
    tools = [{"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    row = {
        "conversations": [
            {"from": "human", "value": "weather in Paris?"},
            {"from": "function_call", "value": json.dumps({"name": "weather", "arguments": '{"city": "Paris"}'})},
            {"from": "observation", "value": '{"temp": 21}'},
            {"from": "gpt", "value": "21 degrees."},
        ],
        "tools": json.dumps(tools),
    }
    path = _write("lf-tools.jsonl", json.dumps(row).encode() + b"\n")
    (rec,) = load_records([path])
    assert rec.tools == tools and rec.messages[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    report = check_files([path])
    assert report.n_kept == 1 and report.n_rejected == 0


def test_regression_a_second_array_after_the_first_is_an_error_not_dropped():
    """`cat a.json b.json`: the reader stopped at the first `]` and dropped the rest without a word."""
    row = json.dumps({"prompt": "a", "completion": "b"})
    path = _write("two-arrays.json", f"[{row}]\n[{row}]\n".encode())
    with pytest.raises(TunesmithError) as exc:
        load_records([path])
    assert "text after the array's closing `]`, line 2" in exc.value.problems[0].message
    assert len(load_records([_write("one-array.json", f"[{row}]\n\n".encode())])) == 1


def test_regression_meta_provenance_of_the_wrong_type_is_ignored():
    row = {"messages": [msg("user", "hi"), msg("assistant", "hello")], "meta": {"source": ["x"], "line": "7"}}
    path = _write("meta.jsonl", json.dumps(row).encode() + b"\n")
    (rec,) = load_records([path])
    assert rec.where == f"{path}:1"
    assert check_files([path]).records == 1


def test_regression_csv_row_with_extra_cells_and_a_missing_column():
    path = _write("extra.csv", b"txt,label\nhello,billing,surplus\n")
    with pytest.raises(TunesmithError) as exc:
        read_labeled(path, "text", "label")
    assert _only_problem(exc) == f"{path}:2 [text]" and "txt, label" in exc.value.problems[0].hint


def test_regression_csv_lines_after_blank_lines_and_an_empty_csv():
    """Rows after a blank line were numbered as if it were not there (the empty label named line 4, not 5); a CSV
    with a header and no rows converted to nothing without a word (an empty JSONL file is an error)."""
    path = _write("blanks.csv", b'text,label\n\nhi,a\n\n"two\nlines",b\nyo,\n')
    with pytest.raises(TunesmithError) as exc:
        read_labeled(path, "text", "label")
    assert _only_problem(exc) == f"{path}:7 [label]"
    with pytest.raises(TunesmithError) as exc:
        read_labeled(_write("header.csv", b"text,label\n"), "text", "label")
    assert exc.value.title == "Empty data file"


def test_regression_developer_role_utf16_and_an_empty_parquet_file():
    """OpenAI's `developer` role is the system prompt (rejected as an unknown role); a UTF-16 file (PowerShell's `>`)
    was "a binary file?"; an empty Parquet file was a pyarrow error ("BatchSize must be greater than 0")."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = {"messages": [msg("developer", "Be brief."), msg("user", "hi"), msg("assistant", "yo")]}
    (rec,) = load_records([_write("developer.jsonl", json.dumps(row).encode() + b"\n")])
    assert rec.messages[0] == {"role": "system", "content": "Be brief."}
    with pytest.raises(TunesmithError) as exc:
        load_records([_write("u16.jsonl", json.dumps(row).encode("utf-16"))])
    assert "UTF-16" in exc.value.problems[0].message and "UTF-8" in exc.value.problems[0].hint
    path = _write("empty.parquet", b"")
    pq.write_table(pa.table({"prompt": pa.array([], pa.string()), "completion": pa.array([], pa.string())}), path)
    with pytest.raises(TunesmithError) as exc:
        load_records([path])
    assert exc.value.title == "Empty data file"


def test_regression_csv_not_utf8_names_the_line():
    path = _write("latin1.csv", b"text,label\nok,a\ncaf\xe9,b\n")
    with pytest.raises(TunesmithError) as exc:
        read_labeled(path, "text", "label")
    assert _only_problem(exc) == f"{path}:3"


def test_regression_suite_case_with_a_reply_and_no_prompt():
    path = _write("noprompt.jsonl", json.dumps({"messages": [msg("assistant", "hi")]}).encode() + b"\n")
    (case,) = load_suite(path, TaskConfig())
    assert case.error.startswith(f"{path}:1 [messages]: ") and not case.messages


@pytest.mark.parametrize(
    "data,where",
    [
        (b"model:\n  base: caf\xe9\n", ":2"),
        (b"data:\n  seed: " + b"9" * 5000 + b"\n", ":2"),
        (b"model: x\ndeep: " + b"[" * 1000 + b"\n", ":2"),
        (b"model:\n  base: a\x00b\n", ":2"),
        (b"- a list\n", ": (top level)"),
        (b'"": 1\n', ":1 [(top level)]"),
    ],
)
def test_regression_config_errors_name_file_and_line_or_path(data, where):
    path = _write("tunesmith.yaml", data)
    with pytest.raises(TunesmithError) as exc:
        load_config(path)
    assert _only_problem(exc) == f"{path}{where}"


@pytest.mark.parametrize(
    "state,where",
    [
        (b'{"kind": {"x": 1}}', " [kind]"),
        (b"[1]", " [(top level)]"),
        (b'{"kind": "sample",\n "created": "caf\xe9"}', ":2"),
        (b'{"kind": ' + b"[" * 5000 + b"]" * 5000 + b"}", " [(top level)]"),
    ],
)
def test_regression_review_state_errors_name_file_and_field(state, where):
    directory = WORK / "regress" / "review-state"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / STATE_FILE).write_bytes(state)
    with pytest.raises(TunesmithError) as exc:
        read_state(directory)
    assert _only_problem(exc) == f"{directory / STATE_FILE}{where}"


def test_regression_review_journal_not_utf8_names_the_line():
    directory = WORK / "regress" / "review-journal"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / STATE_FILE).write_text(json.dumps(SAMPLE_STATE), encoding="utf-8")
    (directory / JOURNAL_FILE).write_bytes(b'{"seq": 1, "item": "caf\xe9"}\n{"seq": 2}\n')
    with pytest.raises(TunesmithError) as exc:
        load_state(directory)
    assert _only_problem(exc) == f"{directory / JOURNAL_FILE}:1"


# ------------------------------------------------------------------------------------------------ the figures


def test_zz_fuzz_figures():
    """Every reader that ran got at least 1,000 cases (the table prints in the terminal summary, and with -s here)."""
    if not FIGURES:
        pytest.skip("no fuzz test ran in this session")
    print("\n" + figures_table())
    short = {
        name: c["returned"] + c["raised"]
        for name, c in FIGURES.items()
        if c["returned"] + c["raised"] < CASES and name != "review state (read_state)"
    }
    assert not short, f"readers with fewer than {CASES} cases: {short}"
