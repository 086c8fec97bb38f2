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


def test_dates_of_history_are_not_stale_but_recent_and_future_ones_are():
    from datetime import date

    today = date(2026, 6, 1)
    assert find_facts("Waterloo was fought on June 18, 1815.", today) == []
    assert find_facts("The treaty was signed on 28/06/1919 and ratified 1920-01-10.", today) == []
    assert find_facts("It happened on 1/2/99.", today) == []  # a two-digit year of the last century
    assert find_facts("The plan changed on 2025-01-15.", today) == [("date", "2025-01-15")]  # 17 months ago
    assert find_facts("The offer ends March 3, 2027.", today) == [("date", "March 3, 2027")]
    assert find_facts("Waterloo was fought on June 18, 1815.", date(1816, 1, 1)) == [("date", "June 18, 1815")]


def test_a_price_ends_at_its_last_digit_not_at_the_sentences_punctuation():
    assert find_facts("The laptop is $800, and the bag is $49.99.") == [("price", "$800"), ("price", "$49.99")]
    assert find_facts("It is 1,299.") == []  # a number with no currency is no price
    assert find_facts("That comes to $1,250.75!") == [("price", "$1,250.75")]
