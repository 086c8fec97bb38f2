"""Baselines beside the base: an OpenAI-compatible endpoint (a fake server plays the hosted fine-tune) and recorded
replies in `eval.baselines`, `vs:` gates, the side-by-side columns and the cost per successful task of every
model; and the config errors that name what is wrong."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chat_server import ChatServer
from conftest import QUEUES, write_jsonl
from tunesmith.config import Config, GateConfig, RecordedBaseline, load_config
from tunesmith.cost import token_cost, token_counter
from tunesmith.errors import TunesmithError
from tunesmith.eval.baselines import applicable
from tunesmith.eval.compare import compare, compare_to_baselines, side_by_side
from tunesmith.eval.named_baselines import named_baselines, score_recorded
from tunesmith.eval.suite import EvalCase
from tunesmith.eval.verdict import ship_verdict

runner = CliRunner()
N = 100


def rows(right: int, n: int = N) -> list[dict]:
    """`n` held-out cases of which the first `right` pass."""
    return [
        {"suite": "heldout", "id": str(i), "tags": [], "scores": {"task_correct": i < right}, "output": "x"}
        for i in range(n)
    ]


def config(*gates: GateConfig, baselines=("few_shot",)) -> Config:
    cfg = Config()
    cfg.eval.bootstrap_samples = 200
    cfg.eval.baselines = [*baselines, RecordedBaseline(name="hosted", responses="r.jsonl")]
    cfg.eval.gates = list(gates)
    return cfg


def weigh(base: int, tuned: int, hosted: int, cfg: Config) -> tuple[dict, dict]:
    """(compare result, ship verdict) of a run whose only alternative is `hosted`."""
    tuned_rows = rows(tuned)
    against = compare_to_baselines(tuned_rows, {"hosted": rows(hosted)}, cfg, {"hosted": {"label": "hosted (x)"}})
    cmp = compare(rows(base), tuned_rows, cfg, versus={n: a["metrics"] for n, a in against.items()})
    return cmp, ship_verdict(cmp, against, cfg)


# --- config -----------------------------------------------------------------------------------------------------


def _load(tmp_path, eval_yaml: str):
    (tmp_path / "tunesmith.yaml").write_text(f"eval: {eval_yaml}\n")
    return load_config(tmp_path)[0]


def _problems(tmp_path, eval_yaml: str) -> list[str]:
    with pytest.raises(TunesmithError) as err:
        _load(tmp_path, eval_yaml)
    # FILE:LINE [PATH] read as FILE: PATH (the line is tested in test_config)
    return [LINE.sub(r": \1", p.where) + f": {p.message}" for p in err.value.problems]


LINE = re.compile(r":\d+ \[(.+)\]$")


def test_baseline_entries_and_their_config_errors(tmp_path):
    cfg = _load(
        tmp_path,
        "{baselines: [auto, {name: hosted, base_url: 'http://h/v1', model: ft, input_usd_per_mtok: 0.3}, "
        "{name: export, responses: r.jsonl}], gates: [{metric: task_accuracy, min_delta: -0.02, vs: hosted}]}",
    )
    assert [e.name for e in named_baselines(cfg)] == ["hosted", "export"]
    assert cfg.eval.gates[0].vs == "hosted" and named_baselines(cfg)[0].input_usd_per_mtok == 0.3
    assert _load(tmp_path, "{baselines: [classifier]}").eval.baselines == ["classifier"]  # as before
    assert _load(tmp_path, "{}").eval.baselines == "auto"
    # each problem names the file and the field, without pydantic's union tags
    (bad,) = _problems(tmp_path, "{baselines: [classifier, {name: hosted, base_url: u}]}")
    assert bad.endswith("eval.baselines[1].model: Field required") and str(tmp_path) in bad
    (bad,) = _problems(tmp_path, "{baselines: [clasifier]}")
    assert "eval.baselines[0]: Input should be 'auto', 'classifier' or 'few_shot'" in bad
    (bad,) = _problems(tmp_path, "{baselines: [{name: h, responses: r.jsonl}, {name: h, base_url: u, model: m}]}")
    assert "eval.baselines" in bad and "two baselines are called 'h'" in bad
    for taken in ("base", "tuned", "classifier", "few_shot"):
        (bad,) = _problems(tmp_path, f"{{baselines: [{{name: {taken}, responses: r.jsonl}}]}}")
        assert f"may not be called {taken!r}" in bad
    (bad,) = _problems(tmp_path, "{baselines: [few_shot, {name: hosted, responses: r.jsonl}], gate: {vs: hostd}}")
    assert "gate.vs: 'hostd' is not a baseline; the baselines: few_shot, hosted" in bad
    (bad,) = _problems(tmp_path, "{gates: [{vs: hosted}]}")
    assert "gates[0].vs: 'hosted' is not a baseline; the baselines: classifier, few_shot" in bad
    (bad,) = _problems(tmp_path, "{baselines: [{name: h, responses: r}], gate: {vs: h, metric: redteam.task_accuracy}}")
    assert "measured on the held-out cases only" in bad


def test_auto_as_a_list_entry_runs_the_builtin_baselines_that_apply():
    from test_baselines import intent_rows, json_cfg, records

    cfg = json_cfg()
    labelled = records(intent_rows(30))
    cfg.eval.baselines = ["auto", RecordedBaseline(name="hosted", responses="r.jsonl")]
    assert applicable(cfg, labelled) == ["classifier", "few_shot"]
    cfg.eval.baselines = ["few_shot", RecordedBaseline(name="hosted", responses="r.jsonl")]
    assert applicable(cfg, labelled) == ["few_shot"]


# --- vs: gates and the verdict ----------------------------------------------------------------------------------


def test_a_vs_gate_judges_the_tuned_model_against_its_baseline():
    non_inferior = GateConfig(metric="task_accuracy", min_delta=-0.05, require_significant=False, vs="hosted")
    cfg = config(non_inferior)
    cmp, verdict = weigh(base=40, tuned=80, hosted=82, cfg=cfg)  # 2 points below the hosted model: allowed
    vs = cmp["gates"][1]
    assert vs["passed"] is True and vs["vs"] == "hosted" and vs["reason"] == "within the allowed drop from hosted"
    assert vs["delta"] == pytest.approx(-0.02)
    assert cmp["gates"][0]["reason"] == "tuned beats base"  # the base gate names what it compared with too
    # the hosted model scores higher, but the gate that names it decides: the tuned model ships
    assert verdict["ship"] is True and "stays within the allowed drop from hosted (x) (0.820)" in verdict["headline"]
    assert verdict["alternatives"][0]["judged_by_gate"] is True
    cmp, verdict = weigh(base=40, tuned=70, hosted=82, cfg=cfg)  # 12 points below: not non-inferior
    assert cmp["gates"][1]["passed"] is False and cmp["gate"]["passed"] is False
    assert "improvement -0.120 over hosted is not above -0.050" in cmp["gates"][1]["reason"]
    assert verdict["ship"] is False and "hosted" in verdict["headline"]
    # without a vs: gate, a baseline that scores higher keeps the tuned model from shipping, as for classifier
    cmp, verdict = weigh(base=40, tuned=80, hosted=82, cfg=config())
    assert cmp["gate"]["passed"] is True and verdict["ship"] is False
    assert verdict["headline"].startswith("Do not ship: hosted (x) scores 0.820")


def test_a_vs_gate_without_its_baseline_fails_and_eval_compare_leaves_it_out():
    cfg = config(GateConfig(metric="task_accuracy", min_delta=-0.05, vs="hosted"))
    out = compare(rows(40), rows(80), cfg, versus={})
    assert out["gates"][1]["passed"] is False and "hosted was not measured" in out["gates"][1]["reason"]
    assert len(compare(rows(40), rows(80), cfg)["gates"]) == 1  # eval compare: no baselines, no vs: gate
    cfg.eval.gate = GateConfig(vs="hosted")
    cfg.eval.gates = []
    only = compare(rows(40), rows(80), cfg)
    assert only["gates"] == [] and only["gate"]["passed"] is True and "no gate applies" in only["gate"]["reason"]


def test_side_by_side_puts_every_model_in_a_column():
    cfg = config()
    cmp = compare(rows(40), rows(80), cfg)
    hosted = compare(rows(82), rows(80), cfg)
    table = side_by_side(
        [("base", cmp["metrics"], "base"), ("tuned", cmp["metrics"], "tuned"), ("hosted", hosted["metrics"], "base")],
        suites=("heldout",),
    )
    assert table["columns"] == ["base", "tuned", "hosted"]
    (row,) = table["rows"]
    assert row["metric"] == "task_accuracy" and row["values"] == {"base": 0.4, "tuned": 0.8, "hosted": 0.82}
    assert row["verdicts"]["tuned"]["verdict"] == "better" and "hosted" not in row["verdicts"]


# --- recorded replies and token costs ---------------------------------------------------------------------------


def _cases(n: int = 4) -> list[EvalCase]:
    return [
        EvalCase(
            id=f"c{i}",
            messages=[{"role": "user", "content": f"ticket {i}: my {QUEUES[i % 3]} problem"}],
            expected=json.dumps({"queue": QUEUES[i % 3]}),
        )
        for i in range(n)
    ]


def test_recorded_replies_are_scored_and_the_cases_without_one_listed(tmp_path):
    cfg = Config()
    cfg.task.type = "json"
    cfg.task.match_fields = ["queue"]
    cases = _cases()
    replies = [{"id": "c0", "output": json.dumps({"queue": "billing"})}]  # right
    replies += [{"prompt": cases[1].messages[-1]["content"], "output": json.dumps({"queue": "billing"})}]  # wrong
    replies += [{"id": "nope", "output": "{}"}]  # matches no case
    write_jsonl(tmp_path / "hosted.jsonl", replies)
    rec = score_recorded(RecordedBaseline(name="hosted", responses="hosted.jsonl"), tmp_path, cases, cfg, None)
    assert rec.missing == ["c2", "c3"] and len(rec.unmatched) == 1 and "hosted.jsonl:3" in rec.unmatched[0].where
    assert rec.metrics["heldout"]["task_accuracy"] == 0.5  # the two answered, not the missing ones as failures
    assert [r["scores"] for r in rec.rows[2:]] == [{}, {}]  # left out of any paired comparison
    assert rec.facts()["unmatched"] == 1
    # replies recorded for a whole training file: those to training (or validation) cases are not held out
    aside = [EvalCase(id="t0", messages=[{"role": "user", "content": "a training ticket"}], expected=None)]
    write_jsonl(tmp_path / "hosted.jsonl", [*replies, {"prompt": "a training ticket", "output": "{}"}])
    rec = score_recorded(RecordedBaseline(name="hosted", responses="hosted.jsonl"), tmp_path, cases, cfg, None, aside)
    assert rec.outside == 1 and [p.where for p in rec.unmatched] == [f"{tmp_path / 'hosted.jsonl'}:3 [id]"]
    assert rec.metrics["heldout"]["task_accuracy"] == 0.5 and rec.facts()["outside"] == 1
    with pytest.raises(TunesmithError) as err:
        score_recorded(RecordedBaseline(name="hosted", responses="gone.jsonl"), tmp_path, cases, cfg, None)
    assert err.value.problems[0].where == "eval.baselines[hosted].responses"


def test_token_cost_uses_reported_usage_or_counts_with_the_base_tokenizer(tiny_tok):
    cases = _cases(2)
    answered = [
        {"suite": "heldout", "id": "c0", "output": "billing", "scores": {"task_correct": True}, "new_tokens": 3},
        {"suite": "heldout", "id": "c1", "output": "shipping", "scores": {"task_correct": False}, "new_tokens": 2},
    ]
    reported = [{**r, "prompt_tokens": 100} for r in answered]
    cost = token_cost(reported, 1.0, 2.0)
    assert (cost["prompt_tokens"], cost["output_tokens"]) == (200, 5)
    assert cost["cost_usd"] == pytest.approx((200 * 1.0 + 5 * 2.0) / 1e6) and cost["successes"] == 1
    assert cost["cost_per_success_usd"] == pytest.approx(cost["cost_usd"]) and "endpoint reported" in cost["basis"]
    counted = token_cost(answered, 1.0, 2.0, count=token_counter(tiny_tok, cases))
    assert "base model's tokenizer" in counted["basis"] and counted["prompt_tokens"] > 2 * 5  # template included
    assert counted["output_tokens"] == sum(len(tiny_tok(r["output"])["input_ids"]) for r in answered)
    unpriced = token_cost(reported, None, None)
    assert unpriced["cost_usd"] is None and unpriced["prompt_tokens"] == 200 and "not priced" in unpriced["basis"]


# --- end to end: a hosted endpoint and recorded replies beside base and tuned -----------------------------------


def _hosted(messages, tools):
    """The 'hosted fine-tune': routes every ticket right."""
    text = messages[-1]["content"]
    return {"content": json.dumps({"queue": next(q for q in QUEUES if q in text), "priority": "normal"})}


def _configure(project, baselines: str) -> None:
    """Set the project's `eval.baselines` (YAML list items), a `vs: hosted` gate and an hourly price."""
    text = (project / "tunesmith.yaml").read_text().split("budget:")[0]
    text = re.sub(r"eval: \{(baselines: \[.*?\], gates: \[.*?\], )?", "eval: {", text)
    extra = f"baselines: [{baselines}], gates: [{{metric: task_accuracy, min_delta: -0.02, vs: hosted}}], "
    (project / "tunesmith.yaml").write_text(text.replace("eval: {", "eval: {" + extra) + "budget: {hourly_usd: 2.0}\n")


def test_run_puts_an_endpoint_and_recorded_replies_beside_base_and_tuned(tiny_project, monkeypatch):
    from tunesmith.cli import app
    from tunesmith.pipeline import run_project

    monkeypatch.setenv("HOSTED_KEY", "sk-test")
    with ChatServer(_hosted) as server:
        hosted = (
            f"{{name: hosted, base_url: '{server.base_url}', model: ft-router, api_key_env: HOSTED_KEY, "
            "input_usd_per_mtok: 0.5, output_usd_per_mtok: 2.0}"
        )
        _configure(tiny_project, f"few_shot, {hosted}")
        first = run_project(tiny_project)
        # the hosted model was asked every held-out case once, with the key and the same decoding as the others
        assert len(server.requests) == 6
        sent = server.requests[0]
        assert sent["authorization"] == "Bearer sk-test" and sent["model"] == "ft-router"
        assert sent["max_tokens"] == 24 and sent["temperature"] == 0 and "response_format" in sent  # json task
        # its replies, recorded (all but the first case's), are a baseline of their own: no API call
        hosted_dir = next(Path(s["run"]) for s in first["stages"] if s["stage"] == "baseline-hosted")
        replies = [json.loads(line) for line in (hosted_dir / "results.jsonl").read_text().splitlines()]
        split = next(Path(s["run"]) for s in first["stages"] if s["stage"] == "split")
        trained_on = json.loads((split / "train.jsonl").read_text().splitlines()[0])["messages"][-2]["content"]
        recorded = [{"id": r["id"], "output": r["output"]} for r in replies[1:]]
        recorded.append({"prompt": trained_on, "output": "{}"})  # a training case's reply: not held out, not scored
        write_jsonl(tiny_project / "export.jsonl", recorded)
        _configure(tiny_project, f"few_shot, {hosted}, {{name: export, responses: export.jsonl}}")
        res = runner.invoke(app, ["run", str(tiny_project)])
        assert res.exit_code == 1, res.output  # do not ship: the random tiny model is no match for the router
        assert len(server.requests) == 6  # the hosted stage was reused: the API was not called again
    summary = json.loads((tiny_project / ".tunesmith" / "summary.json").read_text())
    ran = {s["stage"] for s in summary["stages"] if not s["cached"]}
    assert {"baseline-export", "compare"} <= ran and not ran & {"train", "eval-tuned", "baseline-hosted"}
    # beside base and tuned: the columns, the verdict's alternatives, the gates
    assert summary["side_by_side"]["columns"] == ["base", "tuned", "few_shot", "hosted", "export"]
    acc = next(r for r in summary["side_by_side"]["rows"] if r["metric"] == "task_accuracy")
    assert acc["values"]["hosted"] == acc["values"]["export"] == 1.0  # the recorded replies score as they did
    assert acc["n"]["hosted"] == 6 and acc["n"]["export"] == 5
    assert summary["baselines"]["export"]["missing"] == [replies[0]["id"]]
    assert summary["baselines"]["export"]["outside"] == 1 and summary["baselines"]["export"]["unmatched"] == 0
    labels = {a["name"]: a["label"] for a in summary["verdict"]["alternatives"]}
    assert labels["hosted"] == "hosted (ft-router)" and labels["export"] == "export (recorded replies)"
    vs = summary["gates"][1]
    assert vs["vs"] == "hosted" and vs["passed"] is False and "over hosted is not above -0.020" in vs["reason"]
    assert summary["verdict"]["ship"] is False
    # the cost per successful task of every model: the hosted one from its reported tokens and prices
    costs = {c["model"]: c for c in summary["cost_per_success"]}
    assert list(costs) == ["base", "tuned", "few_shot", "hosted", "export"]
    assert costs["hosted"]["successes"] == 6 and costs["hosted"]["prompt_tokens"] == 60  # 10 per request
    assert costs["hosted"]["cost_usd"] == pytest.approx((60 * 0.5 + costs["hosted"]["output_tokens"] * 2.0) / 1e6)
    assert costs["tuned"]["basis"] == "latency x $2.0/h" and costs["tuned"]["cost_usd"] > 0
    assert costs["export"]["cost_usd"] is None and "not priced" in costs["export"]["basis"]
    # the terminal summary and the HTML report show them side by side
    assert "On the same held-out cases" in res.output and "hosted (ft-router)" in res.output
    assert f"no recorded reply (left out of its comparison): {replies[0]['id']}" in res.output
    assert "export: 1 recorded repl(ies) answer training or validation cases" in " ".join(res.output.split())
    assert "match no case" not in res.output
    assert "FAIL (improvement" in res.output and "over hosted" in res.output
    page = (tiny_project / ".tunesmith" / "report.html").read_text()
    alternatives = page.split('id="alternatives"', 1)[1].split("</section>", 1)[0]
    assert "Side by side on the held-out cases" in alternatives and '<th class="num">export</th>' in alternatives
    assert "Cost per successful task, every model" in page and "no recorded reply" in alternatives
