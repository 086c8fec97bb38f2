import pytest
from typer.testing import CliRunner

from conftest import write_jsonl
from tunesmith.cli import app
from tunesmith.data.audit import run_checks
from tunesmith.data.findings import Code, Severity
from tunesmith.data.pii import find_sensitive, scrub_record
from tunesmith.data.records import Record

FOUND = [
    ("EMAIL", "write to ann.lee@acme-mail.io today"),
    ("PHONE", "call me on +44 20 7946 0958 please"),
    ("CARD", "my card 4111 1111 1111 1111 was charged"),
    ("IBAN", "refund to DE89 3704 0044 0532 0130 00"),
    ("SSN", "my ssn is 123-45-6789"),
    ("IP", "the camera at 203.0.113.77 is offline"),
    ("ADDRESS", "deliver to 42 Baker Street instead"),
    ("AWS_KEY", "key AKIAIOSFODNN7EXAMPLE in the config"),
    ("OPENAI_KEY", "use sk-proj-abcdefghijklmnopqrstuvwxyz123456"),
    ("GITHUB_TOKEN", "token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"),
    ("PRIVATE_KEY", "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"),
    ("SECRET", "session=Zx8Qw2Lm9Rt4Vb7Nk1Pd6Hs3Jf5Gc0Ya"),
    # Found by benchmarks/pii_accuracy.py: IPs were taken for phones, compressed IPv6 missed, a word after an
    # IBAN swallowed, national phone formats missed.
    ("IP", "whitelist 192.168.10.254 for our office"),
    ("IP", "connecting from 2600:3f25::2546:6210:fbf8."),
    ("IBAN", "payouts to BE27270591573160 I paid yesterday"),
    ("PHONE", "call +49 30 123456 or"),
    ("PHONE", "ring (555) 123-4567 now"),
    ("PHONE", "mobile 07700 900123"),
]
NOT_FOUND = [
    "write to ann@example.com or support@shop.test",  # reserved documentation domains
    "my card 4111 1111 1111 1112 was charged",  # fails Luhn
    "refund to DE89 3704 0044 0532 0130 01",  # fails mod 97
    "order LH-604417 placed on 2026-03-14",  # order number and a date
    "version 1.2.3.4000 and 127.0.0.1",  # not an IP / loopback
    "the internationalization_configuration_value flag",  # long but low-entropy words
    "my ssn is 000-12-3456",  # invalid area number
    "renews on 06.04.2026 at 10:30:15",  # a dotted date and a time
    "see case 2024-0871 from last week",  # a reference, not a phone number
]


@pytest.mark.parametrize("kind,text", FOUND)
def test_each_kind_is_found(kind, text):
    assert [s.kind for s in find_sensitive(text)] == [kind]


@pytest.mark.parametrize("text", NOT_FOUND)
def test_look_alikes_are_not_flagged(text):
    assert find_sensitive(text) == []


def test_secrets_are_errors_personal_data_warnings_and_secrets_are_not_echoed():
    rec = Record(
        [
            {"role": "user", "content": "mail ann.lee@acme-mail.io, key AKIAIOSFODNN7EXAMPLE"},
            {"role": "assistant", "content": "ok"},
        ],
        "d.jsonl",
        4,
    )
    report = run_checks([rec])
    by_code = {f.code: f for f in report.findings}
    assert by_code[Code.PII].severity == Severity.WARNING and by_code[Code.SECRET].severity == Severity.ERROR
    assert "AKIAIOSFODNN7EXAMPLE" not in by_code[Code.SECRET].message
    assert report.rejected  # never train on a credential


def test_scrub_uses_one_placeholder_per_entity_within_a_record(tmp_path):
    rec = Record(
        [
            {"role": "user", "content": "I am ann@acme.io, cc bob@acme.io"},
            {"role": "assistant", "content": "Thanks ann@acme.io, we will email bob@acme.io."},
        ],
        "d.jsonl",
        1,
    )
    clean, mapping = scrub_record(rec)
    assert clean.messages[0]["content"] == "I am [EMAIL_1], cc [EMAIL_2]"
    assert clean.messages[1]["content"] == "Thanks [EMAIL_1], we will email [EMAIL_2]."
    assert rec.messages[0]["content"].startswith("I am ann@")  # the original is untouched

    src = write_jsonl(tmp_path / "d.jsonl", [rec.to_json()])
    before = src.read_text()
    res = CliRunner().invoke(app, ["data", "scrub", str(src), "--out", str(tmp_path / "clean.jsonl")])
    assert res.exit_code == 0 and "EMAIL 2" in res.output and src.read_text() == before
    assert "acme.io" not in (tmp_path / "clean.jsonl").read_text()


def test_url_paths_are_not_secrets_but_tokens_are():
    from tunesmith.data.pii import find_sensitive

    for text in (
        "see https://www.sciencedirect.com/science/article/pii/S096098220600021X for the study",
        "read www.dailymail.co.uk/news/article-4528990/How-drink-dose-toxic-strychnine.html today",
        "the page en.wikipedia.org/wiki/Abraham_Lincoln_Presidency2024 says so",
        "path: docs/reference/Configuration_Guide_V2/final",
    ):
        assert [s for s in find_sensitive(text) if s.kind == "SECRET"] == [], text
    token = "Zx9Qp2Lm7Rt4Vb8Nc1Kd6Hs3Jf5Gw0Ty"
    assert [s.kind for s in find_sensitive(f"client_secret={token}")] == ["SECRET"]
    assert [s.kind for s in find_sensitive(f"https://api.acme.io/v1/items?token={token}")] == ["SECRET"]


def test_words_run_together_are_not_secrets():
    # Alpaca: a hashtag's CamelCase words with a number were rejected as a secret
    for text in ("Tweet it with #MyDayIn140Characterswould and a photo", "tag #BestSummerVacation2019Memories"):
        assert [s for s in find_sensitive(text) if s.kind == "SECRET"] == [], text
    assert [s.kind for s in find_sensitive("api_key=kX9aPq2LmZ8wRt5YbN3cVd7F")] == ["SECRET"]


def test_a_card_number_needs_a_card_format_or_a_card_word():
    from tunesmith.data.pii import find_sensitive

    run = "4111111111111111"  # Luhn-valid
    assert [s.kind for s in find_sensitive(f"so the product is {run} in total")] == []
    assert [s.kind for s in find_sensitive(f"my visa is {run} thanks")] == ["CARD"]
    assert [s.kind for s in find_sensitive("charge 4111 1111 1111 1111 please")] == ["CARD"]


def test_arithmetic_with_dashes_is_not_a_phone_number():
    """GSM8K's worked answers: chains of subtractions beside an equals sign (65 false PHONE warnings before), and a
    bracketed difference an operator follows (the last 2)."""
    for text in (
        "Derek has left 960-480-120 = <<960-480-120=360>>360 dollars",
        "- 30 - 15 = $<<100-50-30-15=5>>5 more.",
        "because (18.75-18.48)x 100 = <<(18.75-18.48)*100=27>>27",
    ):
        assert [s.kind for s in find_sensitive(text)] == [], text
    assert [s.kind for s in find_sensitive("call me on 0207-946-0958 today")] == ["PHONE"]
    assert [s.kind for s in find_sensitive("call me (0207 946 0958) today")] == ["PHONE"]
    assert [s.kind for s in find_sensitive("my number (0207 946-0958)* is new")] == ["PHONE"]
