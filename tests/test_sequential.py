"""Few-shot prompting asked in rounds (`eval.few_shot_stop`): it stops once it is clearly below the classifier on
the cases asked so far, is asked every case otherwise, and never generates a case twice."""

from __future__ import annotations

import json

from tunesmith.config import Config, TaskConfig
from tunesmith.data.records import Record
from tunesmith.eval.evaluate import evaluate
from tunesmith.eval.sequential import evaluate_in_rounds, rounds, stopped_line
from tunesmith.eval.suite import cases_from_records
from tunesmith.generate.backends import Backend, Generation
from tunesmith.generate.cache import GenerationCache

LABELS = ["card_arrival", "lost_card", "exchange_rate", "top_up_failed"]


class Scripted(Backend):
    """Answers a case right (its expected intent) unless `wrong(i)` for the case's number; counts what it is asked."""

    def __init__(self, name: str, wrong) -> None:
        self.fingerprint, self.wrong, self.asked = name, wrong, []

    def prompt_key(self, case) -> str:
        return json.dumps(case.messages)

    def answer(self, cases, request):
        out = []
        for case in cases:
            i = int(case.messages[-1]["content"].split()[-1])
            self.asked.append(i)
            label = LABELS[(i + self.wrong(i)) % 4]
            out.append(Generation(json.dumps({"intent": label}), 6, False, 0.01))
            request.done(len(out) - 1, out[-1])
        return out


def setup(n: int):
    cfg = Config()
    cfg.task = TaskConfig(type="json", match_fields=["intent"])
    cfg.eval.bootstrap_samples = 400
    recs = [
        Record(
            messages=[
                {"role": "user", "content": f"question {i}"},
                {"role": "assistant", "content": json.dumps({"intent": LABELS[i % 4]})},
            ],
            id=f"case-{i:03d}",
        )
        for i in range(n)
    ]
    return cfg, cases_from_records(recs, cfg.task)


def reference_rows(cfg, cases, tmp_path) -> list[dict]:
    """The classifier's rows: right on every case but one in ten."""
    (tmp_path / "clf").mkdir()
    evaluate(Scripted("clf", lambda i: i % 10 == 0), {"heldout": cases}, cfg, tmp_path / "clf")
    return [json.loads(line) for line in (tmp_path / "clf" / "results.jsonl").read_text().splitlines()]


def rows_of(out) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_rounds_are_a_quarter_a_half_and_all():
    assert rounds(600) == [150, 300, 600]
    assert rounds(250) == [100, 125, 250]  # never fewer than 100 cases judged
    assert rounds(199) == [199]  # too few to stop on: asked at once


def test_a_baseline_clearly_below_the_classifier_stops_after_the_first_round(tmp_path):
    cfg, cases = setup(400)
    ref = reference_rows(cfg, cases, tmp_path)
    weak = Scripted("weak", lambda i: i % 2 == 0)  # right on half the cases
    (tmp_path / "fs").mkdir()
    cache = GenerationCache(tmp_path / "cache.sqlite")
    metrics, stopped = evaluate_in_rounds(
        weak, cases, ref, "classifier", cfg, tmp_path / "fs", None, "few_shot", cache, None, {}
    )
    rows = rows_of(tmp_path / "fs")
    assert stopped is not None and stopped["asked"] == 100 and stopped["of"] == 400
    assert len(rows) == 100 and sorted(weak.asked) == sorted(int(r["id"][5:]) for r in rows)
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)  # in case order
    assert {int(r["id"][5:]) % 4 for r in rows} == {0, 1, 2, 3}  # a random sample, not the first hundred
    assert max(int(r["id"][5:]) for r in rows) > 200
    assert metrics["heldout"]["cases"] == 100
    assert stopped["value"] < stopped["versus_value"] and stopped["ci_high"] < 0 and stopped["confidence"] == 0.995
    assert stopped["metric"] == "heldout.task_accuracy"
    assert "stopped after 100 of 400 held-out cases, clearly below the classifier" in stopped_line(stopped)


def test_a_baseline_as_good_as_the_classifier_is_asked_every_case_once(tmp_path):
    cfg, cases = setup(400)
    ref = reference_rows(cfg, cases, tmp_path)
    good = Scripted("good", lambda i: i % 10 == 5)
    (tmp_path / "fs").mkdir()
    metrics, stopped = evaluate_in_rounds(
        good, cases, ref, "classifier", cfg, tmp_path / "fs", None, "fs", None, None, {}
    )
    assert stopped is None and metrics["heldout"]["cases"] == 400 and len(rows_of(tmp_path / "fs")) == 400
    # without the project's cache the rounds share one of their own: no case generated twice
    assert sorted(good.asked) == list(range(400))


def test_a_small_test_set_is_asked_at_once(tmp_path):
    cfg, cases = setup(120)
    ref = reference_rows(cfg, cases, tmp_path)
    weak = Scripted("weak", lambda i: True)  # wrong on every case, yet too few cases to stop on
    (tmp_path / "fs").mkdir()
    metrics, stopped = evaluate_in_rounds(
        weak, cases, ref, "classifier", cfg, tmp_path / "fs", None, "fs", None, None, {}
    )
    assert stopped is None and metrics["heldout"]["cases"] == 120 and metrics["heldout"]["task_accuracy"] == 0


def test_the_stop_is_shown_in_the_terminal_and_the_report():
    from rich.console import Console

    from tunesmith.cli.render.columns import print_baseline_notes
    from tunesmith.report.side_by_side import missing_notes

    stopped = {
        "asked": 150,
        "of": 600,
        "versus": "classifier",
        "metric": "heldout.task_accuracy",
        "value": 0.56,
        "versus_value": 0.8,
        "ci_low": -0.33,
        "ci_high": -0.15,
        "confidence": 0.995,
    }
    console = Console(record=True, width=300)
    print_baseline_notes({"few_shot": {"stopped": stopped}, "classifier": {}}, console)
    said = console.export_text()
    expected = (
        "few_shot: stopped after 150 of 600 held-out cases, clearly below the classifier on them "
        "(heldout.task_accuracy 0.560 vs 0.800, 99.5% interval of the difference -0.330 to -0.150); "
        "its values are on those cases"
    )
    assert expected in said and said.count("stopped") == 1
    assert expected in str(missing_notes({"baselines": {"few_shot": {"stopped": stopped}}}))
