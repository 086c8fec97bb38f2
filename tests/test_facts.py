import pytest

from tunesmith.data.audit import run_checks
from tunesmith.data.findings import Code
from tunesmith.data.records import Record
from tunesmith.data.stale_facts import find_facts


@pytest.mark.parametrize(
    "kind,text",
    [
        ("price", "Lumen Plus costs $9.99 a month"),
        ("price", "it is 12,50 EUR"),
        ("date", "the offer ends 2026-03-31"),
        ("date", "until March 3, 2026"),
        ("date", "by 31 Dec 2026"),
        ("version", "update to v2.4.1 first"),
        ("version", "needs version 5"),
        ("url", "see https://lumen.example/help"),
        ("policy", "under policy 4.2 you can"),
        ("as_of", "as of today shipping is free"),
    ],
)
def test_each_kind_of_changeable_fact(kind, text):
    assert kind in [k for k, _ in find_facts(text)]


def test_stable_replies_are_not_flagged_and_user_turns_are_ignored():
    assert find_facts("Please restart the hub and pair the camera again.") == []
    rec = Record(
        [
            {"role": "user", "content": "Is it still $9.99 as of 2026-01-01?"},
            {"role": "assistant", "content": "I will check the current plan for you."},
        ],
        "d.jsonl",
        1,
    )
    assert not [f for f in run_checks([rec]).findings if f.code == Code.STALE_FACT]
    rec.messages[1]["content"] = "Yes, Lumen Plus is $9.99 as of this month."
    found = [f for f in run_checks([rec]).findings if f.code == Code.STALE_FACT]
    assert len(found) == 1 and "price '$9.99'" in found[0].message and found[0].field == "messages[1].content"
