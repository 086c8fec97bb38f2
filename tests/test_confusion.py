"""What a label task gets wrong: the most confused label pairs per field and the cases both models miss, from
results rows written by hand."""

from __future__ import annotations

import json

from tunesmith.config import TaskConfig
from tunesmith.eval.confusion import NO_OUTPUT, NOT_JSON, confused_pairs, still_wrong


def label_row(i: int, expected: str, output: str | None, suite: str = "heldout") -> dict:
    return {
        "suite": suite,
        "id": f"c{i}",
        "where": f"data/t.jsonl:{i}",
        "prompt": f"prompt {i}",
        "expected": expected,
        "output": output,
        "scores": {"task_correct": output is not None and output.strip() == expected},
    }


def json_row(i: int, expected: dict, output: str | None, suite: str = "heldout") -> dict:
    try:
        got = json.loads(output) if output else {}
    except ValueError:
        got = {}
    got = got if isinstance(got, dict) else {}
    fields = {f"field:{k}": got.get(k) == v for k, v in expected.items()}
    return {
        "suite": suite,
        "id": f"c{i}",
        "where": "",
        "prompt": f"prompt {i}",
        "expected": expected,
        "output": output,
        "scores": {**fields, "task_correct": all(fields.values())},
    }


def test_classification_pairs_most_frequent_first():
    rows = (
        [label_row(i, "lost_card", "card_arrival") for i in range(4)]
        + [label_row(10 + i, "exchange_rate", "top_up_failed") for i in range(2)]
        + [label_row(20, "card_arrival", " Card arrival is my guess, " + "blah " * 40)]
        + [label_row(30 + i, "lost_card", "lost_card") for i in range(5)]  # right: not counted
        + [label_row(40, "lost_card", "exchange_rate", suite="redteam")]
    )  # another suite
    pairs = confused_pairs(rows, TaskConfig(type="classification"))
    assert pairs[:2] == [
        {"field": None, "expected": "lost_card", "predicted": "card_arrival", "count": 4},
        {"field": None, "expected": "exchange_rate", "predicted": "top_up_failed", "count": 2},
    ]
    assert len(pairs) == 3 and pairs[2]["predicted"].endswith("…") and len(pairs[2]["predicted"]) == 80
    assert confused_pairs(rows, TaskConfig(type="classification"), top=1) == pairs[:1]
    every = confused_pairs(rows, TaskConfig(type="classification"), suite=None)
    assert {"field": None, "expected": "lost_card", "predicted": "exchange_rate", "count": 1} in every


def test_json_pairs_per_label_field():
    def want(i: int) -> dict:
        return {"queue": ["billing", "shipping"][i % 2], "priority": "high" if i % 3 == 0 else "low"}

    rows = [json_row(i, want(i), json.dumps(want(i))) for i in range(12)]
    rows += [
        json_row(20 + i, {"queue": "billing", "priority": "low"}, json.dumps({"queue": "shipping", "priority": "low"}))
        for i in range(3)
    ]
    rows += [json_row(30, {"queue": "billing", "priority": "high"}, "I think billing")]
    rows += [json_row(31, {"queue": "shipping", "priority": "high"}, json.dumps({"priority": "low"}))]
    rows += [json_row(32, {"queue": "billing", "priority": "low"}, None)]
    pairs = confused_pairs(rows, TaskConfig(type="json"))
    queue = [p for p in pairs if p["field"] == "queue"]
    assert queue[0] == {"field": "queue", "expected": "billing", "predicted": "shipping", "count": 3}
    assert {(p["expected"], p["predicted"]) for p in queue[1:]} == {
        ("billing", NOT_JSON),
        ("billing", NO_OUTPUT),
        ("shipping", "(missing)"),
    }
    priority = [p for p in pairs if p["field"] == "priority"]
    assert {(p["expected"], p["predicted"], p["count"]) for p in priority} == {
        ("high", NOT_JSON, 1),
        ("high", "low", 1),
        ("low", NO_OUTPUT, 1),
    }
    only = confused_pairs(rows, TaskConfig(type="json"), fields=["priority"])
    assert {p["field"] for p in only} == {"priority"}


def test_free_text_fields_and_chat_tasks_have_no_label_pairs():
    rows = [
        json_row(i, {"queue": ["a", "b"][i % 2], "reason": f"a reason {i}"}, json.dumps({"queue": "a", "reason": "x"}))
        for i in range(30)
    ]
    assert confused_pairs(rows, TaskConfig(type="json")) == []  # `reason` is free text: not a label task
    pairs = confused_pairs(rows, TaskConfig(type="json", match_fields=["queue"]))
    assert pairs == [{"field": "queue", "expected": "b", "predicted": "a", "count": 15}]
    assert confused_pairs([label_row(0, "x", "y")], TaskConfig(type="chat")) == []


def test_still_wrong_pairs_base_and_tuned():
    base = [label_row(i, "lost_card", "no idea" if i < 6 else "lost_card") for i in range(10)]
    tuned = [label_row(i, "lost_card", "card_arrival" if i % 2 == 0 else "lost_card") for i in range(10)]
    tuned.append(label_row(99, "lost_card", "x"))  # no base row: not paired
    out = still_wrong(base, tuned, limit=2)
    assert out["n"] == 3 and out["suite"] == "heldout"  # cases 0, 2 and 4
    assert [c["id"] for c in out["cases"]] == ["c0", "c2"]
    assert out["cases"][0] | {"error": None} == {
        "id": "c0",
        "where": "data/t.jsonl:0",
        "prompt": "prompt 0",
        "expected": "lost_card",
        "base": "no idea",
        "tuned": "card_arrival",
        "error": None,
    }
    assert still_wrong(base, tuned, limit=5, suite="redteam")["n"] == 0
