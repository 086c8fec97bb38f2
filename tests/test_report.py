"""The HTML report: built from a real `tunesmith run` on the tiny project, checked as a file (self-contained,
escaped, every section there) and in headless Chromium (every image decodes, no console error, a screenshot).

The browser checks need Chromium at /usr/bin/chromium and the `playwright` package (never `playwright install`);
without them only those checks are skipped.
"""

from __future__ import annotations

import html
import json
import re
import struct
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tunesmith.cli.report import register
from tunesmith.pipeline import run_project
from tunesmith.report import build_report, plots

CHROMIUM = Path("/usr/bin/chromium")
PLANTED = '<script>window.__planted = 1</script><img src="https://example.com/x.png">'
SECTIONS = [
    "verdict",
    "glance",
    "data",
    "metrics",
    "alternatives",
    "slices",
    "cases",
    "labels",
    "training",
    "diagnosis",
    "cost",
    "parity",
    "preference",
    "stages",
]
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


@pytest.fixture
def ran(tiny_project):
    """The tiny project run end to end, with markup planted in every user message (so in every held-out prompt)."""
    data = tiny_project / "data" / "tickets.jsonl"
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    for row in rows:
        row["messages"][1]["content"] = f"{PLANTED} {row['messages'][1]['content']}"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tiny_project, run_project(tiny_project)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"the browser checks need Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield b
        b.close()


def open_in_browser(browser, path: Path, shot: Path) -> dict:
    """Load the page from disk; return its images' natural widths, console errors, whether the planted script ran,
    and the page text; save a full-page screenshot to `shot`."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    failed: list[str] = []
    page.on("requestfailed", lambda req: failed.append(req.url))
    page.goto(path.resolve().as_uri(), wait_until="load")
    out = {
        "widths": page.evaluate("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)"),
        "planted_ran": page.evaluate("window.__planted === 1"),
        "text": page.inner_text("body"),
        "errors": errors,
        "failed": failed,
    }
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    return out


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


def assert_self_contained(text: str) -> None:
    assert not EXTERNAL.search(text), EXTERNAL.search(text).group(0)
    assert "<script" not in text.lower() and "<link" not in text.lower()
    assert "@import" not in text and "url(" not in text


def test_report_of_a_real_run(ran, browser, tmp_path):
    project, summary = ran
    path = build_report(project)
    compare_dir = next(Path(s["run"]) for s in summary["stages"] if s["stage"] == "compare")
    assert path == compare_dir / "report.html"
    text = path.read_text(encoding="utf-8")
    assert (project / ".tunesmith" / "report.html").read_text(encoding="utf-8") == text
    assert not [p.name for p in compare_dir.iterdir() if p.name.startswith(".report.html")]  # temp + rename
    assert_self_contained(text)
    for sid in SECTIONS:
        assert f'id="{sid}"' in text, sid
    # What the run measured is on the page: the gate, its metric, each data finding code, training numbers.
    # The banner is the run's ship verdict (the gates and the cheaper alternatives weighed together), word for word.
    assert html.escape(summary["verdict"]["headline"], quote=True) in text
    assert ("verdict pass" if summary["verdict"]["ship"] else "verdict fail") in text
    assert summary["gate"]["metric"] in text
    check_dir = next(Path(s["run"]) for s in summary["stages"] if s["stage"] == "check")
    for c in json.loads((check_dir / "report.json").read_text())["counts"]:
        assert c["code"] in text
    assert f"{summary['train']['steps']}" in text and "held-out loss" in text
    # Parts this run did not measure say so; the diagnosis is a stage of `tunesmith run`, so it is there.
    for sid in ("parity", "preference"):
        block = text.split(f'id="{sid}"', 1)[1].split("</section>", 1)[0]
        assert "Not measured" in block, sid
    diagnosis = text.split('id="diagnosis"', 1)[1].split("</section>", 1)[0]
    assert "Not measured" not in diagnosis and summary["diagnosis"]["findings"][0]["title"][:20] in diagnosis
    # The planted markup is shown as text, escaped, never as markup.
    assert "&lt;script&gt;window.__planted = 1&lt;/script&gt;" in text
    assert 'src="https://example.com' not in text
    # Two figures (metrics, loss), inline PNGs.
    images = re.findall(r'<img [^>]*src="([^"]+)"', text)
    assert len(images) == 2 and all(src.startswith("data:image/png;base64,") for src in images)

    shown = open_in_browser(browser, path, tmp_path / "report.png")
    assert shown["widths"] and all(w > 0 for w in shown["widths"]), shown["widths"]
    assert shown["errors"] == [] and shown["failed"] == []
    assert shown["planted_ran"] is False
    assert "<script>window.__planted = 1</script>" in shown["text"]  # the reader sees the prompt as written
    width, height = png_size(tmp_path / "report.png")
    assert width >= 1000 and height > 2000
    assert (tmp_path / "report.png").stat().st_size > 50_000

    # The diagnosis and cost modules' own results on this run render in their sections (last: it may skip).
    diagnose = pytest.importorskip("tunesmith.diagnose").diagnose
    eval_costs = pytest.importorskip("tunesmith.cost").eval_costs
    d, c = diagnose(project), eval_costs(project, hourly_usd=2.5)
    text = build_report(project, diagnosis=d, cost=c, out=tmp_path / "full.html").read_text(encoding="utf-8")
    assert_self_contained(text)
    diag, cost = section_of(text, "diagnosis"), section_of(text, "cost")
    assert "Not measured" not in diag and "Not measured" not in cost
    for f in d["findings"]:
        assert f"<code>{f['code']}</code>" in diag
    assert 'class="trained"' in diag  # the masking preview of the training records
    assert "Cost per successful task" in cost and "latency x $2.5/h" in cost


def rich_summary() -> dict:
    """A summary with every part a report can show: a better and a worse metric, slices, parity (one failing)."""

    def row(suite, metric, base, tuned, low, high, verdict, n=40):
        return {
            "suite": suite,
            "metric": metric,
            "n": n,
            "base": base,
            "tuned": tuned,
            "delta": tuned - base,
            "ci_low": low,
            "ci_high": high,
            "p_mcnemar": 0.01,
            "verdict": verdict,
        }

    gate = {
        "passed": True,
        "metric": "heldout.task_accuracy",
        "delta": 0.3,
        "ci_low": 0.15,
        "ci_high": 0.45,
        "reason": "tuned beats base",
    }
    return {
        "project": "/nowhere/<b>proj</b>",
        "model": "builtin:tiny",
        "gate": gate,
        "gates": [gate],
        "confidence": 0.95,
        "metrics": [
            row("heldout", "task_accuracy", 0.4, 0.7, 0.15, 0.45, "better"),
            row("heldout", "format_validity", 0.9, 0.95, -0.02, 0.1, "no significant difference"),
            row("general", "prompt_strict_accuracy", 0.6, 0.45, -0.25, -0.05, "worse"),
            row("heldout#edge_case", "task_accuracy", 0.2, 0.5, 0.05, 0.55, "better", n=10),
        ],
        "base_metrics": {"heldout": {"cases": 40, "latency_s": 0.2, "latency_p95_s": 0.3, "tokens_per_s": 50.0}},
        "tuned_metrics": {"heldout": {"cases": 40, "latency_s": 0.25, "latency_p95_s": 0.35, "tokens_per_s": 45.0}},
        "train": {
            "steps": 30,
            "train_loss": 1.2,
            "eval_loss": 1.4,
            "wall_s": 125.0,
            "tokens_per_s": 900.0,
            "trainable_params": 16384,
            "precision": "bf16",
            "oversampled": {"out_of_scope": 4},
            "general_examples": 200,
            "general_wanted": 1011,
            "step_s": 100.0,
        },
        "train_cost_usd": 0.0875,
        "stages": [],
        "parity": [
            {
                "kind": "merged",
                "runtime": "transformers",
                "n": 40,
                "identical": 1.0,
                "passed": True,
                "target": "identical greedy replies >= 95%",
                "cause": None,
                "task_accuracy": {"base": 0.7, "tuned": 0.7, "delta": 0.0, "ci_low": 0.0, "ci_high": 0.0},
            },
            {
                "kind": "q4_0",
                "runtime": "llama.cpp",
                "n": 40,
                "identical": 0.6,
                "passed": False,
                "target": "task accuracy within 2 points",
                "cause": "numbers: quantization <moved> ties",
                "task_accuracy": {"base": 0.7, "tuned": 0.6, "delta": -0.1, "ci_low": -0.2, "ci_high": 0.0},
            },
        ],
    }


DIAGNOSIS = {  # the shape of tunesmith.diagnose.diagnose(), plus a part the report does not know
    "findings": [
        {
            "code": "forgetting",
            "severity": "warning",
            "title": "General skills dropped",
            "evidence": {"general": {"base": 0.6, "tuned": 0.45}},
            "remedy": "mix in general data",
        },
        {"code": "memorization", "severity": "ok", "title": "Few verbatim copies", "evidence": {}, "remedy": ""},
        {
            "code": "template_mismatch",
            "severity": "error",
            "title": "Train and eval templates differ",
            "evidence": {"train": "<|im_start|>", "eval": "<s>[INST]"},
            "remedy": "use one chat template",
        },
    ],
    "counts": {"error": 1, "warning": 1, "ok": 1},
    "masking_preview": [
        {
            "where": "data/a.jsonl:3",
            "tokens": 12,
            "loss_tokens": 5,
            "segments": [{"text": "<user>hi</user>", "loss": False}, {"text": "UNIQUE-TRAINED-REPLY", "loss": True}],
        },
        {"where": "data/a.jsonl:9", "segments": [], "error": "template <cannot> render tools"},
    ],
    "loss": {
        "steps": [1, 2, 3],
        "train": [2.0, 1.1, 0.2],
        "eval_steps": [3],
        "eval": [1.9],
        "flags": [{"code": "eval_loss_rising", "severity": "warning", "detail": "overfitting after step 2"}],
    },
    "novel_part": [[1, 2], {"x": None}],
}
COST = {
    "line": "$0.0123 per successful task (tuned), $0.0200 (base)",
    "rows": [{"model": "tuned", "usd_per_success": 0.0123, "passed": 28}, {"model": "base", "passed": 16}],
    "evaluations": [
        {
            "model": "base",
            "suite": "heldout",
            "cases": 40,
            "successes": 16,
            "success_rate": 0.4,
            "cost_usd": 0.32,
            "cost_per_success_usd": 0.02,
            "basis": "latency x $2.5/h",
        },
        {
            "model": "tuned",
            "suite": "heldout",
            "cases": 40,
            "successes": 28,
            "success_rate": 0.7,
            "cost_usd": 0.3444,
            "cost_per_success_usd": 0.0123,
            "basis": "latency x $2.5/h",
        },
    ],
    "unknown_extra": {"nested": {"deep": [1, 2, 3]}},
}
PREFERENCE = {
    "judge": "human",
    "baseline": "base",
    "candidate": "tuned",
    "judged": 20,
    "undecided": 2,
    "wins": 12,
    "losses": 5,
    "ties": 3,
    "win_rate": 0.675,
    "ci_low": 0.55,
    "ci_high": 0.8,
    "verdict": "better",
}


def section_of(text: str, sid: str) -> str:
    return text.split(f'id="{sid}"', 1)[1].split("</section>", 1)[0]


def test_report_with_diagnosis_cost_and_preference(tmp_path, browser):
    out = build_report(tmp_path, rich_summary(), DIAGNOSIS, COST, PREFERENCE, out=tmp_path / "r" / "report.html")
    assert out == tmp_path / "r" / "report.html" and not (tmp_path / ".tunesmith").exists()
    text = out.read_text(encoding="utf-8")
    assert_self_contained(text)
    assert "&lt;b&gt;proj&lt;/b&gt;" in text and "<b>proj</b>" not in text
    assert "ship it" in section_of(text, "verdict")
    glance = section_of(text, "glance")
    improved, broke = glance.split("What improved", 1)[1].split("What broke", 1)
    assert "heldout · task_accuracy" in improved and "heldout · edge_case · task_accuracy" in improved
    assert "human preference" in improved
    assert "general · prompt_strict_accuracy" in broke and "export q4_0" in broke
    assert "$0.09" in glance and "2 min 5 s" in glance
    assert "edge_case" in section_of(text, "slices")
    diag = section_of(text, "diagnosis")
    assert "Not measured" not in diag and "1 error, 1 warning, 1 ok" in diag
    assert "template_mismatch" in diag and "&lt;|im_start|&gt;" in diag and "overfitting after step 2" in diag
    assert diag.index("template_mismatch") < diag.index("forgetting") < diag.index("memorization")  # worst first
    assert '<span class="trained">UNIQUE-TRAINED-REPLY</span>' in diag and "&lt;user&gt;hi&lt;/user&gt;" in diag
    assert "5 of 12 tokens carry loss" in diag and "template &lt;cannot&gt; render tools" in diag
    assert "3 points, 2 … 0.2" in diag  # a logged series is summarized, the curve is the Training plot
    assert "novel_part" in diag
    assert "labels repeated a pass (train.oversample)" in section_of(text, "training")
    assert "out_of_scope 4x" in section_of(text, "training")
    assert "200 examples; train.general_share asked for 1,011" in section_of(text, "training")
    assert "of which in training steps" in section_of(text, "training")
    cost = section_of(text, "cost")
    assert COST["line"] in cost and "usd_per_success" in cost and "deep" in cost and "mean latency" in cost
    assert "Cost per successful task" in cost and "$0.0123" in cost and "70.0%" in cost
    assert "tuned: cost per successful task" in glance
    parity = section_of(text, "parity")
    assert "q4_0" in parity and "FAIL" in parity and "quantization &lt;moved&gt; ties" in parity
    pref = section_of(text, "preference")
    assert "wins 12, loses 5, ties 3" in pref and "0.675" in pref and "2 undecided" in pref
    assert "Not measured" in section_of(text, "cases")  # no eval runs to pair

    shown = open_in_browser(browser, out, tmp_path / "rich.png")
    assert len(shown["widths"]) == 1 and shown["widths"][0] > 0  # the metric chart; no train log, no loss plot
    assert shown["errors"] == [] and shown["failed"] == []
    assert png_size(tmp_path / "rich.png")[1] > 1500


def test_odd_shapes_and_no_matplotlib(tmp_path, monkeypatch):
    """Unknown diagnosis / cost / preference shapes render as generic tables; without matplotlib the page keeps its
    tables and says how to get the charts."""
    monkeypatch.setattr(plots, "available", lambda: False)
    summary = {**rich_summary(), "parity": {"odd": True}, "stages": [{"stage": "train", "run": "/gone/run"}]}
    out = build_report(
        tmp_path,
        summary,
        diagnosis=["just", "<a list>"],
        cost={"total": 3.5},
        preference=[PREFERENCE, {"judge": "llm", "wins": 1, "losses": 0, "ties": 0}],
        out=tmp_path / "report.html",
    )
    text = out.read_text(encoding="utf-8")
    assert "<img" not in text and "install matplotlib" in text
    assert "&lt;a list&gt;" in section_of(text, "diagnosis")
    assert "total" in section_of(text, "cost") and "3.5" in section_of(text, "cost")
    assert "odd" in section_of(text, "parity")
    pref = section_of(text, "preference")
    assert "human" in pref and "llm" in pref
    # Diagnosis, cost and preference may also come inside the summary (how `tunesmith run` can hand them over).
    inside = build_report(
        tmp_path,
        {**rich_summary(), "diagnosis": DIAGNOSIS, "cost": COST, "human_preference": PREFERENCE},
        out=tmp_path / "inside.html",
    )
    text = inside.read_text(encoding="utf-8")
    assert "template_mismatch" in text and COST["line"] in text and "wins 12" in text


def test_report_command(ran, tmp_path):
    project, summary = ran
    app = typer.Typer()
    app.command("noop")(lambda: None)  # two commands, so `report` is a subcommand as in the real app
    register(app)
    runner = CliRunner()

    result = runner.invoke(app, ["report", str(project)])
    assert result.exit_code == 0, result.output
    compare_dir = next(Path(s["run"]) for s in summary["stages"] if s["stage"] == "compare")
    assert f"Report: {compare_dir / 'report.html'}" in result.output.replace("\n", "")
    assert (project / ".tunesmith" / "report.html").exists()

    # A compare run by (part of) its name, with a human preference and a diagnosis from files.
    (tmp_path / "pref.json").write_text(json.dumps(PREFERENCE))
    (tmp_path / "diag.json").write_text(json.dumps(DIAGNOSIS))
    out = tmp_path / "named.html"
    result = runner.invoke(
        app,
        [
            "report",
            compare_dir.name[-10:],
            "--project",
            str(project),
            "--out",
            str(out),
            "--preference",
            str(tmp_path / "pref.json"),
            "--diagnosis",
            str(tmp_path / "diag.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert "wins 12, loses 5, ties 3" in text and "template_mismatch" in text

    # Not a run of `tunesmith run`: a clear error naming the run (exit 2 through the real entry point).
    from tunesmith.errors import TunesmithError

    train_dir = next(Path(s["run"]) for s in summary["stages"] if s["stage"] == "train")
    result = runner.invoke(app, ["report", str(train_dir)])
    assert isinstance(result.exception, TunesmithError) and "summary.json" in str(result.exception)
    result = runner.invoke(app, ["report", str(tmp_path / "nothing-here"), "--project", str(project)])
    assert isinstance(result.exception, TunesmithError)


# --- the ship verdict, the cheaper alternatives and a label task's confusions ----------------------------------

VERDICT = {
    "ship": False,
    "headline": "Do not ship: the TF-IDF classifier scores 0.780 vs the tuned model's 0.228 <on> heldout",
    "reasons": [
        "gate on heldout.task_accuracy: tuned 0.228 is below the target 0.850",
        "the TF-IDF classifier beats the tuned model on heldout.task_accuracy: 0.780 vs 0.228",
    ],
    "instead": "the TF-IDF classifier (0.780 vs 0.228 on heldout.task_accuracy, 5 seconds to train)",
    "alternatives": [
        {
            "name": "classifier",
            "label": "the TF-IDF classifier",
            "metric": "heldout.task_accuracy",
            "value": 0.78,
            "tuned": 0.228,
            "delta": -0.552,
            "ci_low": -0.61,
            "ci_high": -0.48,
            "verdict": "worse",
            "train_s": 4.8,
            "significant": True,
            "beats_tuned": True,
        },
        {
            "name": "few_shot",
            "label": "few-shot prompting of the base model",
            "metric": "heldout.task_accuracy",
            "value": 0.16,
            "tuned": 0.228,
            "delta": 0.068,
            "ci_low": 0.03,
            "ci_high": 0.11,
            "verdict": "better",
            "train_s": None,
            "significant": True,
            "beats_tuned": False,
        },
    ],
}


def test_verdict_banner_and_alternatives(tmp_path):
    text = build_report(tmp_path, {**rich_summary(), "verdict": VERDICT}, out=tmp_path / "v.html").read_text()
    banner = text.split('id="verdict"', 1)[0].rsplit("<section", 1)[1] + section_of(text, "verdict")
    assert 'class="verdict fail"' in banner and "ship it" not in banner  # the gates pass, the verdict does not
    assert "the tuned model&#x27;s 0.228 &lt;on&gt; heldout" in banner
    assert "tuned 0.228 is below the target 0.850" in banner
    assert "<b>Instead: </b>the TF-IDF classifier (0.780 vs 0.228" in banner
    assert "tuned beats base" in banner  # the gates are still listed (folded)
    alts = section_of(text, "alternatives")
    assert "Not measured" not in alts and "the TF-IDF classifier" in alts and "few-shot prompting" in alts
    assert "0.780" in alts and "-0.552" in alts and "-0.610 .. -0.480" in alts and "4.8 s" in alts
    assert '<td class="num">none</td>' in alts  # few-shot prompting trains nothing
    assert '<span class="badge bad">worse</span>' in alts and '<span class="badge good">better</span>' in alts
    broke = section_of(text, "glance").split("What broke", 1)[1]
    assert "the TF-IDF classifier" in broke and "few-shot" not in broke
    shipping = {**VERDICT, "ship": True, "headline": "Ship it: the tuned model scores 0.900", "instead": None}
    text = build_report(tmp_path, {**rich_summary(), "verdict": shipping}, out=tmp_path / "s.html").read_text()
    assert 'class="verdict pass"' in text and "Ship it: the tuned model scores 0.900" in text
    assert "Instead:" not in text
    plain = build_report(tmp_path, rich_summary(), out=tmp_path / "p.html").read_text()
    assert "Not measured: no cheaper alternative" in section_of(plain, "alternatives")
    assert "Not measured" in section_of(plain, "labels")


def _label_runs(root: Path, task: dict) -> dict:
    """A summary whose split, eval-base and eval-tuned runs hold a label task's records and results."""
    intents = ["card_arrival", "lost_card", "exchange_rate"]
    dirs = {name: root / name for name in ("split", "eval-base", "eval-tuned")}
    for d in dirs.values():
        d.mkdir(parents=True)
    train = [
        {
            "messages": [
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": json.dumps({"intent": intents[i % 3]})},
            ]
        }
        for i in range(30)
    ]
    (dirs["split"] / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))

    def result(i: int, output: str) -> dict:
        want = {"intent": intents[i % 3]}
        ok = json.loads(output).get("intent") == want["intent"] if output.startswith("{") else False
        return {
            "suite": "heldout",
            "id": f"c{i}",
            "where": f"t.jsonl:{i}",
            "prompt": f"<i>question</i> {i}",
            "expected": want,
            "output": output,
            "scores": {"field:intent": ok, "task_correct": ok},
        }

    tuned = [result(i, json.dumps({"intent": "card_arrival" if i % 3 == 1 else intents[i % 3]})) for i in range(12)]
    base = [result(i, "no idea") for i in range(12)]
    for name, rows in (("eval-base", base), ("eval-tuned", tuned)):
        (dirs[name] / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (dirs["eval-tuned"] / "config.yaml").write_text(json.dumps({"task": task}))  # JSON is YAML
    return {**rich_summary(), "stages": [{"stage": k, "run": str(v), "cached": True} for k, v in dirs.items()]}


def test_labels_section_of_a_label_task(tmp_path):
    summary = _label_runs(tmp_path / "runs", {"type": "json"})
    text = build_report(tmp_path, summary, out=tmp_path / "l.html").read_text()
    labels = section_of(text, "labels")
    assert "Not measured" not in labels and "Most confused labels" in labels
    assert '<td>intent</td><td>lost_card</td><td>card_arrival</td><td class="num">4</td>' in labels
    assert "4 heldout case(s) are wrong for both; the first 4" not in labels  # all 4 shown: no "first"
    assert "4 heldout case(s) are wrong for both:" in labels
    assert "&lt;i&gt;question&lt;/i&gt; 1" in labels and "no idea" in labels
    chat = _label_runs(tmp_path / "chat", {"type": "chat"})
    text = build_report(tmp_path, chat, out=tmp_path / "c.html").read_text()
    assert "Not measured: not a label task (task.type is chat" in section_of(text, "labels")


def test_the_run_summary_line_names_the_labels_oversampled():
    from rich.console import Console

    from tunesmith.cli.render.eval import print_summary

    console = Console(record=True, width=200)
    print_summary(rich_summary(), console)
    training = [line for line in console.export_text().splitlines() if line.startswith("Training:")]
    assert training and training[0].endswith("; out_of_scope shown 4x a pass")


def test_loss_chart_draws_the_task_and_general_rows_apart():
    """A run with general data logs the loss of its task and general rows apart; the chart's train curve is the
    task's, the general rows' a second line (a logged mix would zigzag with every general batch)."""
    from tunesmith.report.plots import _loss_series, general_label, loss_chart

    log = [
        {"step": 1, "loss": 2.0, "loss_task": 2.0},
        {"step": 2, "loss": 1.5, "loss_task": 1.0, "loss_general": 2.0},
        {"step": 3, "loss": 0.5, "loss_task": 0.5},
    ]
    series = _loss_series(log)
    assert series["train"] == [(1, 2.0), (2, 1.0), (3, 0.5)] and series["general"] == [(2, 2.0)]
    assert _loss_series([{"step": 1, "loss": 2.0}])["train"] == [(1, 2.0)]  # no kinds logged: the loss as it is
    assert loss_chart(log).startswith("data:image/png;base64,")
    assert loss_chart(log, 3.0).startswith("data:image/png;base64,")
    assert general_label(3.0) == "general rows: 3 x KL from the base"  # the KL term's curve is named as such
    assert general_label(None) == general_label(0.0) == "train loss (general rows)"
    from tunesmith.report.training_run import training

    page = training({"train": {"steps": 3, "general_kl": 3.0}}, log)
    assert "the general rows&#x27; is 3 x their KL divergence from the base" in page  # the caption
    assert "KL weight (train.general_kl; 0: not applied)</th><td>3.0000" in page  # the run's numbers


# ------------------------------------------------------------------------------------ what was paid, and the judge


def _summary_of(stages: list, final_wall_s: float, hourly_usd: float | None = 2.0) -> dict:
    from types import SimpleNamespace

    from tunesmith.config import Config
    from tunesmith.pipeline.summary import build_summary
    from tunesmith.train.result import TrainResult

    cfg = Config.model_validate({"budget": {"hourly_usd": hourly_usd}})
    pipe = SimpleNamespace(project=Path("/p"), stages=stages)
    compared = {"gate": {"passed": True}, "confidence": 0.95, "metrics": []}
    evaluated = SimpleNamespace(metrics={})
    return build_summary(cfg, pipe, compared, evaluated, evaluated, TrainResult(wall_s=final_wall_s))


def test_the_training_cost_of_a_tuned_run_prices_every_trial_it_trained():
    """`--tune`: four 15-min trials trained in this run, the last one chosen (the train stage reuses its run): 1 h
    of training at $2/h is $2.00, the search's three other trials shown apart from the chosen recipe's run."""
    from tunesmith.pipeline.machinery import Stage
    from tunesmith.report.costs import cost, paid
    from tunesmith.train.result import TrainResult

    trials = [
        Stage("train", f"k{i}", Path(f"/r/t{i}"), cached=False, wall_s=905.0, result=TrainResult(wall_s=900.0))
        for i in range(4)
    ]
    chosen = Stage("train", "k3", Path("/r/t3"), cached=True, result=TrainResult(wall_s=900.0))
    summary = _summary_of([*trials, chosen], 900.0)
    assert summary["train_cost_usd"] == pytest.approx(2.0)
    spent = summary["train_cost"]
    assert (spent["search_trials"], spent["search_s"], spent["final_s"], spent["final_reused"]) == (3, 2700, 900, False)
    assert spent["search_usd"] == pytest.approx(1.5) and spent["final_usd"] == pytest.approx(0.5)
    lines = dict(paid(summary, None))
    assert lines["training wall time"] == "15 min 0 s" and lines["recipe search"] == "3 other trials, 45 min 0 s, $1.50"
    assert lines["training cost"] == "$2.00 (search and final run)"
    page = html.unescape(cost(None, summary))
    assert (
        "Training: $2.00 at the configured hourly price: the recipe search's 3 other trials, 45 min 0 s, $1.50, "
        "and the chosen recipe's run, 15 min 0 s, $0.50." in page
    )


def test_the_training_cost_of_a_plain_run_is_its_one_training():
    from tunesmith.pipeline.machinery import Stage
    from tunesmith.report.costs import paid
    from tunesmith.train.result import TrainResult

    fresh = _summary_of([Stage("train", "k", Path("/r/t"), cached=False, wall_s=910.0)], 900.0)
    assert fresh["train_cost_usd"] == pytest.approx(0.5) and fresh["train_cost"]["search_trials"] == 0
    lines = dict(paid(fresh, None))
    assert "recipe search" not in lines and lines["training cost"] == "$0.50"
    reused = _summary_of([Stage("train", "k", Path("/r/t"), cached=True, result=TrainResult(wall_s=900.0))], 900.0)
    assert reused["train_cost_usd"] == pytest.approx(0.5) and reused["train_cost"]["final_reused"] is True
    assert dict(paid(reused, None))["training wall time"] == "15 min 0 s (trained by an earlier run, reused)"
    assert _summary_of([Stage("train", "k", Path("/r/t"), cached=False)], 900.0, None)["train_cost_usd"] is None


def test_the_cost_section_with_baselines_and_no_inference_cost():
    """`cost_per_success` lists a baseline but the run has no `cost` module result: the section still renders."""
    from tunesmith.report.costs import cost

    rows = [
        {"model": m, "suite": "heldout", "cases": 10, "unscored": u, "successes": 4, "success_rate": 0.8}
        for m, u in (("base", 0), ("tuned", 5), ("classifier", 0))
    ]
    page = cost(None, {"cost_per_success": rows})
    assert "classifier" in page and '<th class="num">unscored</th>' in page
    no_unscored = cost(None, {"cost_per_success": [{**r, "unscored": 0} for r in rows]})
    assert "unscored" not in no_unscored  # the column only where a case went unscored


def test_durations_dollars_and_confidence_levels_read_right():
    from tunesmith.report.comparison import metrics
    from tunesmith.report.markup import duration, percent, usd

    assert [duration(s) for s in (59.4, 59.97, 119.7, 125, 3599.4, 3599.6, 7199, 7231)] == [
        "59.4 s",
        "1 min 0 s",
        "2 min 0 s",
        "2 min 5 s",
        "59 min 59 s",
        "1 h 0 min",
        "2 h 0 min",
        "2 h 1 min",
    ]
    assert [usd(x) for x in (0, 0.5, 0.0875, 0.01, 0.0013, 1234.5)] == [
        "$0.00",
        "$0.50",
        "$0.09",
        "$0.01",
        "$0.0013",
        "$1,234.50",
    ]
    assert [percent(c) for c in (0.95, 0.99, 0.995, 0.999)] == ["95%", "99%", "99.5%", "99.9%"]
    row = {"suite": "heldout", "metric": "task_accuracy", "n": 10, "base": 0.5, "tuned": 0.6, "delta": 0.1}
    page = metrics({"confidence": 0.995, "metrics": [{**row, "ci_low": -0.1, "ci_high": 0.3, "verdict": None}]})
    assert "99.5% CI" in page and "100% CI" not in page


def test_the_judge_counts_a_case_the_candidate_did_not_answer_as_its_loss(monkeypatch):
    """10 held-out cases, 4 the tuned model did not answer: the judge prefers it on the 6 it answered, and the 4
    count as losses (6 of 10, not 6 of 6); a case only the baseline left unanswered is a win, one neither answered
    is left out; the report says how many."""
    from tunesmith.config import Config
    from tunesmith.eval import judge
    from tunesmith.eval.pairing import judge_comparisons
    from tunesmith.eval.stats import preference_counts, win_rate
    from tunesmith.report.after_training import preference_text

    class Judge:  # prefers the candidate wherever both answered
        def __init__(self, endpoint) -> None:
            self.name = "fake"

        def compare(self, prompts, outputs_a, outputs_b, confidence=0.95, bootstrap_samples=2000):
            assert None not in outputs_a + outputs_b
            won = ["win"] * len(prompts)
            return {
                "judge": self.name,
                "cases": len(prompts),
                "judged": len(won),
                **preference_counts(won),
                "errors": [],
                "outcomes": won,
                **win_rate(won, bootstrap_samples, confidence),
            }

    monkeypatch.setattr(judge, "PairwiseJudge", Judge)
    cfg = Config.model_validate({"eval": {"judge": {"base_url": "http://127.0.0.1:9/v1", "model": "j"}}})

    def rows(unanswered: set[int], n: int = 10) -> list[dict]:
        return [
            {"suite": "heldout", "id": str(i), "prompt": f"p{i}", "output": None if i in unanswered else "reply"}
            for i in range(n)
        ]

    comps = [{}]
    judge_comparisons(comps, [("base", rows(set())), ("tuned", rows({0, 1, 2, 3}))], cfg)
    pref = comps[0]["preference"]
    assert (pref["wins"], pref["losses"], pref["judged"], pref["cases"]) == (6, 4, 10, 10)
    assert pref["win_rate"] == pytest.approx(0.6) and pref["verdict"] == "no significant difference"
    assert pref["unanswered"] == {"candidate": 4, "baseline": 0, "neither": 0}
    assert "4 unanswered by tuned, counted as losses" in preference_text({**pref, "candidate": "tuned"})
    comps = [{}]
    judge_comparisons(comps, [("base", rows({4, 5})), ("tuned", rows({5}))], cfg, limit=8)
    pref = comps[0]["preference"]
    assert (pref["wins"], pref["losses"], pref["judged"]) == (7, 0, 7)
    assert pref["unanswered"] == {"candidate": 0, "baseline": 1, "neither": 1}
