"""`tunesmith.review` below the browser: the real app under uvicorn on a loopback port, spoken to with urllib (a
cookie jar, redirects not followed), and the pure parts (the sample, the Wilson interval, mixing, the A/B summary)
called directly. The browser itself is in test_review_browser.py."""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from tunesmith.errors import TunesmithError
from tunesmith.review import (
    ReviewServer,
    ReviewStore,
    create_review_app,
    load_state,
    mix,
    preference_summary,
    run_review,
    sample_summary,
    start_preference_review,
    start_sample_review,
    synthetic_cap,
    wilson_interval,
)
from tunesmith.review.sample import sample_size
from tunesmith.review.state import JOURNAL_FILE, STATE_FILE, read_journal, read_state

TOKEN = "test-token"
JUDGE_KEYS = {
    "judge",
    "cases",
    "judged",
    "wins",
    "losses",
    "ties",
    "errors",
    "outcomes",
    "win_rate",
    "ci_low",
    "ci_high",
    "verdict",
}  # what PairwiseJudge.compare returns


def chat(i: int, synthetic: bool = True) -> dict:
    row = {
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": f"question {i}"},
            {"role": "assistant", "content": f"answer {i}"},
        ]
    }
    if synthetic:
        row["meta"] = {"synthetic": {"generator": "teacher-x", "n": i}}
    return row


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def synth(tmp_path) -> Path:
    return write_jsonl(tmp_path / "synth.jsonl", [chat(i) for i in range(40)])


@pytest.fixture
def sample_dir(tmp_path, synth) -> Path:
    start_sample_review(synth, tmp_path / "review", fraction=0.25, seed=3)  # 10 of 40
    return tmp_path / "review"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Client:
    """A browser-like client: keeps cookies, does not follow redirects, returns (status, body, headers)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)

    def call(self, path: str, body: dict | None = None) -> tuple[int, str, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base + path,
            data=data,
            headers={"Content-Type": "application/json"},
            method="POST" if data is not None else "GET",
        )
        try:
            with self.opener.open(req, timeout=20) as resp:
                return resp.status, resp.read().decode(), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), dict(exc.headers)

    def json(self, path: str, body: dict | None = None) -> tuple[int, dict]:
        status, text, _ = self.call(path, body)
        return status, json.loads(text)

    def login(self) -> Client:
        status, _, headers = self.call(f"/?token={TOKEN}")
        assert status == 303 and "token" not in headers["location"]
        return self

    def decide(self, item_id: str, version: int, action: str, value=None) -> tuple[int, dict]:
        return self.json(f"/api/items/{item_id}/decision", {"version": version, "action": action, "value": value})


@pytest.fixture
def served(sample_dir):
    with ReviewServer(sample_dir, port=0, token=TOKEN) as server:
        yield server


# ---------------------------------------------------------------------------------------------- the sample


def test_wilson_interval_known_values():
    # Reference values of the Wilson score interval at 95% (z = 1.95996).
    for (k, n), (low, high) in {
        (0, 10): (0.0, 0.2775),
        (10, 10): (0.7225, 1.0),
        (5, 10): (0.2366, 0.7634),
        (36, 40): (0.7695, 0.9604),
    }.items():
        got = wilson_interval(k, n)
        assert got == pytest.approx((low, high), abs=5e-4), (k, n)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 500)
        k = rng.randint(0, n)
        low, high = wilson_interval(k, n)
        assert 0 <= low <= k / n <= high <= 1
        assert wilson_interval(k, n, 0.99)[0] <= low + 1e-12  # wider at a higher confidence


def test_sample_size_and_seeded_draw(tmp_path, synth):
    assert [sample_size(n, 0.1) for n in (400, 30, 3, 51)] == [40, 5, 3, 6]
    assert sample_size(100, 0.05) == 5
    a = start_sample_review(synth, tmp_path / "a", fraction=0.25, seed=1)
    start_sample_review(synth, tmp_path / "b", fraction=0.25, seed=1)
    start_sample_review(synth, tmp_path / "c", fraction=0.25, seed=2)
    ids = {d: [it.id for it in load_state(tmp_path / d)[0].items] for d in "abc"}
    assert a["sampled"] == 10 and ids["a"] == ids["b"] != ids["c"]
    assert ids["a"] != sorted(ids["a"], key=lambda s: int(s[1:]))  # a random order: any prefix is a sample too
    # The same start resumes; a different one in the same directory is refused, naming the state file.
    assert start_sample_review(synth, tmp_path / "a", fraction=0.25, seed=1)["sampled"] == 10
    with pytest.raises(TunesmithError) as err:
        start_sample_review(synth, tmp_path / "a", fraction=0.25, seed=9)
    assert STATE_FILE in str(err.value)
    with pytest.raises(TunesmithError, match="fraction"):
        start_sample_review(synth, tmp_path / "d", fraction=0)


def test_pass_rate_estimate(sample_dir):
    store = ReviewStore(sample_dir)
    actions = [("keep", None), ("reject", None), ("score", 4), ("score", 2), ("score", 3)] * 2
    for item, (action, value) in zip(store.state.items, actions):
        assert store.decide(item.id, item.version, action, value)[0]
    summary = sample_summary(sample_dir)
    assert (summary["decided"], summary["passed"], summary["kept"], summary["rejected"]) == (10, 6, 2, 2)
    assert summary["scores"] == {"1": 0, "2": 2, "3": 2, "4": 2, "5": 0}
    assert summary["pass_rate"] == 0.6 and (summary["ci_low"], summary["ci_high"]) == wilson_interval(6, 10)
    assert summary["verdict"] == "reject" and summary["complete"]
    assert sample_summary(sample_dir, min_score=2, threshold=0.4)["passed"] == 8
    assert sample_summary(sample_dir, min_score=2, threshold=0.4)["verdict"] == "accept"
    # The latest key wins: a low score, then keep, is a keep.
    first = store.state.items[3]
    store.decide(first.id, first.version, "keep")
    assert sample_summary(sample_dir)["passed"] == 7


# ------------------------------------------------------------------------------------------------- the app


def test_token_required(served):
    anon = Client(served.base)
    for path in ("/", "/item/0", "/summary", "/api/summary", "/docs", "/openapi.json", "/?token=wrong"):
        status, text, _ = anon.call(path)
        assert status == 403 and "access token" in text, path
    status, body = anon.decide("r0", 0, "keep")
    assert status == 403 and body["error"] == "forbidden"
    assert not read_journal(served.review_dir)
    # The token once (then a cookie): redirected to the same page without it.
    status, _, headers = anon.call(f"/summary?token={TOKEN}")
    assert status == 303 and headers["location"] == "/summary"
    assert "httponly" in headers["set-cookie"].lower() and "samesite=strict" in headers["set-cookie"].lower()
    assert anon.call("/summary")[0] == 200
    assert anon.json("/api/summary")[1]["kind"] == "sample"


def test_decisions_saved_atomically_and_journaled(served):
    client = Client(served.base).login()
    items = read_state(served.review_dir).items
    status, body = client.decide(items[0].id, 0, "score", 4)
    assert status == 200 and body["progress"]["text"] == "1 / 10 scored" and body["next"] == "/item/1"
    on_disk = read_state(served.review_dir)  # saved before the answer
    assert on_disk.items[0].decision.rating == 4 and on_disk.items[0].version == 1
    status, body = client.decide(items[1].id, 0, "edit", "a better answer")
    assert status == 200 and body["item"]["edited"] and body["item"]["decision"] == "undecided, reply edited"
    assert read_state(served.review_dir).items[1].decision.edited == "a better answer"
    journal = read_journal(served.review_dir)
    assert [(e["item"], e["action"], e["value"], e["accepted"]) for e in journal] == [
        (items[0].id, "score", 4, True),
        (items[1].id, "edit", "a better answer", True),
    ]
    leftovers = [p.name for p in served.review_dir.iterdir() if p.name.endswith(".tmp")]
    assert not leftovers
    summary = json.loads((served.review_dir / "summary.json").read_text())  # refreshed on each decision
    assert (summary["decided"], summary["passed"], summary["edited"]) == (1, 1, 1)


def test_bad_decisions(served):
    client = Client(served.base).login()
    item = read_state(served.review_dir).items[0]
    for action, value in (("score", 7), ("score", "4"), ("score", True), ("edit", 3), ("left", None), ("launch", None)):
        status, body = client.decide(item.id, 0, action, value)
        assert status == 400 and body["error"] == "invalid_decision", (action, value)
    assert client.decide("nope", 0, "keep")[0] == 404
    status, body = client.json(f"/api/items/{item.id}/decision", {"action": "keep"})
    assert status == 400 and "version" in body["message"]
    assert client.call("/item/99")[0] == 404
    assert read_state(served.review_dir).items[0].version == 0 and not read_journal(served.review_dir)


def test_save_failure_is_reported(served, monkeypatch):
    import tunesmith.review.state as state_mod

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state_mod, "append_journal", full)
    client = Client(served.base).login()
    item = read_state(served.review_dir).items[0]
    status, body = client.decide(item.id, 0, "keep")
    assert status == 500 and "No space left" in body["message"]
    assert read_state(served.review_dir).items[0].version == 0
    monkeypatch.undo()
    assert client.decide(item.id, 0, "keep")[0] == 200  # and it keeps serving


def test_resume_at_first_undecided(sample_dir):
    with ReviewServer(sample_dir, port=0, token=TOKEN) as server:
        client = Client(server.base).login()
        items = read_state(sample_dir).items
        for item in items[:3]:
            client.decide(item.id, 0, "keep")
        client.decide(items[4].id, 0, "reject")
        assert client.call("/")[2]["location"] == "/item/3"
    # Closed and opened again: it continues where it stopped.
    with ReviewServer(sample_dir, port=0, token=TOKEN) as server:
        client = Client(server.base).login()
        assert client.call("/")[2]["location"] == "/item/3"
        status, body = client.decide(items[3].id, 0, "score", 5)
        assert body["next"] == "/item/5"  # the next undecided one, skipping item 4
        assert "4 / 10 scored" not in client.call("/item/3")[1] and "5 / 10 scored" in client.call("/item/3")[1]
        for item in items[5:]:
            client.decide(item.id, 0, "keep")
        assert client.call("/")[2]["location"] == "/summary"
        assert "Every item is decided" in client.call("/summary")[1]


def test_stale_version_conflict(served):
    tab1, tab2 = Client(served.base).login(), Client(served.base).login()
    item = read_state(served.review_dir).items[0]
    assert tab1.decide(item.id, 0, "keep")[0] == 200
    status, body = tab2.decide(item.id, 0, "reject")  # made on the version tab 2 was shown
    assert status == 409 and body["error"] == "conflict" and "another tab" in body["message"]
    assert body["item"] == {
        "id": item.id,
        "version": 1,
        "decision": "kept",
        "decided": True,
        "reply": "answer " + item.id[1:],
        "edited": False,
    }
    assert read_state(served.review_dir).items[0].decision.rating == "keep"
    journal = read_journal(served.review_dir)
    assert [(e["action"], e["accepted"]) for e in journal] == [("keep", True), ("reject", False)]
    # Deciding again on the current version overrides, deliberately.
    assert tab2.decide(item.id, body["item"]["version"], "reject")[0] == 200
    assert read_state(served.review_dir).items[0].decision.rating == "reject"


def test_crash_between_journal_and_state_loses_nothing(sample_dir, monkeypatch):
    import tunesmith.review.state as state_mod

    store = ReviewStore(sample_dir)
    item = store.state.items[0]

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(state_mod, "save_state", crash)
    with pytest.raises(OSError):
        store.decide(item.id, 0, "score", 5)
    monkeypatch.undo()
    assert read_state(sample_dir).items[0].decision.rating is None  # the old state file, whole
    reopened = ReviewStore(sample_dir)  # the journal's decision is replayed and saved
    assert reopened.state.items[0].decision.rating == 5
    assert read_state(sample_dir).items[0].decision.rating == 5


def _edit_state(review_dir: Path, change) -> None:
    path = review_dir / STATE_FILE
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda o: o["items"][1].update(version=-1), "[items[1].version]"),
        (lambda o: o["items"][2]["decision"].update(rating="great"), "[items[2].decision.rating]"),
        (lambda o: o["items"][0]["decision"].update(rating=True), "[items[0].decision.rating]"),
        (lambda o: o["items"][3].update(index=400), "[items[3].index]"),
        (lambda o: o["items"][4].update(id=o["items"][0]["id"]), "[items[4].id]"),
        (lambda o: o["items"][0].pop("messages"), "[items[0].messages]"),
        (lambda o: o["source"].update(fraction=2), "[source.fraction]"),
        (lambda o: o.update(kind="survey"), "[kind]"),
        (lambda o: o.update(colour="blue"), "[colour]"),
    ],
)
def test_invalid_state_file_is_a_clear_error(sample_dir, change, field):
    _edit_state(sample_dir, change)
    with pytest.raises(TunesmithError) as err:
        create_review_app(sample_dir, TOKEN)
    assert err.value.title == "Invalid review state"
    assert any(p.where == f"{sample_dir / STATE_FILE} {field}" for p in err.value.problems), err.value


def test_state_file_broken_while_serving(served):
    client = Client(served.base).login()
    (served.review_dir / STATE_FILE).write_text('{"format": 1, "kind": "sample",\n  "items": oops}')
    status, text, _ = client.call("/item/0")
    assert status == 500 and "Invalid review state" in text and f"{STATE_FILE}:2" in text
    assert "Traceback" not in text
    status, body = client.decide("r0", 0, "keep")
    assert status == 500 and "not valid JSON" in body["problems"][0]


def test_pages_escape_the_data(tmp_path):
    row = chat(0)
    row["messages"][2]["content"] = "<script>alert('x')</script> & more"
    synth = write_jsonl(tmp_path / "s.jsonl", [row])
    start_sample_review(synth, tmp_path / "r")
    with ReviewServer(tmp_path / "r", port=0, token=TOKEN) as server:
        page = Client(server.base).login().call("/item/0")[1]
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page


def test_run_review_prints_the_url(sample_dir, monkeypatch, capsys):
    served = []
    monkeypatch.setattr(ReviewServer, "run", lambda self: served.append(self) or self.sock.close())
    run_review(sample_dir, port=0)
    out = capsys.readouterr().out
    server = served[0]
    assert server.url.startswith("http://127.0.0.1:") and f"?token={server.token}" in out and server.url in out
    assert len(server.token) >= 32 and "0 / 10 scored" in out
    with pytest.raises(TunesmithError, match="Cannot listen"), ReviewServer(sample_dir, port=0) as busy:
        ReviewServer(sample_dir, port=busy.port)


# ----------------------------------------------------------------------------------------------------- mixing


def _review_all(review_dir: Path, rating_of) -> list:
    store = ReviewStore(review_dir)
    for i, item in enumerate(store.state.items):
        action, value = rating_of(i)
        store.decide(item.id, item.version, action, value)
    return store.state.items


def test_mix_keeps_real_and_caps_synthetic(tmp_path, synth, sample_dir):
    real = write_jsonl(tmp_path / "real.jsonl", [chat(100 + i, synthetic=False) for i in range(10)])
    items = _review_all(sample_dir, lambda i: ("reject", None) if i == 0 else ("keep", None))
    store = ReviewStore(sample_dir)
    store.decide(items[1].id, items[1].version, "edit", "an edited answer")
    out = tmp_path / "mixed.jsonl"
    summary = mix([real], synth, sample_dir, out, max_share=0.5, seed=0, threshold=0.5)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary["real"] == 10 and summary["synthetic"] == 10 and summary["records"] == len(rows) == 20
    assert summary["synthetic_share"] <= 0.5 and summary["dropped"] == {"rejected": 1, "below_min_score": 0}
    assert summary["synthetic_eligible"] == 39 and summary["capped"] == 29
    # Every real record, in order, first; their provenance kept.
    assert [r["messages"][1]["content"] for r in rows[:10]] == [f"question {100 + i}" for i in range(10)]
    assert all("synthetic" not in r["meta"] and r["meta"]["source"].endswith("real.jsonl") for r in rows[:10])
    synthetic = rows[10:]
    assert all(r["meta"]["synthetic"]["generator"] == "teacher-x" for r in synthetic)
    texts = {r["messages"][1]["content"]: r for r in synthetic}
    assert f"question {items[0].index}" not in texts  # the rejected sample item is dropped
    # The 9 reviewed, passing records are taken first; the edited reply replaces the original.
    assert summary["reviewed_included"] == 9 and summary["edited"] == 1
    edited = texts[f"question {items[1].index}"]
    assert edited["messages"][-1]["content"] == "an edited answer"
    assert edited["meta"]["review"] == {"rating": "keep", "edited": True, "original_reply": f"answer {items[1].index}"}
    # Seeded: the same seed writes the same file, another seed another choice.
    again = tmp_path / "again.jsonl"
    mix([real], synth, sample_dir, again, max_share=0.5, seed=0, threshold=0.5)
    assert again.read_text() == out.read_text()
    other = tmp_path / "other.jsonl"
    mix([real], synth, sample_dir, other, max_share=0.5, seed=1, threshold=0.5)
    assert other.read_text() != out.read_text()
    assert mix([real], None, sample_dir, tmp_path / "m3.jsonl", max_share=0.3, threshold=0.5)["synthetic"] == 4
    assert mix([real], None, sample_dir, tmp_path / "m0.jsonl", max_share=0, threshold=0.5)["synthetic"] == 0
    assert mix([real], None, sample_dir, tmp_path / "m1.jsonl", max_share=1, threshold=0.5)["synthetic"] == 39


def test_mix_refuses_a_rejected_unfinished_or_changed_set(tmp_path, synth, sample_dir):
    real = write_jsonl(tmp_path / "real.jsonl", [chat(100 + i, synthetic=False) for i in range(10)])
    out = tmp_path / "mixed.jsonl"
    with pytest.raises(TunesmithError, match="not finished"):
        mix([real], synth, sample_dir, out)
    _review_all(sample_dir, lambda i: ("score", 2) if i % 2 else ("keep", None))  # 5 of 10 pass
    with pytest.raises(TunesmithError, match="did not pass review") as err:
        mix([real], synth, sample_dir, out)
    assert "0.50" in str(err.value) and "accept=True" in str(err.value)
    assert not out.exists()
    summary = mix([real], synth, sample_dir, out, accept=True)  # the user's choice
    assert summary["accepted_by"] == "user" and summary["dropped"] == {"rejected": 0, "below_min_score": 5}
    assert mix([real], synth, sample_dir, out, min_score=2, threshold=0.5)["accepted_by"] == "review"
    write_jsonl(synth, [chat(i) for i in range(41)])
    with pytest.raises(TunesmithError, match="changed since it was sampled"):
        mix([real], synth, sample_dir, out, accept=True)


def test_synthetic_cap_invariant():
    rng = random.Random(0)
    for _ in range(500):
        real, share = rng.randint(0, 300), rng.choice([0.0, 0.1, 0.2, 0.25, 0.3, 1 / 3, 0.5, 0.6, 0.75, 0.9])
        n = synthetic_cap(real, share, 10**6)
        assert n == 0 or n / (real + n) <= share + 1e-12
        assert (n + 1) / (real + n + 1) > share - 1e-12  # and no room for one more
    assert synthetic_cap(10, 0.5, 3) == 3 and synthetic_cap(10, 1.0, 7) == 7 and synthetic_cap(7, 0.2, 99) == 1


# ------------------------------------------------------------------------------------------------- A/B preference


def _results(path: Path, outputs: dict) -> Path:
    rows = [
        {
            "suite": suite,
            "id": cid,
            "where": "",
            "kind": "task",
            "behavior": "answer",
            "tags": [],
            "prompt": f"prompt {suite} {cid}",
            "expected": None,
            "output": out,
            "scores": {},
            "latency_s": 0.0,
            "new_tokens": 0,
        }
        for (suite, cid), out in outputs.items()
    ]
    path.mkdir(parents=True)
    return write_jsonl(path / "results.jsonl", rows)


@pytest.fixture
def ab_dir(tmp_path) -> Path:
    cases = [("heldout", str(i)) for i in range(12)] + [("redteam", "x")]
    a = _results(tmp_path / "eval-base", {c: f"base says {c[1]}" for c in cases} | {("heldout", "11"): None})
    b = _results(tmp_path / "eval-tuned", {c: f"tuned says {c[1]}" for c in cases if c != ("heldout", "10")})
    start_preference_review(a.parent, b, tmp_path / "ab", seed=5, names=("base-model", "tuned-model"))
    return tmp_path / "ab"


def test_preference_pairs_blind_and_seeded(tmp_path, ab_dir):
    state = read_state(ab_dir)
    assert [it.case for it in state.items] == [str(i) for i in range(10)]  # heldout, answered by both
    swaps = [it.swap for it in state.items]
    assert any(swaps) and not all(swaps)
    again = start_preference_review(
        tmp_path / "eval-base", tmp_path / "eval-tuned" / "results.jsonl", tmp_path / "ab2", seed=5
    )
    assert [it.swap for it in read_state(tmp_path / "ab2").items] == swaps and again["baseline"] == "eval-base"
    with ReviewServer(ab_dir, port=0, token=TOKEN) as server:
        client = Client(server.base).login()
        page = client.call("/item/0")[1]
        assert "base-model" not in page and "tuned-model" not in page and "0 / 10 judged" in page
        left, right = ("tuned", "base") if swaps[0] else ("base", "tuned")
        assert page.index(f"{left} says 0") < page.index(f"{right} says 0")


def test_preference_summary(ab_dir):
    with ReviewServer(ab_dir, port=0, token=TOKEN) as server:
        client = Client(server.base).login()
        state = read_state(ab_dir)
        # Prefer B (tuned) on six, A on two, tie on one, leave one undecided.
        wanted = ["B"] * 6 + ["A"] * 2 + ["tie"]
        for item, pref in zip(state.items, wanted):
            side = "tie" if pref == "tie" else ("left" if (pref == "A") != item.swap else "right")
            status, body = client.decide(item.id, 0, side)
            assert status == 200 and body["item"]["decision"] == ("tie" if side == "tie" else f"{side} better")
    assert [it.preferred for it in read_state(ab_dir).items] == wanted + [None]
    summary = preference_summary(ab_dir)
    assert set(summary) >= JUDGE_KEYS and summary["judge"] == "human"
    assert (summary["wins"], summary["losses"], summary["ties"], summary["judged"], summary["undecided"]) == (
        6,
        2,
        1,
        9,
        1,
    )
    assert summary["win_rate"] == pytest.approx(6.5 / 9)
    assert summary["ci_low"] <= summary["win_rate"] <= summary["ci_high"]
    assert summary["verdict"] in ("better", "no significant difference")
    assert (summary["baseline"], summary["candidate"]) == ("base-model", "tuned-model")
    assert json.loads((ab_dir / "preference.json").read_text()) == summary
    with pytest.raises(TunesmithError, match="Not a sample review"):
        sample_summary(ab_dir)


def test_preference_input_errors(tmp_path):
    a = _results(tmp_path / "a", {("heldout", "1"): "x"})
    b = _results(tmp_path / "b", {("other", "1"): "y"})
    with pytest.raises(TunesmithError, match="Nothing to compare"):
        start_preference_review(a, b, tmp_path / "ab")
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"output": "x"}])
    with pytest.raises(TunesmithError) as err:
        start_preference_review(bad, b, tmp_path / "ab")
    assert f"{bad}:1" in str(err.value)
    assert not (tmp_path / "ab" / JOURNAL_FILE).exists()
