"""The review app end to end in headless Chromium (Playwright) against the real server: uvicorn in a background
thread on a free 127.0.0.1 port. Everything is done with the keyboard, as a reviewer would, and checked both on
the page and in the files the review writes. Every page also listens for JavaScript errors.

Needs Chromium at /usr/bin/chromium (Debian: `apt-get install chromium`) and the `playwright` package; the
browser Playwright downloads itself is not used (`playwright install` is never needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"the browser tests need Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402 - only once Chromium is known to be there

from tunesmith.review import ReviewServer, start_preference_review, start_sample_review  # noqa: E402
from tunesmith.review.state import read_journal, read_state  # noqa: E402

TOKEN = "browser-test-token"
CONFLICT_LOG = "Failed to load resource: the server responded with a status of 409 (Conflict)"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


@pytest.fixture
def context(browser):
    ctx = browser.new_context()
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


class Tab:
    """A page that records console errors and uncaught exceptions."""

    def __init__(self, context) -> None:
        self.page = context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def press(self, key: str, url: str | None = None) -> None:
        """Press a key; when it navigates, wait for the new page to load (its script listening)."""
        self.page.keyboard.press(key)
        if url is not None:
            self.page.wait_for_url(f"**{url}")

    def text(self, selector: str):
        return expect(self.page.locator(selector))


@pytest.fixture
def sample_review(tmp_path):
    synth = write_jsonl(
        tmp_path / "synth.jsonl",
        [
            {
                "messages": [
                    {"role": "user", "content": f"question {i}"},
                    {"role": "assistant", "content": f"answer {i}"},
                ],
                "meta": {"synthetic": {"generator": "teacher"}},
            }
            for i in range(60)
        ],
    )
    start_sample_review(synth, tmp_path / "review", fraction=0.1, seed=7)  # 6 items
    with ReviewServer(tmp_path / "review", port=0, token=TOKEN) as server:
        yield server


def test_score_a_sample_by_keyboard_and_resume(context, sample_review):
    review = sample_review.review_dir
    tab = Tab(context)
    tab.page.goto(sample_review.url)
    assert tab.page.url == f"{sample_review.base}/item/0"  # the token left the address bar
    tab.text("#progress").to_have_text("0 / 6 scored")
    tab.press("k", "/item/1")
    tab.text("#progress").to_have_text("1 / 6 scored")
    tab.press("4", "/item/2")
    tab.text("#progress").to_have_text("2 / 6 scored")
    assert [it.decision.rating for it in read_state(review).items[:3]] == ["keep", 4, None]  # saved at once
    tab.press("ArrowLeft", "/item/1")
    tab.text("#decision").to_have_text("score 4")
    tab.press("p", "/item/0")
    tab.text("#decision").to_have_text("kept")
    tab.press("n", "/item/1")
    tab.press("ArrowRight", "/item/2")
    tab.page.reload()
    tab.text("#progress").to_have_text("2 / 6 scored")
    tab.page.close()
    # A new tab (the app "closed and opened again") continues at the first undecided item.
    tab2 = Tab(context)
    tab2.page.goto(sample_review.base + "/")
    tab2.page.wait_for_url("**/item/2")
    for key, url in (("r", "/item/3"), ("5", "/item/4"), ("1", "/item/5"), ("k", "/summary")):
        tab2.press(key, url)
    tab2.text("#complete").to_be_visible()
    tab2.text("main").to_contain_text("6 / 6 scored")
    tab2.text("main").to_contain_text("estimated pass rate")
    assert [it.decision.rating for it in read_state(review).items] == ["keep", 4, "reject", 5, 1, "keep"]
    assert [e["accepted"] for e in read_journal(review)] == [True] * 6
    summary = json.loads((review / "summary.json").read_text())
    assert (summary["decided"], summary["passed"]) == (6, 4)
    assert tab.errors == [] and tab2.errors == []


def test_edit_a_reply_by_keyboard(context, sample_review):
    review = sample_review.review_dir
    item = read_state(review).items[0]
    original = f"answer {item.index}"
    tab = Tab(context)
    tab.page.goto(sample_review.url)
    tab.text("#reply").to_have_text(original)
    # Escape cancels: nothing saved, the editor closed and reset.
    tab.press("e")
    tab.text("#editor").to_be_focused()
    tab.page.keyboard.type("zzz")
    tab.press("Escape")
    tab.text("#editor").to_be_hidden()
    tab.text("#reply").to_have_text(original)
    assert read_journal(review) == []
    # e opens the editor on the reply (the key itself is not typed into it); ctrl+enter saves.
    tab.press("e")
    tab.text("#editor").to_have_value(original)
    tab.page.keyboard.type(" (checked, ok)")  # "k" and "c" inside the editor are text, not decisions
    tab.press("Control+Enter")
    tab.text("#edited").to_be_visible()
    tab.page.wait_for_load_state("load")
    tab.text("#reply").to_have_text(original + " (checked, ok)")
    tab.text("#decision").to_have_text("undecided, reply edited")
    saved = read_state(review).items[0]
    assert saved.decision.edited == original + " (checked, ok)" and saved.decision.rating is None
    tab.press("k", "/item/1")
    assert read_state(review).items[0].decision.rating == "keep"
    assert tab.errors == []


def test_blind_ab_by_keyboard(context, tmp_path):
    def results(run: str, says: str) -> Path:
        rows = [
            {"suite": "heldout", "id": str(i), "prompt": f"prompt {i}", "output": f"{says} {i}", "scores": {}}
            for i in range(4)
        ]
        return write_jsonl(tmp_path / run / "results.jsonl", rows)

    start_preference_review(
        results("run-base", "alpha says"),
        results("run-tuned", "omega says"),
        tmp_path / "ab",
        seed=1,
        names=("Base-Name", "Tuned-Name"),
    )
    with ReviewServer(tmp_path / "ab", port=0, token=TOKEN) as server:
        tab = Tab(context)
        tab.page.goto(server.url)
        tab.text("#progress").to_have_text("0 / 4 judged")
        items = read_state(tmp_path / "ab").items
        lefts = []
        for i, (key, url) in enumerate((("a", "/item/1"), ("b", "/item/2"), ("t", "/item/3"), ("b", "/summary"))):
            content = tab.page.content()
            assert not any(name in content for name in ("Base-Name", "Tuned-Name", "run-base", "run-tuned"))
            lefts.append(tab.page.locator("#left").text_content())
            assert lefts[-1] == (f"omega says {i}" if items[i].swap else f"alpha says {i}")
            tab.press(key, url)
        tab.text("main").to_contain_text("4 / 4 judged")
        assert tab.errors == []
    # a: left better, b: right better, t: tie; mapped through each item's own order.
    expected = []
    for item, key in zip(items, "abtb"):
        left_is_b = item.swap
        expected.append("tie" if key == "t" else ("B" if (key == "a") == left_is_b else "A"))
    assert [it.preferred for it in read_state(tmp_path / "ab").items] == expected
    pref = json.loads((tmp_path / "ab" / "preference.json").read_text())
    assert pref["judged"] == 4 and pref["wins"] == expected.count("B") and pref["losses"] == expected.count("A")
    assert pref["ties"] == 1 and pref["win_rate"] == pytest.approx((expected.count("B") + 0.5) / 4)
    assert (pref["baseline"], pref["candidate"]) == ("Base-Name", "Tuned-Name")


def test_without_the_token_refused(browser, sample_review):
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        for path in ("/", "/item/0", "/summary", "/?token=not-it"):
            response = page.goto(sample_review.base + path)
            assert response.status == 403, path
            expect(page.locator("main")).to_contain_text("access token")
        assert read_journal(sample_review.review_dir) == []
    finally:
        ctx.close()


def test_two_tabs_deciding_the_same_item(context, sample_review):
    review = sample_review.review_dir
    first, second = Tab(context), Tab(context)
    first.page.goto(sample_review.url)
    second.page.goto(sample_review.base + "/item/0")
    second.text("#decision").to_have_text("undecided")
    first.press("k", "/item/1")
    second.press("r")  # made on the version this tab was shown: stale
    second.text("#notice").to_contain_text("decided in another tab")
    second.text("#decision").to_have_text("kept")
    assert second.page.url.endswith("/item/0")
    assert read_state(review).items[0].decision.rating == "keep"
    assert [(e["action"], e["accepted"]) for e in read_journal(review)] == [("keep", True), ("reject", False)]
    # Pressing again now decides on the current version: a deliberate override.
    second.press("r", "/item/1")
    assert read_state(review).items[0].decision.rating == "reject"
    assert first.errors == [] and second.errors == [CONFLICT_LOG]  # the browser logs the 409; no script errors
