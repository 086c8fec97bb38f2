import json
from collections import Counter

from tunesmith.data.audit import run_checks
from tunesmith.data.dedup import input_key
from tunesmith.data.findings import Code
from tunesmith.data.records import Record
from tunesmith.data.split import reply_label, split_records


def rec(*turns, line=1, tools=None):
    roles = ["user", "assistant"] * 4
    msgs = [t if isinstance(t, dict) else {"role": roles[i], "content": t} for i, t in enumerate(turns)]
    return Record(msgs, "d.jsonl", line, tools=tools)


def codes(r):
    return {f.code for f in run_checks([r]).findings}


def test_each_schema_check_fires_on_a_bad_record_and_not_on_a_good_one():
    good = rec("hi", "hello")
    assert codes(good) == set()
    assert Code.NO_FINAL_ASSISTANT in codes(rec("hi"))
    assert Code.NO_USER_TURN in codes(Record([{"role": "assistant", "content": "x"}], "d.jsonl", 1))
    assert Code.EMPTY_CONTENT in codes(rec("hi", "  "))
    assert Code.SYSTEM_NOT_FIRST in codes(
        rec("hi", {"role": "system", "content": "s"}, {"role": "assistant", "content": "x"})
    )
    assert Code.ROLE_ORDER in codes(
        rec("hi", {"role": "user", "content": "again"}, {"role": "assistant", "content": "x"})
    )
    call = {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "nope", "arguments": {}}}]}
    tools = [{"type": "function", "function": {"name": "get_order"}}]
    assert Code.UNDECLARED_TOOL in codes(
        rec("hi", call, {"role": "tool", "content": "r"}, {"role": "assistant", "content": "ok"}, tools=tools)
    )


def test_errors_reject_records_warnings_keep_them_and_drift_is_dataset_level():
    sys_a = {"role": "system", "content": "A"}
    sys_b = {"role": "system", "content": "B"}
    records = [
        Record([sys_a, {"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}], "d.jsonl", i)
        for i in range(3)
    ]
    records.append(
        Record([sys_b, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "d.jsonl", 9)
    )
    records.append(rec("no reply", line=10))
    report = run_checks(records)
    assert len(report.kept) == 4 and len(report.rejected) == 1
    drift = [f for f in report.findings if f.code == Code.SYSTEM_PROMPT_DRIFT]
    assert [f.where for f in drift] == ["d.jsonl:9"]
    assert report.rejected[0][1][0].where == "d.jsonl:10"


def labeled(n):
    out = []
    for i in range(n):
        label = ["a", "b", "c", "d"][i % 4] if i % 10 else "rare"
        out.append(rec(f"question {i}", json.dumps({"queue": label}), line=i + 1))
    return out


def test_split_is_seeded_stratified_and_sized():
    records = labeled(200)
    label = lambda r: reply_label(r, "queue")
    train, held = split_records(records, 0.2, 42, label)
    assert len(train) + len(held) == 200 and abs(len(held) - 40) <= 3
    share = Counter(map(label, held))
    assert share["rare"] == 4  # 20 rare examples -> 4 held out
    again = split_records(records, 0.2, 42, label)[1]
    assert [r.line for r in again] == [r.line for r in held]
    other = split_records(records, 0.2, 7, label)[1]
    assert [r.line for r in other] != [r.line for r in held]


def test_labels_of_one_or_two_records_still_give_the_asked_share():
    """Every label unique (a JSON field such as a vendor's name): rounding label by label held out nothing; two
    records a label held out half. The total is now the fraction of all records, shared out by largest remainder."""
    unique = [rec(f"invoice {i}", json.dumps({"vendor": f"v{i}"}), line=i) for i in range(100)]
    train, held = split_records(unique, 0.2, 42, lambda r: reply_label(r, "vendor"))
    assert (len(train), len(held)) == (80, 20)
    pairs = [rec(f"q {i}", json.dumps({"queue": f"q{i // 2}"}), line=i) for i in range(20)]
    train, held = split_records(pairs, 0.2, 42, lambda r: reply_label(r, "queue"))
    assert (len(train), len(held)) == (16, 4)
    assert split_records(pairs[:2], 0.2, 42, lambda r: reply_label(r, "queue"))[1]  # two records: one held out


def test_split_never_puts_the_same_input_on_both_sides():
    records = labeled(100)
    # the same question (modulo case and spaces) with different answers: must stay together
    records += [rec("  QUESTION 3 ", json.dumps({"queue": "z"}), line=500 + i) for i in range(5)]
    train, held = split_records(records, 0.3, 1, lambda r: reply_label(r, "queue"))
    assert not {input_key(r) for r in train} & {input_key(r) for r in held}


def test_template_checks_with_the_real_renderer(tiny_tok):
    from tunesmith.data.checks import template_findings

    ok = rec("where is my parcel", '{"queue": "shipping"}')
    assert template_findings(ok, tiny_tok, 256) == []
    from tunesmith.chat import IGNORE, training_example

    long = rec("hi", "a long reply " * 40)
    full = training_example(tiny_tok, long.messages)
    prompt_len = full.labels.index(next(lab for lab in full.labels if lab != IGNORE))
    found = template_findings(long, tiny_tok, prompt_len + 5)  # five reply tokens fit, the rest is cut
    assert [f.code for f in found] == [Code.TRUNCATED] and "drops" in found[0].message
    prompt_only = rec("a very long question " * 40, "short")
    assert [f.code for f in template_findings(prompt_only, tiny_tok, 20)] == [Code.TRUNCATED, Code.EMPTY_LOSS_MASK]


def test_a_template_that_never_emits_the_end_of_turn_token_is_an_error(tiny_tok):
    from tunesmith.data.checks import template_findings

    tok = tiny_tok.__class__.from_pretrained(tiny_tok.name_or_path)
    tok.chat_template = (
        "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    found = template_findings(rec("hi", "hello"), tok, 256)
    assert [f.code for f in found] == [Code.NO_END_OF_TURN]
    report = run_checks([rec("hi", "hello")], tokenizer=tok)
    assert report.rejected and report.has_errors


def test_reply_format_checks_for_a_json_task():
    schema = {"type": "object", "required": ["queue"], "properties": {"queue": {"enum": ["billing", "tech"]}}}
    good = rec("a", '{"queue": "billing"}', line=1)
    prose = rec("b", "Sure, routing to billing.", line=2)
    wrong = rec("c", '{"queue": "sales"}', line=3)
    report = run_checks([good, prose, wrong], json_task=True, schema=schema)
    assert {(f.code, f.where) for f in report.findings} == {
        (Code.REPLY_NOT_JSON, "d.jsonl:2"),
        (Code.REPLY_SCHEMA, "d.jsonl:3"),
    }
    assert [r.line for r in report.kept] == [1]
    assert run_checks([good, prose]).findings == []  # not a json task: prose is fine


def test_shape_drift_and_length_outliers():
    records = [rec(f"q{i}", f"Thanks for writing, we will look at case {i} today.", line=i) for i in range(25)]
    records.append(rec("q-json", '{"answer": "yes"}', line=90))
    records.append(rec("q-long", "A reply that goes on and on. " * 60, line=91))
    found = {(f.code, f.where) for f in run_checks(records).findings}
    assert (Code.STYLE_DRIFT, "d.jsonl:90") in found and (Code.LENGTH_OUTLIER, "d.jsonl:91") in found
    assert not any(w.endswith(":3") for _, w in found)


def test_tool_call_arguments_are_validated_against_the_declared_schema():
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_order",
                "parameters": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
            },
        }
    ]

    def call(args):
        return rec(
            "where is my order",
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "get_order", "arguments": args}}],
            },
            {"role": "tool", "content": "shipped"},
            {"role": "assistant", "content": "It shipped."},
            tools=tools,
        )

    assert Code.TOOL_ARGS_INVALID not in codes(call({"id": "A-17"}))
    bad = run_checks([call({"id": 17})]).findings
    assert [f.code for f in bad] == [Code.TOOL_ARGS_INVALID]
    assert (
        bad[0].field == "messages[1].tool_calls[0].function.arguments.id" and "not of type 'string'" in bad[0].message
    )
    assert Code.TOOL_ARGS_INVALID in codes(call({}))


def _near_dup_clusters(records):
    from tunesmith.data.dedup import near_duplicate_clusters

    return near_duplicate_clusters(records, 0.8)


def test_three_way_split_sizes_validation_from_the_training_side_and_caps_it():
    from tunesmith.config import DataConfig
    from tunesmith.data.split import three_way_split

    records = labeled(200)
    label = lambda r: reply_label(r, "queue")
    parts = three_way_split(records, DataConfig(), label, _near_dup_clusters(records))
    assert len(parts.train) + len(parts.validation) + len(parts.test) == 200
    assert abs(len(parts.test) - 40) <= 3 and abs(len(parts.validation) - 16) <= 3  # 10% of the 160 left
    keys = [{input_key(r) for r in part} for part in (parts.train, parts.validation, parts.test)]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    assert Counter(map(label, parts.validation))["rare"] >= 1  # stratified: the rare label is validated too
    capped = three_way_split(records, DataConfig(validation_max=5), label, _near_dup_clusters(records))
    assert 3 <= len(capped.validation) <= 7
    off = three_way_split(records, DataConfig(validation_fraction=0), label, _near_dup_clusters(records))
    assert off.validation == [] and len(off.train) + len(off.test) == 200


def test_a_given_test_file_replaces_the_split_and_its_twins_leave_training_with_a_finding():
    from tunesmith.config import DataConfig
    from tunesmith.data.split import three_way_split

    records = labeled(100)
    test = [
        rec(records[3].messages[0]["content"].upper(), json.dumps({"queue": "a"}), line=7),  # an exact twin
        rec("something nobody trained on at all here", json.dumps({"queue": "b"}), line=8),
    ]
    for r in test:
        r.source = "test.jsonl"
    parts = three_way_split(
        records, DataConfig(), lambda r: reply_label(r, "queue"), _near_dup_clusters(records), test=test
    )
    assert parts.test == test  # nothing split off for testing
    assert len(parts.train) + len(parts.validation) == 99  # the twin of test.jsonl:7 left training
    (finding,) = parts.findings
    assert finding.code == Code.LEAKAGE and finding.where == records[3].where and "test.jsonl:7" in finding.message
    assert records[3] not in parts.train + parts.validation


def test_an_empty_rejected_reply_is_an_error():
    """A preference pair whose rejected reply was blank passed every check (only `messages` was read)."""
    from tunesmith.data.checks import check_content

    prompt = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello! How can I help?"}]
    blank = Record(messages=prompt, rejected=[{"role": "assistant", "content": "   "}], source="pairs.jsonl", line=3)
    found = check_content(blank)
    assert [(f.code, f.severity.value, f.field) for f in found] == [
        (Code.EMPTY_CONTENT, "error", "rejected[0].content")
    ]
    assert check_content(Record(messages=prompt, rejected=[{"role": "assistant", "content": "go away"}])) == []
