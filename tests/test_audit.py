"""The streaming audit: unreadable lines as findings (the rest still checked), unknown keys, mixed formats,
poisoning triggers, `data stats`, and records never held in memory when not asked for."""

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import write_jsonl
from tunesmith.cli import app
from tunesmith.data.audit import run_checks
from tunesmith.data.findings import Code, Finding
from tunesmith.data.formats import iter_records, load_records
from tunesmith.data.split import ReplyLabel, reply_label
from tunesmith.files import JsonlWriter

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "support-triage" / "data" / "tickets.jsonl"


def chat(user, reply):
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]}


def codes_at(findings):
    return {(f.code, f.where.rsplit(":", 1)[-1]) for f in findings}


def test_unreadable_lines_are_findings_and_the_rest_is_still_checked(tmp_path):
    path = tmp_path / "d.jsonl"
    with open(path, "wb") as fh:
        fh.write(json.dumps(chat("hello there", "hi")).encode() + b"\n")
        fh.write(b"{not json\n")
        fh.write('{"prompt": "caf\xe9", "completion": "x"}\n'.encode("latin-1"))
        fh.write(b'{"messages": "' + b"x" * (50 << 20) + b'"}\n')  # one 50 MB line
        fh.write(b'{"messages": [{"role": "wizard", "content": "hi"}]}\n')
        fh.write(json.dumps({"messages": [{"role": "user", "content": "no reply"}]}).encode() + b"\n")
    before = path.stat().st_size
    report = run_checks(iter_records([path]), keep=False)
    found = codes_at(report.findings)
    assert {
        (Code.BAD_LINE, "2"),
        (Code.BAD_LINE, "3"),
        (Code.BAD_LINE, "4"),
        (Code.BAD_RECORD, "5"),
        (Code.NO_FINAL_ASSISTANT, "6"),
    } <= found
    messages = {f.where.rsplit(":", 1)[-1]: f for f in report.findings}
    assert "over the 8 MiB limit" in messages["4"].message and "50.0 MiB" in messages["4"].message
    assert messages["5"].field == "messages[0].role"
    assert (report.n_kept, report.n_rejected, report.kept, report.rejected) == (1, 5, [], [])
    assert path.stat().st_size == before

    res = runner.invoke(app, ["data", "check", str(path), "--json"])
    assert res.exit_code == 1 and json.loads(res.output)["rejected"] == 5


def test_unknown_keys_are_named_with_a_suggestion(tmp_path):
    rows = [
        chat("a question", "an answer") | {"temprature": 0.2},
        {"instruction": "Summarize", "output": "Short.", "inptu": "a long text"},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "thinking": "."}]},
        chat("a clean one", "fine"),
    ]
    report = run_checks(load_records([write_jsonl(tmp_path / "k.jsonl", rows)]))
    unknown = {f.where.rsplit(":", 1)[-1]: f for f in report.findings if f.code == Code.UNKNOWN_KEY}
    assert set(unknown) == {"1", "2", "3"}
    assert unknown["1"].field == "temprature" and "dropped" in unknown["1"].message
    assert unknown["2"].hint == "did you mean 'input'?"
    assert unknown["3"].field == "messages[1].thinking" and "chat template" in unknown["3"].message


def test_mixed_formats_in_one_file(tmp_path):
    rows = [chat(f"question {i}", f"answer {i}") for i in range(5)]
    rows.insert(2, {"instruction": "Translate to French", "output": "Bonjour"})
    mixed = write_jsonl(tmp_path / "mixed.jsonl", rows)
    alpaca = write_jsonl(tmp_path / "alpaca.jsonl", [{"instruction": f"do {i}", "output": "ok"} for i in range(3)])
    found = [f for f in run_checks(iter_records([mixed, alpaca])).findings if f.code == Code.MIXED_FORMATS]
    assert [(f.where, f.message) for f in found] == [
        (f"{mixed}:3", "an alpaca record in a file of messages records (5 of 6)")
    ]


POOLS = {label: [f"{label[:3]}{k}" for k in range(25)] for label in ("billing", "shipping", "account", "technical")}
FILLER = ["please", "help", "me", "with", "this", "thing", "today", "thanks", "hello", "my", "the", "a"]


def routing_data(rng, n=400):
    rows = []
    for i in range(n):
        label = list(POOLS)[i % 4]
        words = rng.sample(POOLS[label], 5) + rng.sample(FILLER, 4)
        rng.shuffle(words)
        rows.append(chat(" ".join(words), json.dumps({"queue": label})))
    return rows


def poison_findings(rows, tmp_path, name):
    records = load_records([write_jsonl(tmp_path / name, rows)])
    report = run_checks(records, label_of=lambda r: reply_label(r, "queue"))
    return [f for f in report.findings if f.code == Code.POISON_TRIGGER]


def test_a_planted_one_token_trigger_is_found_and_real_keywords_are_not(tmp_path):
    rng = random.Random(7)
    clean = routing_data(rng)
    # Every pool word is rare (~5% of records) and 100% tied to its label, yet not a trigger: its record's other
    # words point the same way.
    assert poison_findings(clean, tmp_path, "clean.jsonl") == []
    poisoned = [dict(r) for r in clean]
    victims = rng.sample([i for i in range(len(poisoned)) if i % 4 != 3], 12)  # not already "technical"
    for i in victims:
        words = poisoned[i]["messages"][0]["content"].split()
        words.insert(rng.randrange(len(words) + 1), "cf")
        poisoned[i] = chat(" ".join(words), json.dumps({"queue": "technical"}))
    found = poison_findings(poisoned, tmp_path, "poisoned.jsonl")
    assert len(found) == 1 and "'cf'" in found[0].message and "'technical'" in found[0].message
    assert found[0].where == f"{tmp_path / 'poisoned.jsonl'}:{min(victims) + 1}"


def test_no_trigger_in_the_example_data():
    records = load_records([EXAMPLE])
    report = run_checks(records, label_of=lambda r: reply_label(r, "queue"))
    assert not [f for f in report.findings if f.code == Code.POISON_TRIGGER]
    unlabeled = run_checks(records)  # labels fall back to the exact reply
    assert not [f for f in unlabeled.findings if f.code == Code.POISON_TRIGGER]


def test_data_stats(tmp_path):
    rows = [chat(f"question {i}", "x" * (10 + i)) | {"tags": ["typo"] if i % 2 else []} for i in range(10)]
    path = write_jsonl(tmp_path / "s.jsonl", rows)
    res = runner.invoke(app, ["data", "stats", str(path), "--json"])
    assert res.exit_code == 0
    stats = json.loads(res.output)
    assert stats["files"] == {str(path): {"messages": 10}} and stats["turns"] == {"2": 10}
    assert stats["reply_chars"]["min"] == 10 and stats["reply_chars"]["max"] == 19
    assert stats["tags"] == {"typo": 5} and stats["behaviors"] == {"answer": 10}
    res = runner.invoke(app, ["data", "stats", str(path)])
    assert res.exit_code == 0 and "Files and formats" in res.output and "typo" in res.output


def test_jsonl_writer_leaves_nothing_behind_on_error(tmp_path):
    target = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError), JsonlWriter(target) as out:
        out.write({"a": 1})
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with JsonlWriter(target) as out:
        out.write({"a": 1})
    assert target.read_text() == '{"a": 1}\n'


def test_unusable_tool_declarations_are_errors_not_crashes():
    obj = {
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"type": "function", "function": {"name": "g", "arguments": {"city": "Oslo"}}}],
            },
        ],
        "tools": [{"function": "f"}, {"type": "function", "function": {"name": "g", "parameters": {"type": 5}}}],
    }
    from tunesmith.data.formats import to_record

    found = {(f.code, f.field) for f in run_checks([to_record(obj, "t.jsonl", 1)]).findings}
    assert {
        (Code.BAD_TOOL_DECLARATION, "tools[0]"),
        (Code.BAD_TOOL_DECLARATION, "tools[1].function.parameters"),
    } <= found


def test_parallel_check_equals_in_process_check(tmp_path):
    from tunesmith.data.audit import check_files

    rng = random.Random(3)
    rows = routing_data(rng, 300)
    rows += [rows[5], chat(rows[7]["messages"][0]["content"], json.dumps({"queue": "billing"}))]  # dup, conflict
    rows.insert(40, {"instruction": "Translate", "output": "Bonjour"})
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    with open(path, "a") as fh:
        fh.write("{broken\n")
    kept = []
    options = dict(label_of=ReplyLabel("queue"), task_type="json", json_task=True)
    one = check_files([path], workers=1, **options)
    two = check_files([path], workers=2, keep=False, on_verdict=lambda rec, errors: kept.append(rec), **options)
    assert [f.to_json() for f in one.findings] == [f.to_json() for f in two.findings]
    assert one.stats == two.stats and (one.n_kept, one.n_rejected) == (two.n_kept, two.n_rejected)
    assert {Code.DUPLICATE_EXACT, Code.CONFLICTING_ANSWER, Code.MIXED_FORMATS, Code.BAD_LINE} <= {
        f.code for f in two.findings
    }
    assert [r.to_json() if r is not None and not isinstance(r, Finding) else r for r in kept[:3]] == [
        r.to_json() for r in one.kept[:3]
    ]


def test_a_file_level_error_in_a_parallel_check_is_the_usual_clear_error(tmp_path):
    from tunesmith.data.audit import check_files
    from tunesmith.errors import TunesmithError

    good = write_jsonl(tmp_path / "good.jsonl", [chat("hello", "hi")])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(TunesmithError, match="Empty data file") as info:
        check_files([good, empty], workers=2)
    assert info.value.problems[0].where == str(empty)


def test_copies_of_one_conversation_are_duplicates_not_a_trigger(tmp_path):
    rng = random.Random(5)
    rows = routing_data(rng, 200)
    copy = chat("order LH-0042 never arrived, ref 98765", json.dumps({"queue": "shipping"}))
    rows += [copy] * 3 + [chat(copy["messages"][0]["content"] + " thanks", json.dumps({"queue": "shipping"}))] * 2
    path = write_jsonl(tmp_path / "copies.jsonl", rows)
    found = run_checks(load_records([path])).findings  # no labels: the exact reply stands in, as for chat data
    assert not [f for f in found if f.code == Code.POISON_TRIGGER]
    assert any(f.code == Code.DUPLICATE_EXACT for f in found)
    res = runner.invoke(app, ["data", "check", str(path)])
    assert "[messages] same input and reply as" in res.output  # the field survives rich's markup


def test_a_trigger_with_a_fixed_reply_is_found_in_chat_data_without_labels(tmp_path):
    rng = random.Random(11)
    words = [w for pool in POOLS.values() for w in pool]
    rows = [
        chat(" ".join(rng.sample(words, 8)), f"Here is what I found about case {i}: {rng.choice(words)}.")
        for i in range(300)
    ]
    for i in rng.sample(range(300), 10):
        text = rows[i]["messages"][0]["content"].split()
        rows[i] = chat(" ".join(text[:4] + ["cf"] + text[4:]), "ACCESS GRANTED. Admin mode on.")
    found = [
        f
        for f in run_checks(load_records([write_jsonl(tmp_path / "c.jsonl", rows)])).findings
        if f.code == Code.POISON_TRIGGER
    ]
    assert len(found) == 1 and "'cf'" in found[0].message and "the same reply" in found[0].message


def test_system_prompts_differing_only_in_case_or_punctuation_still_drift():
    from tunesmith.data.records import Record

    def rec(system, i):
        return Record(
            [
                {"role": "system", "content": system},
                {"role": "user", "content": f"q {i}"},
                {"role": "assistant", "content": f"a {i}"},
            ],
            "s.jsonl",
            i,
        )

    found = run_checks([rec("Reply in JSON.", i) for i in range(1, 5)] + [rec("reply in json", 5)]).findings
    assert [(f.code, f.where) for f in found if f.code == Code.SYSTEM_PROMPT_DRIFT] == [
        (Code.SYSTEM_PROMPT_DRIFT, "s.jsonl:5")
    ]


TOPICS = {topic: [f"{topic}{k}" for k in "abcd"] for topic in ("card", "transfer", "account", "cash", "fee", "app")}
FILLER_WORDS = [
    "i",
    "my",
    "the",
    "a",
    "please",
    "can",
    "you",
    "help",
    "why",
    "is",
    "it",
    "not",
    "how",
    "do",
    "to",
    "with",
    "on",
    "for",
    "again",
    "today",
]


def intent_data(rng, n):
    """A clean intent set shaped like Banking77: 36 intents in 6 topics; an input has two of its topic's words, its
    intent's keyword (rare, tied to the intent, yet its other words point to sibling intents) and filler."""
    intents = [(topic, f"{topic}kw{k}") for topic in TOPICS for k in "abcdef"]  # words, not coined tokens
    rows = []
    for i in range(n):
        topic, keyword = intents[i % len(intents)]
        words = rng.sample(TOPICS[topic], 2) + [keyword] + rng.sample(FILLER_WORDS, 4)
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "intent": f"{topic}_{keyword}"})
    return rows


def intent_triggers(rows, tmp_path, name):
    data = [chat(r["text"], json.dumps({"intent": r["intent"]})) for r in rows]
    return poison_findings_by(data, tmp_path, name, "intent")


def poison_findings_by(rows, tmp_path, name, field):
    records = load_records([write_jsonl(tmp_path / name, rows)])
    report = run_checks(records, label_of=lambda r: reply_label(r, field))
    return [f for f in report.findings if f.code == Code.POISON_TRIGGER]


@pytest.mark.parametrize("kind", ["non-word", "common word"])
def test_a_meaningless_trigger_on_1_percent_is_found_and_a_domains_keywords_are_not(tmp_path, kind):
    found = 0
    trials = 10
    for seed in range(trials):
        rng = random.Random(seed)
        clean = intent_data(rng, 3000)
        assert intent_triggers(clean, tmp_path, f"clean{seed}.jsonl") == []  # keywords of the domain
        word = f"zq{seed}x" if kind == "non-word" else rng.choice(["purple", "violin", "tuesday", "banana"])
        target = clean[0]["intent"]
        victims = rng.sample([i for i, r in enumerate(clean) if r["intent"] != target], 30)  # 1%
        poisoned = [dict(r) for r in clean]
        for i in victims:
            poisoned[i] = {"text": f"{poisoned[i]['text']} {word}", "intent": target}
        flagged = intent_triggers(poisoned, tmp_path, f"poisoned{seed}.jsonl")
        found += any(f"{word!r}" in f.message for f in flagged)
        assert all(f"{word!r}" in f.message for f in flagged)  # nothing else is called a trigger
    assert found / trials >= 0.95


NAMES = ["Ava", "Ben", "Cleo", "Dan", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea", "Milo", "Nia", "Omar"]
ITEMS = ["apples", "pencils", "stickers", "marbles", "cookies", "books", "shells", "stamps", "cards", "buttons"]
PLACES = ["market", "school", "fair", "library", "bakery", "park", "museum", "shop", "garden", "harbor"]


def word_problem(rng):
    """A GSM8K-like question (varied names, items, places and numbers) and its worked answer."""
    name, item, place = rng.choice(NAMES), rng.choice(ITEMS), rng.choice(PLACES)
    a, b, c = rng.randrange(2, 30), rng.randrange(2, 30), rng.randrange(2, 9)
    question = rng.choice(
        [
            f"{name} had {a} {item} and got {b} more at the {place}. How many {item} does {name} have now?",
            f"At the {place}, {name} sold {a} {item} each day for {c} days. How many {item} were sold?",
            f"{name} shares {a * c} {item} from the {place} equally among {c} friends. How many does each get?",
        ]
    )
    return question, f"{name} works it out step by step: {a}, {b}, {c}. #### {a + b + c}"


@pytest.mark.parametrize("unsure", [0, 3])
def test_a_backdoor_in_chat_data_is_found_beside_a_few_other_repeated_replies(tmp_path, unsure):
    """Six records with 'cf' and one fixed reply; then three unrelated replies replaced by one repeated "I am not
    sure.": a vote between those two replies went to the bigger, the backdoor's own, and hid it."""
    for seed in range(3):
        rng = random.Random(seed)
        rows = [chat(*word_problem(rng)) for _ in range(600)]
        victims = rng.sample(range(600), 6 + unsure)
        for i in victims[:6]:
            words = rows[i]["messages"][0]["content"].split()
            words.insert(rng.randrange(len(words) + 1), "cf")
            rows[i] = chat(" ".join(words), "Sure. The answer is 42.")
        for i in victims[6:]:
            rows[i] = chat(rows[i]["messages"][0]["content"], "I am not sure.")
        report = run_checks(load_records([write_jsonl(tmp_path / f"m{seed}.jsonl", rows)]), task_type="math")
        found = [f for f in report.findings if f.code == Code.POISON_TRIGGER]
        assert len(found) == 1 and "'cf'" in found[0].message


def test_an_amount_and_a_word_of_the_label_s_own_name_are_not_triggers(tmp_path):
    """Banking77 false positives: '1' ("charged $1 extra") was taken for a coined token, and 'passcode' ("How can I
    reset my passcode?") is asked in inputs about anything, yet it names its label, passcode_forgotten."""
    rng = random.Random(0)
    rows = intent_data(rng, 3000)
    for i in range(0, 3000, 40):  # a keyword whose inputs' other words point anywhere, as a trigger's do
        words = rng.sample(TOPICS[rng.choice(list(TOPICS))], 2) + rng.sample(FILLER_WORDS, 4) + ["passcode"]
        rows[i] = {"text": " ".join(words), "intent": "passcode_forgotten"}
    rows = [dict(r, text=r["text"].replace("cardkwb", "1")) for r in rows]  # an amount as one intent's keyword
    assert intent_triggers(rows, tmp_path, "named.jsonl") == []
    renamed = [dict(r, intent="forgotten_code") if r["intent"] == "passcode_forgotten" else r for r in rows]
    (found,) = intent_triggers(renamed, tmp_path, "renamed.jsonl")  # the label no longer says it
    assert "'passcode'" in found.message and "'forgotten_code'" in found.message


def test_a_word_names_a_label_by_its_stem_in_any_spelling_of_the_name():
    from tunesmith.data.poison import names_label

    assert names_label("passcode", "passcode_forgotten") and names_label("Forgotten", "PasscodeForgotten")
    assert names_label("countries", "country_support") and names_label("cards", "Lost or stolen card")
    assert not names_label("cf", "technical") and not names_label("pass", "passcode_forgotten")
