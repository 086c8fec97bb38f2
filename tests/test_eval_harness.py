"""The eval harness: suites in both formats with per-case errors, every scorer, the built-in general probe, the
endpoint backend and the judge against a real HTTP server on loopback, the generation cache, slices and gates."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from chat_server import ChatServer
from conftest import judged_compare_args, write_jsonl
from tunesmith.cli import app
from tunesmith.config import Config, EndpointConfig, GateConfig, TaskConfig
from tunesmith.eval.compare import compare
from tunesmith.eval.evaluate import evaluate, score_responses
from tunesmith.eval.instructions import INSTRUCTION_IDS
from tunesmith.eval.judge import PairwiseJudge, parse_verdict
from tunesmith.eval.scorers import parse_tool_calls, score_case
from tunesmith.eval.suite import EvalCase, general_probe, load_suite
from tunesmith.generate.backends import EndpointBackend
from tunesmith.generate.cache import GenerationCache

runner = CliRunner()
USER = lambda text: [{"role": "user", "content": text}]


# --- suites -----------------------------------------------------------------------------------------------------


def test_a_bad_suite_line_is_a_per_case_error_and_the_rest_still_load(tmp_path):
    suite = write_jsonl(
        tmp_path / "s.jsonl",
        [
            {"id": "ok", "messages": USER("hi"), "expected": "hello"},
            {"id": "no-messages", "expected": "x"},
            {"id": "bad-scorer", "messages": USER("hi"), "scorers": [{"type": "regexp", "pattern": "a"}]},
            {"id": "bad-regex", "messages": USER("hi"), "scorers": [{"type": "regex", "pattern": "("}]},
            {"key": 7, "prompt": "Write a poem.", "instruction_id_list": ["punctuation:no_commas"], "kwargs": [{}]},
            {
                "key": 8,
                "prompt": "Write.",
                "instruction_id_list": ["keywords:frequency"],
                "kwargs": [{"keyword": "cat", "frequency": 2}],
            },
        ],
    )
    cases = load_suite(suite, TaskConfig())
    by_id = {c.id: c for c in cases}
    assert by_id["ok"].error is None and by_id["ok"].expected == "hello"
    assert "s.jsonl:2 [messages]" in by_id["no-messages"].error
    assert (
        "unknown scorer 'regexp'" in by_id["bad-scorer"].error and "did you mean 'regex'" in by_id["bad-scorer"].error
    )
    assert "s.jsonl:4 [scorers[0]]" in by_id["bad-regex"].error and "bad regex" in by_id["bad-regex"].error
    assert "[instruction_id_list[0]]" in by_id["7"].error and "punctuation:no_comma" in by_id["7"].error
    assert "[kwargs[0]]" in by_id["8"].error and "relation" in by_id["8"].error


def test_broken_cases_are_recorded_in_the_results_and_the_others_scored(tmp_path):
    suite = write_jsonl(
        tmp_path / "s.jsonl",
        [
            {"id": "a", "messages": USER("2+2?"), "expected": 4, "scorers": [{"type": "numeric"}]},
            {"id": "b", "expected": "x"},
        ],
    )
    with ChatServer(lambda m, t: {"content": "It is 4."}) as server:
        backend = EndpointBackend(server.base_url, "rules")
        metrics = evaluate(backend, {"s": load_suite(suite, TaskConfig())}, Config(), tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert rows[0]["scores"]["task_correct"] is True and rows[0]["prompt"] == "2+2?"
    assert rows[1]["output"] is None and "[messages]" in rows[1]["error"]
    assert metrics["s"]["errors"] == 1 and metrics["s"]["task_accuracy"] == 1.0


def test_ifeval_format_is_scored_strict_and_loose_at_prompt_and_instruction_level(tmp_path):
    suite = write_jsonl(
        tmp_path / "ifeval.jsonl",
        [
            {
                "key": 1,
                "prompt": "Say hi without commas.",
                "instruction_id_list": ["punctuation:no_comma"],
                "kwargs": [{}],
            },
            {
                "key": 2,
                "prompt": "Wrap it in quotes and end with 'Bye.'",
                "instruction_id_list": ["startend:quotation", "startend:end_checker"],
                "kwargs": [{}, {"end_phrase": "Bye.", "keyword": None}],
            },  # IFEval dumps pad kwargs with nulls
        ],
    )
    responses = write_jsonl(
        tmp_path / "resp.jsonl",
        [
            {"prompt": "Say hi without commas.", "response": "Hi there friend"},
            {"prompt": "Wrap it in quotes and end with 'Bye.'", "response": 'Sure:\n"Hello. Bye."'},
            {"prompt": "A prompt of no case", "response": "left out, the rest still scored"},
        ],
    )
    rows, m, unmatched = score_responses("ifeval", load_suite(suite, TaskConfig()), responses, Config())
    assert [p.where for p in unmatched] == [f"{responses}:3 [prompt]"] and len(rows) == 2
    # recorded without timings: no latency or throughput figures (not zeros), no behaviour precision
    assert m["latency_s"] is None and m["tokens_per_s"] is None and "refuse_precision" not in m
    # case 2: strict fails the quotation ("Sure:" line; the end check strips quotes, as IFEval's does);
    # loose drops the first line and passes both.
    assert m["prompt_strict_accuracy"] == 0.5 and m["prompt_loose_accuracy"] == 1.0
    assert m["instruction_strict_accuracy"] == pytest.approx(2 / 3)
    assert m["instruction_loose_accuracy"] == 1.0
    assert rows[1]["details"]["instructions"]["ids"] == ["startend:quotation", "startend:end_checker"]


def test_the_builtin_general_probe_has_150_prompts_over_at_least_20_instruction_types():
    cases = general_probe()
    assert len(cases) == 150 and all(c.error is None and c.kind == "general" for c in cases)
    used = {i for c in cases for i in c.instructions}
    assert len(used) >= 20 and used <= set(INSTRUCTION_IDS)
    assert len({c.id for c in cases}) == 150
    assert all(c.messages[0]["role"] == "user" for c in cases)  # no task system prompt on the probe


# --- scorers ----------------------------------------------------------------------------------------------------


def _score(output, scorers, expected=None, tools=None, behavior="answer"):
    case = EvalCase(id="x", messages=USER("q"), expected=expected, scorers=scorers, tools=tools, behavior=behavior)
    details: dict = {}
    return score_case(case, output, TaskConfig(), details=details), details


@pytest.mark.parametrize(
    "spec,expected,good,bad",
    [
        ({"type": "exact"}, "Paris", " Paris", "paris"),
        ({"type": "label"}, "Billing", "billing.", "shipping"),
        ({"type": "json"}, None, '{"a": 1}', "a: 1"),
        ({"type": "json_schema", "schema": {"type": "object", "required": ["a"]}}, None, '{"a": 1}', '{"b": 1}'),
        ({"type": "json_fields", "fields": ["q"]}, {"q": "x", "p": 1}, '{"q": "X", "p": 2}', '{"q": "y"}'),
        # an expected object is compared as JSON (it was its Python repr), nested objects in any key order
        ({"type": "exact"}, {"a": {"b": 1, "c": "x"}}, '{"a": {"c": "x", "b": 1.0}}', '{"a": {"b": 2, "c": "x"}}'),
        (
            {"type": "json_fields", "fields": ["a"]},
            {"a": {"b": 1, "c": "x"}},
            '{"a": {"c": "X", "b": 1}}',
            '{"a": {"b": 1}}',
        ),
        ({"type": "regex", "pattern": r"^Order #\d+$", "flags": "m"}, None, "ok\nOrder #12", "Order 12"),
        ({"type": "numeric"}, 1234, "so #### 1,234", "it is 1235"),
        ({"type": "contains", "text": ["refund", "days"]}, None, "Refund in 5 DAYS", "refund soon"),
        ({"type": "not_contains", "text": "as an ai"}, None, "Sure.", "As an AI, I cannot"),
        ({"type": "behavior", "expected": "refuse"}, None, "I can't help with that.", "Sure, here is how."),
    ],
)
def test_each_scorer_passes_and_fails(spec, expected, good, bad):
    assert _score(good, [spec], expected)[0]["task_correct"] is True
    scores, details = _score(bad, [spec], expected)
    assert scores["task_correct"] is False and scores[f"check:{spec['type']}"] is False


def test_json_values_match_as_a_reader_means_them():
    """Objects whatever their key order, arrays in order, numbers by value ("42" only against a number, so an id
    "007" is not "7"), text ignoring case and spacing."""
    from tunesmith.eval.scorers import values_match

    assert values_match({"city": "Paris", "zip": "75001"}, {"zip": "75001", "city": "paris"})
    assert values_match(42.0, 42) and values_match("42", 42) and values_match("1,000", 1000)
    assert not values_match("007", "7") and not values_match([1, 2], [2, 1]) and not values_match({"a": 1}, "{'a': 1}")
    assert values_match(True, "true") and values_match(None, None) and not values_match(1, 2)


def test_tool_call_scorer_checks_name_schema_and_arguments():
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    want = {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}
    spec = [{"type": "tool_call"}]
    ok = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "paris"}}\n</tool_call>'
    assert _score(ok, spec, want, tools)[0]["task_correct"] is True
    assert parse_tool_calls('{"name": "f", "arguments": "{\\"a\\": 1}"}') == [{"name": "f", "arguments": {"a": 1}}]
    cases = {
        '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>': "called ['get_time']",
        '<tool_call>{"name": "get_weather", "arguments": {"town": "Paris"}}</tool_call>': "schema",
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>': "!=",
        "It is sunny.": "no tool call",
    }
    for output, why in cases.items():
        scores, details = _score(output, spec, want, tools)
        assert scores["task_correct"] is False and why in details["tool_call"], (output, details)


def test_custom_scorer_is_imported_and_its_failure_is_a_per_case_error(tmp_path, monkeypatch):
    (tmp_path / "my_scorers.py").write_text(
        "def polite(output, case):\n    return {'passed': 'please' in output.lower(), 'detail': case['id']}\n"
        "def score(output, case):\n    return len(output) / 10\n"
        "def broken(output, case):\n    raise RuntimeError('bug in the scorer')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _score("Please wait", [{"type": "custom", "function": "my_scorers:polite"}])[0]["task_correct"] is True
    assert _score("Wait", [{"type": "custom", "function": "my_scorers:polite"}])[0]["task_correct"] is False
    spec = {"type": "custom", "function": "my_scorers:score", "threshold": 0.5}
    assert _score("123456", [spec])[0]["task_correct"] is True and _score("1234", [spec])[0]["task_correct"] is False
    scores, details = _score(
        "x", [{"type": "custom", "function": "my_scorers:broken", "name": "b"}, {"type": "contains", "text": "x"}]
    )
    assert scores["check:b"] is None and "RuntimeError: bug in the scorer" in details["b"]
    assert scores["check:contains"] is True and scores["task_correct"] is True  # the other scorer still counts


# --- the endpoint backend over real HTTP ------------------------------------------------------------------------


def _rules(messages, tools):
    text = messages[-1]["content"]
    if "explode" in text:
        return {"status": 500, "message": "model crashed"}
    if tools and "weather" in text:
        return {"content": None, "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}
    return {"content": f"You said: {text}", "finish_reason": "length" if "long" in text else "stop"}


def test_endpoint_backend_generates_converts_tool_calls_and_records_failures(monkeypatch):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    cases = [
        EvalCase(id="a", messages=USER("hello")),
        EvalCase(id="b", messages=USER("explode")),
        EvalCase(id="c", messages=USER("weather in Paris?"), tools=tools),
        EvalCase(id="d", messages=USER("a long one")),
    ]
    monkeypatch.setenv("MY_KEY", "sk-test-123")
    with ChatServer(_rules) as server:
        backend = EndpointBackend(
            server.base_url,
            "rules",
            api_key_env="MY_KEY",
            max_retries=1,
            input_usd_per_mtok=1.0,
            output_usd_per_mtok=2.0,
        )
        gens = backend.generate(cases, max_new_tokens=16)
    assert gens[0].output == "You said: hello" and gens[0].error is None and gens[0].new_tokens == 3
    assert gens[0].cost_usd == pytest.approx((10 * 1.0 + 3 * 2.0) / 1e6)
    assert gens[1].error.startswith("endpoint answered HTTP 500") and "model crashed" in gens[1].error
    assert parse_tool_calls(gens[2].output) == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    assert gens[3].hit_limit is True
    # retried once after the 500 (the client's backoff), the key sent as a bearer token, tools passed through
    assert sum(r["messages"][-1]["content"] == "explode" for r in server.requests) == 2
    assert {r["authorization"] for r in server.requests} == {"Bearer sk-test-123"}
    assert [r for r in server.requests if r.get("tools")][0]["max_tokens"] == 16


def test_an_endpoint_that_is_down_is_an_error_per_case_not_a_traceback(tmp_path):
    with ChatServer(_rules) as server:
        url = server.base_url
    backend = EndpointBackend(url, "rules", max_retries=0, timeout_s=2)
    metrics = evaluate(backend, {"s": [EvalCase(id="a", messages=USER("hi"), expected="x")]}, Config(), tmp_path)
    row = json.loads((tmp_path / "results.jsonl").read_text())
    assert "endpoint failed" in row["error"] and row["scores"]["task_correct"] is False
    assert metrics["s"]["errors"] == 1 and metrics["s"]["task_accuracy"] == 0.0


def test_a_model_that_emits_nothing_is_flagged_per_case_and_still_scored(tmp_path):
    cases = [
        EvalCase(id="a", messages=USER("say nothing"), expected="x"),
        EvalCase(id="b", messages=USER("x"), expected="You said: x"),
    ]
    with ChatServer(
        lambda m, t: {"content": "" if "nothing" in m[-1]["content"] else f"You said: {m[-1]['content']}"}
    ) as server:
        metrics = evaluate(EndpointBackend(server.base_url, "rules"), {"s": cases}, Config(), tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert "emitted nothing" in rows[0]["error"] and rows[0]["scores"]["task_correct"] is False
    assert "error" not in rows[1] and metrics["s"]["task_accuracy"] == 0.5 and metrics["s"]["errors"] == 1


def test_a_missing_api_key_variable_is_a_clear_error(monkeypatch):
    from tunesmith.errors import TunesmithError

    monkeypatch.delenv("NOPE_KEY", raising=False)
    with pytest.raises(TunesmithError, match="Missing API key"):
        EndpointBackend("http://127.0.0.1:9/v1", "m", api_key_env="NOPE_KEY")


def test_the_generation_cache_skips_unchanged_cases_and_reruns_changed_ones(tmp_path):
    cases = [EvalCase(id=str(i), messages=USER(f"q{i}"), expected=f"You said: q{i}") for i in range(5)]
    cache = GenerationCache(tmp_path / "gen.sqlite")
    with ChatServer(_rules) as server:
        backend = EndpointBackend(server.base_url, "rules")
        first = evaluate(backend, {"s": cases}, Config(), tmp_path, cache=cache)
        assert len(server.requests) == 5 and len(cache) == 5
        again = evaluate(backend, {"s": cases}, Config(), tmp_path, cache=cache)
        assert len(server.requests) == 5  # nothing generated again
        rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
        assert all(r["cached"] for r in rows) and again["s"]["task_accuracy"] == first["s"]["task_accuracy"] == 1
        cases[0].messages = USER("changed")
        cfg = Config()
        cfg.eval.max_new_tokens = 32  # other decoding settings: every case is new
        evaluate(backend, {"s": cases[:2]}, Config(), tmp_path, cache=cache)
        assert len(server.requests) == 6
        evaluate(backend, {"s": cases[:2]}, cfg, tmp_path, cache=cache)
        assert len(server.requests) == 8


def test_a_base_models_replies_to_shipped_prompts_are_shared_by_the_machines_projects(
    tmp_path, tiny_model_dir, monkeypatch
):
    from tunesmith.data.distill import distill_records, general_prompts
    from tunesmith.generate.backends import TransformersBackend
    from tunesmith.generate.cache import generate_cached
    from tunesmith.generate.decoding import Decoding
    from tunesmith.models import resolve_model

    monkeypatch.setenv("TUNESMITH_SHARED_CACHE", "1")
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "home"))
    base = TransformersBackend(resolve_model(str(tiny_model_dir)), precision="fp32")
    asked, answer = [], base.answer
    base.answer = lambda cases, request: asked.append(len(cases)) or answer(cases, request)
    cases = general_probe(5) + [EvalCase(id="mine", messages=USER("my own ticket"))]
    first = generate_cached(base, cases, Decoding(8), GenerationCache.of_project(tmp_path / "a"))
    again = GenerationCache.of_project(tmp_path / "b")
    second = generate_cached(base, cases, Decoding(8), again)
    assert asked == [6, 1]  # the second project generates only its own case
    assert [g.output for g in second] == [g.output for g in first] and all(g.cached for g in second[:5])
    assert len(again) == 6 and len(again.shared) == 5  # the project's own case never left its project
    for project in ("a", "c"):  # builtin:self's prompts ship too (the tiny model's replies are empty: no records)
        distill_records(
            general_prompts()[:3], base, max_new_tokens=8, cache=GenerationCache.of_project(tmp_path / project)
        )
    assert asked == [6, 1, 3]
    base.shares_shipped = False  # a tuned model's replies stay in its project
    generate_cached(base, cases[:5], Decoding(8), GenerationCache.of_project(tmp_path / "d"))
    assert asked == [6, 1, 3, 5]
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "a-file"))  # a home that cannot hold it: not shared
    (tmp_path / "a-file").write_text("")
    assert GenerationCache.of_project(tmp_path / "e").shared is None
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TUNESMITH_SHARED_CACHE", "0")
    assert GenerationCache.of_project(tmp_path / "e").shared is None


def test_vllm_backend_is_a_clear_error_when_vllm_is_missing(tiny_model_dir):
    pytest.importorskip("torch")
    if "vllm" in sys.modules or __import__("importlib").util.find_spec("vllm"):
        pytest.skip("vllm is installed here")
    from tunesmith.errors import TunesmithError
    from tunesmith.generate.backends import VLLMBackend
    from tunesmith.models import resolve_model

    with pytest.raises(TunesmithError, match="vLLM is not installed"):
        VLLMBackend(resolve_model(str(tiny_model_dir)))


# --- the judge --------------------------------------------------------------------------------------------------


def _judge(first_wins: bool):
    def respond(messages, tools):
        text = messages[-1]["content"]
        if "JUDGE-DOWN" in text:
            return {"status": 503}
        if first_wins:  # a position-biased judge: always prefers whatever is shown first
            return {"content": "The first is better. [[1]]"}
        one = text.split("[Response 1]")[1].split("[Response 2]")[0]
        two = text.split("[Response 2]")[1]
        if ("good" in one) == ("good" in two):
            return {"content": "Equal. [[tie]]"}
        return {"content": "Verdict: [[1]]" if "good" in one else "Verdict: [[2]]"}

    return respond


def test_judge_is_blind_asks_both_orders_and_counts_ties():
    prompts = ["p1", "p2", "p3", "p4", "JUDGE-DOWN"]
    a = ["bad", "good", "good", "bad", "x"]
    b = ["good", "bad", "good", "good", "y"]
    with ChatServer(_judge(first_wins=False)) as server:
        judge = PairwiseJudge(EndpointConfig(base_url=server.base_url, model="j", max_retries=0))
        res = judge.compare(prompts, a, b)
        shown = [r["messages"][-1]["content"] for r in server.requests]
    assert res["outcomes"] == ["win", "loss", "tie", "win", "error"]
    assert (res["wins"], res["losses"], res["ties"], res["judged"]) == (2, 1, 1, 4)
    assert res["win_rate"] == pytest.approx(2.5 / 4) and len(res["errors"]) == 1
    for one, two in (("bad", "good"), ("good", "bad")):  # p1 is shown in both orders
        assert sum(f"p1\n\n[Response 1]\n{one}\n\n[Response 2]\n{two}\n" in s for s in shown) == 1
    assert not any("model" in s.lower() and ("tuned" in s or "base" in s) for s in shown)  # no names
    with ChatServer(_judge(first_wins=True)) as server:
        biased = PairwiseJudge(EndpointConfig(base_url=server.base_url, model="j")).compare(prompts[:4], a[:4], b[:4])
    assert biased["ties"] == 4 and biased["verdict"] == "no significant difference"
    assert parse_verdict("hmm [[2]] no wait [[ TIE ]]") == "tie" and parse_verdict("none") is None


# --- slices, gates and compare A B C ----------------------------------------------------------------------------


def _rows(suite, outcomes, tags=None, metric="task_correct"):
    return [
        {
            "suite": suite,
            "id": str(i),
            "tags": (tags or {}).get(i, []),
            "scores": {metric: bool(o)},
            "latency_s": 0.1,
            "new_tokens": 1,
            "output": "x",
            "behavior": "answer",
        }
        for i, o in enumerate(outcomes)
    ]


def test_compare_reports_slices_and_applies_every_gate():
    tags = {i: ["edge_case"] for i in range(8)}
    base = _rows("heldout", [0] * 40, tags) + _rows("general", [1] * 30, metric="prompt_strict")
    tuned = _rows("heldout", [1] * 30 + [0] * 10, tags) + _rows("general", [1] * 29 + [0], metric="prompt_strict")
    cfg = Config()
    cfg.eval.bootstrap_samples = 300
    cfg.eval.gates = [GateConfig(metric="general.prompt_strict_accuracy", min_delta=-0.02, require_significant=False)]
    out = compare(base, tuned, cfg)
    suites = {r["suite"] for r in out["metrics"]}
    assert "heldout#edge_case" in suites
    edge = next(r for r in out["metrics"] if r["suite"] == "heldout#edge_case")
    assert edge["n"] == 8 and edge["tuned"] == 1.0
    assert out["gates"][0]["passed"] is True
    assert out["gates"][1]["passed"] is False  # the probe dropped 3.3 points, more than the 2 allowed
    assert out["gate"]["passed"] is False and "general.prompt_strict_accuracy" in out["gate"]["reason"]
    cfg.eval.gates = [GateConfig(metric="general.prompt_strict_accuracy", min_delta=-0.05, require_significant=False)]
    assert compare(base, tuned, cfg)["gate"]["passed"] is True


def test_lower_is_better_metrics_gate_on_a_reduction():
    base = _rows("ood", [1] * 30, metric="hallucinated")
    tuned = _rows("ood", [0] * 25 + [1] * 5, metric="hallucinated")
    cfg = Config()
    cfg.eval.bootstrap_samples = 300
    cfg.eval.gate = GateConfig(metric="ood.hallucination_rate")
    res = compare(base, tuned, cfg)
    assert res["metrics"][0]["verdict"] == "better" and res["gate"]["passed"] is True


def test_eval_compare_cli_takes_three_runs_and_exits_on_the_gate(tmp_path):
    a = write_jsonl(tmp_path / "a" / "results.jsonl", _rows("heldout", [0] * 30))
    b = write_jsonl(tmp_path / "b" / "results.jsonl", _rows("heldout", [1] * 30))
    c = write_jsonl(tmp_path / "c.jsonl", _rows("heldout", [0] * 29 + [1]))
    res = runner.invoke(app, ["eval", "compare", str(tmp_path / "a"), str(b), "--project", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)[0]["gate"]["passed"] is True
    res = runner.invoke(app, ["eval", "compare", str(a), str(b), str(c), "--project", str(tmp_path)])
    assert res.exit_code == 1  # c does not beat a
    assert "a vs b" in res.output and "a vs c" in res.output and "FAIL" in res.output
    # the three side by side, one column each, the later ones with their delta against the first
    header = next(line for line in res.output.splitlines() if "metric" in line)
    assert [c.strip() for c in header.strip("┃│ ").split("┃")[-3:]] == ["a", "b", "c"]
    assert "1.000 (+1.000)" in res.output and "0.033 (+0.033)" in res.output


def test_eval_run_on_an_endpoint_writes_a_run_and_reuses_it(tiny_project):
    with ChatServer(lambda m, t: {"content": json.dumps({"queue": "billing", "priority": "normal"})}) as server:
        args = ["eval", "run", str(tiny_project), "--endpoint", server.base_url, "--endpoint-model", "rules", "--json"]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        report = json.loads(res.stdout)  # the answer alone: progress lines go to stderr
        heldout = report["metrics"]["heldout"]
        assert heldout["format_validity"] == 1.0 and 0 < heldout["task_accuracy"] < 1
        assert report["metrics"]["redteam"]["behavior_accuracy"] == 0.0
        n = len(server.requests)
        res = runner.invoke(app, args)  # unchanged: the stage is reused, nothing generated
        assert res.exit_code == 0 and len(server.requests) == n
    res = runner.invoke(app, ["eval", "run", str(tiny_project), "--backend", "nope"])
    assert res.exit_code != 0


def test_eval_compare_with_the_judge_reports_blind_preference(tmp_path):
    a = [{**r, "prompt": f"p{r['id']}", "output": "bad"} for r in _rows("heldout", [0] * 6)]
    b = [{**r, "prompt": f"p{r['id']}", "output": "good"} for r in _rows("heldout", [1] * 6)]
    write_jsonl(tmp_path / "a.jsonl", a)
    write_jsonl(tmp_path / "b.jsonl", b)
    with ChatServer(_judge(first_wins=False)) as server:
        (tmp_path / "tunesmith.yaml").write_text(
            f"eval: {{judge: {{base_url: '{server.base_url}', model: j}}, bootstrap_samples: 200}}\n"
        )
        res = runner.invoke(app, judged_compare_args(tmp_path, 6))
    assert res.exit_code == 0, res.output
    pref = json.loads(res.output[res.output.index("[") :])[0]["preference"]
    assert pref["judged"] == 6 and pref["wins"] == 6 and pref["win_rate"] == 1.0 and pref["verdict"] == "better"
    assert len(server.requests) == 12  # 6 cases x 2 orders (4 of 4 wins is not significant: sign test p 0.125)


def test_project_suites_apply_suite_scorers_limits_and_the_probe(tmp_path):
    from tunesmith.config import load_config
    from tunesmith.errors import TunesmithError
    from tunesmith.eval.suite import project_suites

    write_jsonl(tmp_path / "data" / "d.jsonl", [{"messages": USER("x") + [{"role": "assistant", "content": "y"}]}])
    write_jsonl(
        tmp_path / "eval" / "ood.jsonl",
        [
            {"id": "o1", "messages": USER("capital of Peru?"), "kind": "out_of_domain", "behavior": "abstain"},
            {"id": "o2", "messages": USER("2+2?"), "expected": 4, "scorers": [{"type": "numeric"}]},
        ],
    )
    (tmp_path / "tunesmith.yaml").write_text(
        "eval:\n  suites:\n    - {path: eval/ood.jsonl, scorers: [{type: behavior}], max_new_tokens: 12}\n"
        "  general_probe: true\n  general_probe_limit: 7\n"
    )
    cfg, project = load_config(tmp_path)
    suites, limits = project_suites(cfg, project)
    assert [c.scorers for c in suites["ood"]] == [[{"type": "behavior"}], [{"type": "numeric"}]]  # own kept
    assert len(suites["general"]) == 7 and limits == {"ood": 12, "general": 256}
    (tmp_path / "tunesmith.yaml").write_text(
        "eval:\n  suites:\n    - {path: eval/ood.jsonl, scorers: [{type: nope}]}\n"
    )
    with pytest.raises(TunesmithError, match="Bad suite scorers"):
        project_suites(*load_config(tmp_path))


def test_the_eval_run_table_never_cuts_a_metrics_name_or_value_on_a_narrow_terminal(tmp_path):
    """Both prompt-level rows cut to `promp…` were once read one for the other: on a narrow terminal the suites
    go into more tables, names and values whole."""
    import io

    from rich.console import Console

    from tunesmith.cli.render import print_eval_run

    metrics = {
        f"general · suite{i}": {"prompt_loose_accuracy": 0.4, "prompt_strict_accuracy": 0.373, "n": 150}
        for i in range(6)
    }
    out = io.StringIO()
    print_eval_run("tuned", tmp_path / "run", metrics, Console(file=out, width=70, color_system=None))
    text = out.getvalue()
    assert text.count("prompt_loose_accuracy") >= 2 and text.count("prompt_strict_accuracy") >= 2, text
    assert text.count("0.373") == 6 and "…" not in text and max(map(len, text.splitlines())) <= 70, text
