"""The synthetic-data path from the command line: `data synth` against a real teacher server, `review sample`,
decisions, `review summary`, `review mix`; and `review ab` feeding `eval compare --human-preference`."""

import json

from typer.testing import CliRunner

from test_synth import serve as teacher_server
from tunesmith.cli import app
from tunesmith.data.io import read_jsonl
from tunesmith.review import ReviewStore, load_state

cli = CliRunner()


def test_synth_review_and_mix_from_the_command_line(tiny_project, tmp_path, monkeypatch):
    monkeypatch.setenv("TEACHER_KEY", "k")
    synth, review, mixed = tmp_path / "synth.jsonl", tmp_path / "review", tmp_path / "mixed.jsonl"
    with teacher_server() as server:
        args = [
            "data",
            "synth",
            str(tiny_project),
            "--out",
            str(synth),
            "--n",
            "8",
            "--endpoint",
            server.base_url,
            "--endpoint-model",
            "big-teacher",
            "--api-key-env",
            "TEACHER_KEY",
            "--operators",
            "paraphrase=2,typos=1,refuse=1",
            "--input-usd-per-mtok",
            "1",
            "--output-usd-per-mtok",
            "2",
        ]
        res = cli.invoke(app, args)
        assert res.exit_code == 0, res.output
        calls = len(server.requests)
        assert "synthetic record(s) kept" in res.output and "$" in res.output
        again = cli.invoke(app, args)  # resumes from the project's generation cache: no paid call twice
        assert again.exit_code == 0 and len(server.requests) == calls
    rows = [o for _, o in read_jsonl(synth)]
    assert rows and all(r["meta"]["synthetic"]["teacher"] for r in rows)

    res = cli.invoke(
        app, ["review", "sample", str(synth), "--review-dir", str(review), "--fraction", "0.5", "--no-serve"]
    )
    assert res.exit_code == 0, res.output
    store = ReviewStore(review)
    for i, item in enumerate(store.current().items):
        store.decide(item.id, item.version, "reject" if i == 0 else "keep")
    res = cli.invoke(app, ["review", "summary", str(review), "--json"])
    summary = json.loads(res.output)
    assert summary["complete"] and summary["rejected"] == 1 and summary["ci_low"] < summary["pass_rate"]
    res = cli.invoke(
        app,
        [
            "review",
            "mix",
            "--real",
            str(tiny_project / "data" / "tickets.jsonl"),
            "--review-dir",
            str(review),
            "--out",
            str(mixed),
            "--max-synthetic-share",
            "0.1",
            "--accept",
        ],
    )
    assert res.exit_code == 0, res.output
    out = [o for _, o in read_jsonl(mixed)]
    real = [o for o in out if not (o.get("meta") or {}).get("synthetic")]
    assert len(real) == 30 and 0 < len(out) - 30 <= round(0.1 * len(out)) + 1  # every real record, capped share


def test_blind_ab_result_flows_into_eval_compare(tiny_project, tmp_path):
    from tunesmith.pipeline import evaluate_model

    a = evaluate_model(tiny_project).run_dir
    b = evaluate_model(tiny_project, overrides=["eval.max_new_tokens=4"]).run_dir
    review = tmp_path / "ab"
    res = cli.invoke(
        app, ["review", "ab", str(a), str(b), "--review-dir", str(review), "--names", "long,short", "--no-serve"]
    )
    assert res.exit_code == 0, res.output
    store = ReviewStore(review)
    for item in store.current().items:
        store.decide(item.id, item.version, "tie" if item.case.endswith("0") else "left")
    assert load_state(review)[0].kind == "preference"
    res = cli.invoke(
        app,
        [
            "eval",
            "compare",
            str(a),
            str(b),
            "--project",
            str(tiny_project),
            "--human-preference",
            str(review),
            "--json",
        ],
    )
    comp = json.loads(res.output)[0]
    pref = comp["preference_human"]
    assert pref["judge"] == "human" and pref["judged"] == len(store.current().items) > 0
    assert pref["wins"] + pref["losses"] + pref["ties"] == pref["judged"] and "win_rate" in pref
