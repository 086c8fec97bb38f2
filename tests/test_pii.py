import base64
import json

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


def test_rejected_turns_and_tool_call_arguments_are_scanned_and_scrubbed(tmp_path):
    """A key in a preference pair's rejected reply, or in a tool call's arguments (a dict, or a JSON string as
    OpenAI sends them), was neither reported nor redacted: `data scrub` wrote it out unchanged."""
    key = "AKIAIOSFODNN7EXAMPLE"
    call = {"type": "function", "function": {"name": "login", "arguments": {"user": "ann@acme.io", "token": key}}}
    sent = {"type": "function", "function": {"name": "mail", "arguments": json.dumps({"to": ["ann@acme.io"]})}}
    rec = Record(
        [
            {"role": "user", "content": "log me in"},
            {"role": "assistant", "content": "", "tool_calls": [call, sent]},
            {"role": "tool", "content": "ok"},
            {"role": "assistant", "content": "done"},
        ],
        "d.jsonl",
        2,
        rejected=[{"role": "assistant", "content": f"sure, your key is {key}"}],
    )
    report = run_checks([rec])
    assert {(f.code, f.field) for f in report.findings if f.code in (Code.SECRET, Code.PII)} == {
        (Code.PII, "messages[1].tool_calls[0].function.arguments.user"),
        (Code.SECRET, "messages[1].tool_calls[0].function.arguments.token"),
        (Code.PII, "messages[1].tool_calls[1].function.arguments.to[0]"),
        (Code.SECRET, "rejected[0].content"),
    }
    assert report.rejected

    clean, mapping = scrub_record(rec)
    assert clean.rejected[0]["content"] == "sure, your key is [AWS_KEY_1]"
    assert clean.messages[1]["tool_calls"][0]["function"]["arguments"] == {"user": "[EMAIL_1]", "token": "[AWS_KEY_1]"}
    assert json.loads(clean.messages[1]["tool_calls"][1]["function"]["arguments"]) == {"to": ["[EMAIL_1]"]}
    assert rec.rejected[0]["content"].endswith(key) and call["function"]["arguments"]["token"] == key  # untouched

    src = write_jsonl(tmp_path / "d.jsonl", [rec.to_json()])
    res = CliRunner().invoke(app, ["data", "scrub", str(src), "--out", str(tmp_path / "clean.jsonl")])
    written = (tmp_path / "clean.jsonl").read_text()
    assert res.exit_code == 0 and key not in written and "acme.io" not in written and '"rejected"' in written


def test_a_json_string_of_arguments_stays_json_when_a_secret_in_it_is_redacted():
    """Redacting the JSON text could cut into an escape ("\\nZx8Q...": the n joins the token) and break the JSON;
    each string in it is redacted instead."""
    token = "Zx8Qw2Lm9Rt4Vb7Nk1Pd6Hs3Jf5Gc0Ya"
    args = json.dumps({"note": f"line one\n{token}", "n": 3})
    call = {"type": "function", "function": {"name": "save", "arguments": args}}
    rec = Record([{"role": "user", "content": "save it"}, {"role": "assistant", "content": "", "tool_calls": [call]}])
    clean, _ = scrub_record(rec)
    assert json.loads(clean.messages[1]["tool_calls"][0]["function"]["arguments"]) == {
        "note": "line one\n[SECRET_1]",
        "n": 3,
    }
    not_json = {"type": "function", "function": {"name": "f", "arguments": "call ann@acme.io {"}}
    rec = Record([{"role": "assistant", "content": "", "tool_calls": [not_json]}])
    assert scrub_record(rec)[0].messages[0]["tool_calls"][0]["function"]["arguments"] == "call [EMAIL_1] {"


def test_encoded_data_and_public_ids_are_not_secrets():
    """Base64 of ordinary text, an inline image and a YouTube playlist id were SECRET errors (records dropped)."""
    text_b64 = base64.b64encode(b"Hello World, this is a test of Base64 encoding!").decode()
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(7, 60))).decode()
    wrapped_pdf = base64.encodebytes(b"%PDF-1.7\n" + bytes(range(256))).decode()  # MIME lines of 76
    for text in (
        f"Decode this: {text_b64}",
        f'<img src="data:image/png;base64,{png}" alt="dot">',
        "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAAMCAgMCAgMDAwMEAwMEBQgFBQQEBQoHBgYGBgYKCAgHCAwK",
        f"The file starts with {png} as you can see",
        f"attachment:\n{wrapped_pdf}",
        "https://www.youtube.com/playlist?list=PLrAXtmErZgOeiKm4sgNOknGvNjby9efdf",
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=PLrAXtmErZgOeiKm4sgNOknGvNjby9efdf&index=2",
    ):
        assert [s for s in find_sensitive(text) if s.kind == "SECRET"] == [], text
    # A key is random bytes, and the Base64 of a credential ("user:pass", a token) has no spaces: still secrets.
    basic = base64.b64encode(b"admin:S3cr3tPassw0rd!").decode()
    for text in (
        f"Authorization: Basic {basic}",
        "session=Zx8Qw2Lm9Rt4Vb7Nk1Pd6Hs3Jf5Gc0Ya",
        f"secret {base64.b64encode(bytes(range(200, 232))).decode()} here",
        "https://api.acme.io/v1/items?list=1&token=Zx9Qp2Lm7Rt4Vb8Nc1Kd6Hs3Jf5Gw0Ty",
    ):
        assert [s.kind for s in find_sensitive(text)] == ["SECRET"], text


@pytest.mark.parametrize(
    "text,secret",
    [
        ("postgres://admin:S3cr3tPassw0rd@db.internal:5432/app", "S3cr3tPassw0rd"),
        ("mysql://root:MyP4ssw0rd@localhost/db", "MyP4ssw0rd"),
        ("redis://:p4ss!word@cache:6379", "p4ss!word"),
        ("password: hunter2", "hunter2"),
        ("Password: hunter2.", "hunter2"),
        ('export DB_PASSWORD="Summer2024!"', "Summer2024!"),
        ("login(user, password='Tr0ub4dor&3')", "Tr0ub4dor&3"),
        ('{"api_key": "kX9aPq2L"}', "kX9aPq2L"),
        ("https://shop.io/login?user=ann&pwd=hunter22&next=/", "hunter22"),
        ("DB_PASS=Xk9mP2vLq7", "Xk9mP2vLq7"),
        ("PassWord: hunter2x", "hunter2x"),  # any casing of the name (the pre-test once saw only two)
        ("Client_Secret = 'Zq8vLm2Kx9'", "Zq8vLm2Kx9"),
        ("API_Key: kX9aPq2L", "kX9aPq2L"),
    ],
)
def test_credentials_in_urls_and_assignments_are_secrets(text, secret):
    assert [(s.kind, s.text) for s in find_sensitive(text)] == [("SECRET", secret)]


def test_credential_look_alikes_are_not_secrets():
    for text in (
        "Enter your password: it must be 8 characters",
        "the token: a word that the model reads",
        "password: ********",
        "postgres://user:password@db.internal/app",  # a placeholder, and no mail address either
        "postgres://admin:S3cr3tPassw0rd@db.example.com/app",  # a documentation host
        'api_key = "YOUR_API_KEY"',
        "password = request.form['password']",
        "token = os.environ['GITHUB_TOKEN']",
        "password = get_password(user2)",
        "secret_key = settings.secret_key2 if debug else None",
        "password = db_pass2",
        'password: "${DB_PASSWORD}"',
        "max_tokens: 256000",
        "the secret: 2024-01-01",
        "token=<your-token>",
        "pwd: /home/ann/project2",
        "password=password123",  # a tutorial's placeholder
        "boarding pass: AB1234",
    ):
        assert [s for s in find_sensitive(text) if s.kind == "SECRET"] == [], text
    assert find_sensitive("postgres://user:password@db.internal/app") == []


@pytest.mark.parametrize(
    "text",
    [
        "Find the median of 12 15 18 21 24 27.",
        "2 4 8 16 32 64 128",
        "France had 67 390 000 inhabitants",
        "Germany had 83.200.000 inhabitants",
        "version 2.0.0.1",
        "Section 1.1.1.1 of the standard",
        "upgrade to v 10.20.30.40 now",
        "the numbers 10 20 30 40 50 and 60",
    ],
)
def test_number_sequences_versions_and_thousands_are_not_phones_or_ips(text):
    assert find_sensitive(text) == []


def test_number_sequences_are_not_corrupted_by_scrub():
    rec = Record([{"role": "user", "content": "Find the median of 12 15 18 21 24 27."}])
    assert scrub_record(rec)[0].messages[0]["content"] == "Find the median of 12 15 18 21 24 27."


@pytest.mark.parametrize(
    "text",
    [
        "call 555 123 4567 now",  # US 3-3-4
        "Poison Control: 1-800-222-1222",
        "the number is 01 23 45 67 89",  # French, national 0
        "phone: 138 0013 8000",  # a Chinese mobile with a phone word
        "+33 1 23 45 67 89",
        "dial 020 7946 0958 24 hours a day",
        "connect to 1.1.1.1 for DNS",
    ],
)
def test_phones_and_ips_are_still_found(text):
    assert [s.kind for s in find_sensitive(text)] in (["PHONE"], ["IP"])
