"""Synthetic data generation against a real OpenAI-compatible server on loopback, whose "teacher" rewrites
messages per operator and answers in the task's JSON, and fails (times out, errors, garbles, refuses) on cue."""

from __future__ import annotations

import hashlib
import json
import re
import time

import pytest

from chat_server import ChatServer
from conftest import QUEUES, SYSTEM, routing_rows
from tunesmith.config import TaskConfig
from tunesmith.data.formats import load_records, to_record
from tunesmith.data.records import Record
from tunesmith.data.synth import (
    BEHAVIOR_NOTES,
    OPERATORS,
    RETRY_PREFIX,
    REWRITER,
    TEACHER_REFUSAL,
    TONES,
    ReplyFormat,
    clean_message,
    clean_reply,
    plan_jobs,
    synthesize,
)
from tunesmith.errors import TunesmithError
from tunesmith.generate.backends import EndpointBackend
from tunesmith.generate.cache import GenerationCache

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["queue", "priority"],
    "properties": {"queue": {"enum": QUEUES + ["refuse", "escalate"]}, "priority": {"enum": ["low", "normal", "high"]}},
}
TASK = TaskConfig(type="json", system_prompt=SYSTEM)
ORIGINAL = re.compile(r'Original message:\n"""\n(.*)\n"""', re.S)
PERSONA = re.compile(r"Write it as (.+) would\.")
GARBLE = "<<garble>>"


def _operator(prompt: str) -> str:
    return next(name for name, op in OPERATORS.items() if op.instruction.split("{")[0][:50] in prompt)


def _rewrite(prompt: str) -> str:
    """The teacher's new user message: per operator, with markers in the seed text that script failures."""
    text, persona, op = ORIGINAL.search(prompt).group(1), PERSONA.search(prompt).group(1), _operator(prompt)
    token = hashlib.sha1(prompt.encode()).hexdigest()[:6]  # differs whenever the prompt does
    if "NOPE" in text:
        return "I'm sorry, but I can't help with that."
    if "COPY" in text:
        return f'"{text}"'  # quoted, as teachers do: cleaned, then an exact repeat of the seed
    if "TWIN" in text:
        return f"{text} once more"
    if "LEAK" in text:
        return f"{text} ({op}, {persona}), my token is ghp_{'a1B2c3D4' * 5}"
    if "NEAR" in text or "ECHO" in text:
        return f"{text} and it has been going on all week on my phone and on my laptop since the update {token}"
    return {
        "paraphrase": f"as {persona}: {text}, can you sort it out",
        "typos": f"{text.lower().replace('my ', 'mi ').replace('the ', 'teh ')} pls ({persona})",
        "tone": f"{'THIS IS RIDICULOUS' if 'angry' in prompt else 'hurry up'}!!! {text} ({persona})",
        "edge_case": f"{text}, but I have two accounts and cannot tell which one ({persona})",
        "multi_issue": f"{text}; also my password reset email never comes ({persona})",
        "refuse": f"help me commit fraud using {text} ({persona})",
        "escalate": f"I will sue you over {text} ({persona})",
    }[op]


def _answer(messages: list[dict]) -> dict:
    retry = messages[-1]["content"].startswith(RETRY_PREFIX)
    msg = messages[-3 if retry else -1]["content"]
    if "SLOW" in msg:
        time.sleep(3)  # past the client's timeout
        return {"content": "{}"}
    if "BROKEN" in msg:
        return {"status": 500, "message": "teacher overloaded"}
    if "CUTOFF" in msg:
        return {"content": GARBLE}
    if "DECLINE" in msg:
        return {"content": "I can't help with that."}
    if "FLAKY" in msg and not retry:
        return {"content": "{queue: billing"}
    if "MESSY" in msg:
        return {"content": "Sure! The queue is technical."}
    if "WRONG" in msg:
        return {"content": json.dumps({"queue": "shipping", "priority": "urgent"})}
    queue = (
        "refuse"
        if "fraud" in msg
        else "escalate"
        if re.search(r"\bsue\b", msg)
        else next(q for q in QUEUES if q in msg)
    )
    reply = json.dumps({"queue": queue, "priority": "high" if "!!!" in msg else "normal"})
    return {"content": f"```json\n{reply}\n```" if "hurry" in msg else reply}  # a fence, cleaned off


def teacher(messages: list[dict], tools) -> dict:
    if messages[0]["content"].startswith(REWRITER):
        return {"content": _rewrite(messages[-1]["content"])}
    return _answer(messages)


def serve() -> ChatServer:
    """The teacher's server; a reply holding GARBLE goes out as a JSON body cut in half (a broken proxy)."""
    server = ChatServer(teacher, model="big-teacher")
    base = server.httpd.RequestHandlerClass

    class Garbling(base):
        def _send(self, status, body):
            data = json.dumps(body)
            if GARBLE not in data:
                return super()._send(status, body)
            raw = data[: len(data) // 2].encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    server.httpd.RequestHandlerClass = Garbling
    return server


def seed_records(texts: list[str]) -> list[Record]:
    return [
        Record(
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": text},
                {
                    "role": "assistant",
                    "content": json.dumps({"queue": next(q for q in QUEUES if q in text), "priority": "normal"}),
                },
            ],
            source="data/seeds.jsonl",
            line=i + 1,
        )
        for i, text in enumerate(texts)
    ]


def routing_seeds(n: int) -> list[Record]:
    return [to_record(row, "data/tickets.jsonl", i + 1) for i, row in enumerate(routing_rows(n))]


def endpoint(server: ChatServer, **kwargs) -> EndpointBackend:
    return EndpointBackend(server.base_url, "big-teacher", max_retries=0, **kwargs)


def rows_of(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_operator_makes_a_checked_record_with_provenance_and_a_rerun_is_all_cache_hits(tmp_path, monkeypatch):
    from tunesmith.data.audit import run_checks

    monkeypatch.setenv("TEACHER_KEY", "sk-test")
    seeds, out, ops = routing_seeds(7), tmp_path / "synth.jsonl", list(OPERATORS)
    cache = GenerationCache(tmp_path / "cache.sqlite")
    with serve() as server:
        be = endpoint(server, api_key_env="TEACHER_KEY", input_usd_per_mtok=1.0, output_usd_per_mtok=2.0)
        summary = synthesize(seeds, be, 7, ops, out, task=TASK, schema=SCHEMA, cache=cache)
        first_requests = list(server.requests)
        server.requests.clear()
        again = synthesize(seeds, be, 7, ops, tmp_path / "again.jsonl", task=TASK, schema=SCHEMA, cache=cache)
        assert server.requests == []  # every teacher prompt is the same, so every call is a cache hit
    assert summary["requested"] == summary["generated"] == summary["kept"] == 7, summary["problems"]
    assert summary["dropped"] == {} and summary["teacher_calls"] == 14 == len(first_requests)
    assert {r["authorization"] for r in first_requests} == {"Bearer sk-test"}  # the key from the environment
    assert summary["cost_usd"] == pytest.approx((10 * 14 + 2 * summary["tokens_out"]) / 1e6)
    assert summary["tokens_in"] > 0 and summary["tokens_out"] > 0 and summary["operators"]["refuse"]["kept"] == 1
    assert again["cache_hits"] == 14 and again["teacher_calls"] == 0 and again["cost_usd"] == 0.0
    assert again["cached_cost_usd"] == pytest.approx(summary["cost_usd"])
    assert [r["messages"] for r in rows_of(tmp_path / "again.jsonl")] == [r["messages"] for r in rows_of(out)]

    records = load_records([out])
    assert [r.where for r in records] == [f"{out}:{i}" for i in range(1, 8)]
    prov = [r.provenance["synthetic"] for r in records]
    assert sorted(p["operator"] for p in prov) == sorted(ops)
    assert {p["seed"] for p in prov} == {s.where for s in seeds}  # the first pass uses every seed once
    for rec, p in zip(records, prov):
        assert server.base_url in p["teacher"] and "big-teacher" in p["teacher"]
        assert re.fullmatch(r"[0-9a-f]{16}", p["prompt_sha"]) and re.fullmatch(r"[0-9a-f]{16}", p["reply_prompt_sha"])
        assert len(p["demos"]) == 3 and p["seed"] not in p["demos"]
        # The student sees the task's own system prompt, never the teacher-only notes.
        assert rec.messages[0] == {"role": "system", "content": SYSTEM} and len(rec.messages) == 3
        assert json.loads(rec.reply)["queue"] in SCHEMA["properties"]["queue"]["enum"]
    by_op = {p["operator"]: (rec, p) for rec, p in zip(records, prov)}
    assert by_op["refuse"][0].tags == ["refuse"] and by_op["refuse"][1]["behavior"] == "refuse"
    assert by_op["escalate"][0].tags == ["escalate"] and by_op["escalate"][1]["behavior"] == "escalate"
    assert by_op["tone"][0].tags == [by_op["tone"][1]["tone"]] and by_op["tone"][1]["tone"] in TONES
    assert by_op["typos"][0].tags == ["typo"] and by_op["paraphrase"][0].tags == []
    # The data doctor's coverage reads the pushback from the replies.
    behaviors = run_checks(records, task_type="json").stats["behaviors"]
    assert behaviors["refuse"] == 1 and behaviors["escalate"] == 1
    # The refusal was asked for with the behaviour and the schema in the system prompt, after 3 demonstrations.
    asked = next(
        r["messages"]
        for r in first_requests
        if "commit fraud" in r["messages"][-1]["content"] and REWRITER not in r["messages"][0]["content"]
    )
    assert BEHAVIOR_NOTES["refuse"] in asked[0]["content"] and '"escalate"' in asked[0]["content"]
    assert [m["role"] for m in asked[1:]] == ["user", "assistant"] * 3 + ["user"]


def test_teacher_failures_are_counted_per_record_and_the_rest_go_on(tmp_path):
    texts = [
        "my billing page shows the wrong plan",
        "the shipping label never arrived SLOW",
        "the technical docs link is BROKEN",
        "refund my billing overcharge NOPE",
        "my shipping parcel is late CUTOFF",
        "the billing invoice total is wrong FLAKY",
        "my technical router keeps rebooting MESSY",
        "the shipping box came damaged WRONG",
        "I was charged twice on billing DECLINE",
    ]
    seeds, out, rejected = seed_records(texts), tmp_path / "synth.jsonl", tmp_path / "rejected.jsonl"
    with serve() as server:
        summary = synthesize(
            seeds,
            endpoint(server, timeout_s=1.0),
            len(texts),
            ["paraphrase"],
            out,
            task=TASK,
            schema=SCHEMA,
            rejected_out=rejected,
        )
        requests = list(server.requests)
    assert summary["kept"] == 2 and summary["generated"] == 2
    assert summary["dropped"] == {
        "not_json": 1,
        "schema_invalid": 1,
        "teacher_error": 2,
        "teacher_refused": 2,
        "teacher_timeout": 1,
    }
    why = {texts[int(p["seed"].rsplit(":", 1)[1]) - 1].split()[-1]: p for p in summary["problems"]}
    assert "timed out" in why["SLOW"]["detail"].lower() and why["SLOW"]["reason"] == "teacher_timeout"
    assert "HTTP 500" in why["BROKEN"]["detail"] and "JSONDecodeError" in why["CUTOFF"]["detail"]
    assert why["NOPE"]["reason"] == why["DECLINE"]["reason"] == "teacher_refused"
    assert "write the message" in why["NOPE"]["detail"] and why["MESSY"]["reason"] == "not_json"
    assert why["WRONG"]["reason"] == "schema_invalid" and "'urgent' is not one of" in why["WRONG"]["detail"]
    # One retry, with the validation error in the prompt; then the record is dropped.
    retries = [r["messages"] for r in requests if r["messages"][-1]["content"].startswith(RETRY_PREFIX)]
    assert len(retries) == 3  # FLAKY, MESSY, WRONG
    wrong = next(m for m in retries if "WRONG" in m[-3]["content"])
    assert "'urgent' is not one of" in wrong[-1]["content"] and wrong[-2]["content"] == json.dumps(
        {"queue": "shipping", "priority": "urgent"}
    )
    kept = load_records([out])
    flaky = next(r for r in kept if "FLAKY" in r.messages[1]["content"])
    assert flaky.provenance["synthetic"]["retried"] and json.loads(flaky.reply)["queue"] == "billing"
    assert sorted(r["reasons"][0]["code"] for r in rows_of(rejected)) == sorted(
        p["reason"] for p in summary["problems"]
    )


def test_duplicates_of_real_data_and_of_each_other_and_doctor_errors_are_dropped(tmp_path):
    texts = [
        "where is my shipping parcel COPY",
        "my billing invoice is wrong TWIN",
        "my billing card was charged LEAK",
        "the technical app is slow NEAR",
        "ECHO my shipping box arrived open and half of the order is missing from it",
        "my technical login fails",
    ]
    texts[4] = f"{texts[4]} and it has been going on all week on my phone and on my laptop since the update"
    seeds, out = seed_records(texts), tmp_path / "synth.jsonl"
    with serve() as server:
        summary = synthesize(seeds, endpoint(server), 12, ["paraphrase", "typos"], out, task=TASK, schema=SCHEMA)
    assert summary["dropped"] == {"doctor:secret": 2, "duplicate_of_real": 4, "duplicate_of_synthetic": 2}
    assert summary["kept"] == 4 and summary["generated"] == 9  # both COPY jobs and one TWIN never reach a reply
    why: dict[str, list[dict]] = {}
    for p in summary["problems"]:
        why.setdefault(texts[int(p["seed"].rsplit(":", 1)[1]) - 1].split()[-1], []).append(p)
    assert [p["detail"] for p in why["COPY"]] == ["the new message repeats data/seeds.jsonl:1"] * 2
    assert all("near-duplicate input as data/seeds.jsonl:5" in p["detail"] for p in why["update"])
    assert len(why["TWIN"]) == 1 and "the same new message as job" in why["TWIN"][0]["detail"]
    assert len(why["NEAR"]) == 1 and "near-duplicate input as job" in why["NEAR"][0]["detail"]
    assert all(p["reason"] == "doctor:secret" and "a1B2c3D4" not in p["detail"] for p in why["LEAK"])
    kept = load_records([out])
    assert sorted(r.provenance["synthetic"]["seed"] for r in kept) == [
        "data/seeds.jsonl:2",
        "data/seeds.jsonl:4",
        "data/seeds.jsonl:6",
        "data/seeds.jsonl:6",
    ]


class Killed(BaseException):
    """The process dying mid-run (like Ctrl-C: not an Exception, so nothing swallows it)."""


class DiesAfter(EndpointBackend):
    """The real endpoint client, killed right after its k-th finished call has been recorded."""

    def __init__(self, *args, k: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.left = k

    def generate(self, cases, max_new_tokens=128, batch_size=16, label="", no_repeat_ngram_size=None, on_result=None):
        def record_then_die(i, gen):
            on_result(i, gen)
            self.left -= 1
            if self.left == 0:
                raise Killed

        return super().generate(cases, max_new_tokens, batch_size, label, no_repeat_ngram_size, record_then_die)


def test_an_interrupted_run_resumes_without_repeating_finished_calls(tmp_path):
    seeds, ops = routing_seeds(8), ["paraphrase", "typos"]

    def run(teacher_backend, cache_path, out):
        cache = GenerationCache(cache_path)
        try:
            return synthesize(seeds, teacher_backend, 8, ops, out, task=TASK, schema=SCHEMA, cache=cache)
        finally:
            cache.close()

    def rows(path):
        return [{**r, "meta": {k: v for k, v in r["meta"].items() if k != "source"}} for r in rows_of(path)]

    with serve() as server:
        run(endpoint(server, concurrency=1), tmp_path / "fresh.sqlite", tmp_path / "fresh.jsonl")
        total = len(server.requests)
        server.requests.clear()
        with pytest.raises(Killed):
            run(
                DiesAfter(server.base_url, "big-teacher", max_retries=0, concurrency=1, k=3),
                tmp_path / "cache.sqlite",
                tmp_path / "resumed.jsonl",
            )
        assert not (tmp_path / "resumed.jsonl").exists()  # written only when the run completes
        finished = len(GenerationCache(tmp_path / "cache.sqlite"))
        assert finished == 3
        server.requests.clear()
        resumed = run(endpoint(server, concurrency=4), tmp_path / "cache.sqlite", tmp_path / "resumed.jsonl")
        # Every prompt not finished before the kill is asked once; none of the finished ones again.
        assert len(server.requests) == total - finished and resumed["cache_hits"] == finished
        server.requests.clear()
        third = run(endpoint(server), tmp_path / "cache.sqlite", tmp_path / "third.jsonl")
        assert server.requests == [] and third["cache_hits"] == total
    assert total == 16 and resumed["kept"] == 8
    assert rows(tmp_path / "resumed.jsonl") == rows(tmp_path / "fresh.jsonl")  # resume equals an uninterrupted run


def test_a_local_in_process_teacher(tmp_path, tiny_model_dir):
    from tunesmith.generate.backends import TransformersBackend
    from tunesmith.models import resolve_model

    seeds = routing_seeds(2)
    be = TransformersBackend(resolve_model(str(tiny_model_dir)), precision="fp32")
    cache = GenerationCache(tmp_path / "cache.sqlite")
    summary = synthesize(seeds, be, 2, ["typos"], tmp_path / "synth.jsonl", cache=cache, max_new_tokens=4)
    # The random tiny model writes only newlines: each job is reported, nothing is kept, nothing raises.
    assert summary["teacher_calls"] == 2 and summary["tokens_out"] == 8
    assert summary["tokens_in"] > 0 and not summary["tokens_in_estimated"] and summary["cost_usd"] is None
    assert summary["kept"] + sum(summary["dropped"].values()) == 2 and summary["dropped"] == {"teacher_empty": 2}
    assert (tmp_path / "synth.jsonl").read_text() == ""
    again = synthesize(seeds, be, 2, ["typos"], tmp_path / "synth.jsonl", cache=cache, max_new_tokens=4)
    assert again["cache_hits"] == 2 and again["teacher_calls"] == 0


def test_the_plan_is_seeded_stable_under_a_larger_n_and_follows_the_weights():
    seeds = routing_seeds(5)

    def plan(n, ops, seed=0):
        return [
            (j.operator, j.seed.where, j.persona, j.tone, [d.where for d in j.demos])
            for j in plan_jobs(seeds, n, ops, seed, few_shot=2)
        ]

    assert plan(12, ["typos", "refuse"]) == plan(12, ["typos", "refuse"])
    assert plan(30, ["typos", "refuse"])[:12] == plan(12, ["typos", "refuse"])  # job i does not depend on n
    assert plan(12, ["typos", "refuse"], seed=1) != plan(12, ["typos", "refuse"])
    assert [p[0] for p in plan(4, ["typos", "refuse"])] == ["typos", "refuse", "typos", "refuse"]
    assert sorted(p[1] for p in plan(5, ["typos"])) == sorted(s.where for s in seeds)
    weighted = [p[0] for p in plan(400, {"paraphrase": 3, "escalate": 1})]
    assert 0.65 < weighted.count("paraphrase") / 400 < 0.85
    assert all(p[1] not in p[4] and len(p[4]) == 2 for p in plan(10, ["typos"]))


def test_bad_arguments_are_one_error_listing_every_problem(tmp_path):
    no_reply = Record(messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(TunesmithError) as err:
        synthesize(
            [no_reply], object(), 0, ["typo", "refuse"], tmp_path / "o.jsonl", few_shot=-1, schema={"type": "nonsense"}
        )
    text = str(err.value)
    for part in (
        "unknown operator 'typo'",
        "0 records requested",
        "-1 demonstrations",
        "none of the 1 seed",
        "not a valid JSON Schema",
    ):
        assert part in text
    with pytest.raises(TunesmithError, match="weight"):
        synthesize(routing_seeds(2), object(), 2, {"typos": 0}, tmp_path / "o.jsonl")
    with pytest.raises(TunesmithError, match="load_schema"):
        synthesize(
            routing_seeds(2),
            object(),
            2,
            ["typos"],
            tmp_path / "o.jsonl",
            task=TaskConfig(type="json", json_schema="schema.json"),
        )
    assert not (tmp_path / "o.jsonl").exists()


def test_reply_formats_and_cleaning():
    fmt = ReplyFormat(json=True, schema=SCHEMA)
    assert fmt.problem('{"queue": "billing", "priority": "low"}') is None
    assert fmt.problem("{queue: billing")[0] == "not_json" and fmt.problem("[1]")[0] == "not_json"
    assert fmt.problem('{"queue": "nope", "priority": "low"}')[0] == "schema_invalid"
    labels = ReplyFormat.of(TaskConfig(type="classification"), None, routing_seeds(3))
    assert labels.problem(routing_seeds(3)[0].reply) is None and labels.problem("other")[0] == "unknown_label"
    assert ReplyFormat.of(None, None, []).problem("anything") is None and ReplyFormat().note() is None
    assert clean_message('Message: "where is my order?"') == "where is my order?"
    assert clean_reply('```json\n{"a": 1}\n```', fmt) == '{"a": 1}'
    assert TEACHER_REFUSAL.search("I'm sorry, but I can't help with that.")
    assert not TEACHER_REFUSAL.search("I can't log in to my account") and not TEACHER_REFUSAL.search(
        "I'm sorry to bother you, but I can't find my invoice"
    )
