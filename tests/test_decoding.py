"""Structured decoding: the reply schema inferred from training replies, the constraint of each task type, the
logits processor holding a random tiny model to a schema in a left-padded batch (with and without n-gram
blocking), the backends passing constraints on, the generation-cache keys, and the GBNF grammar for llama.cpp."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import sys
import types
from dataclasses import replace

import jsonschema
import pytest
import torch

from tunesmith.errors import TunesmithError
from tunesmith.eval.suite import EvalCase
from tunesmith.generate.decoding import (
    Constraint,
    constraint_from_response_format,
    gbnf,
    infer_reply_schema,
    logits_processor,
    reply_separators,
    task_constraint,
    to_response_format,
)

QUEUES = ["billing", "technical", "shipping"]
SCHEMA = {
    "type": "object",
    "properties": {
        "queue": {"enum": QUEUES},
        "urgent": {"type": "boolean"},
        "priority": {"enum": ["low", "normal", "high"]},
    },
    "required": ["queue", "urgent", "priority"],
    "additionalProperties": False,
}
PROMPTS = [
    "hi",
    "my invoice is wrong and the camera is offline, where is my order? thanks a lot",
    "The quick brown fox jumps",
]  # different lengths: the batch is left-padded


def replies(n: int = 40) -> list[str]:
    out = []
    for i in range(n):
        reply = {
            "queue": QUEUES[i % 3],
            "reason": f"the customer wrote message number {i}",
            "count": i,
            "score": i / 4,
            "urgent": i % 2 == 0,
            "tags": ["typo"] if i % 5 else ["typo", "vip"],
            "meta": {"lang": "en", "chars": i * 3},
        }
        if i % 7:  # not every reply has a note: it is optional
            reply["note"] = "none"
        out.append(json.dumps(reply))
    return out


# ------------------------------------------------------------------------------------------ inferring a schema


def test_the_inferred_schema_has_enums_types_and_required_fields_and_keeps_free_text_a_string():
    schema = infer_reply_schema(replies(), ["queue"])
    props = schema["properties"]
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["required"] == ["queue", "reason", "count", "score", "urgent", "tags", "meta"]  # not "note"
    assert props["queue"] == {"enum": sorted(QUEUES)} and props["note"] == {"enum": ["none"]}
    assert props["reason"] == {"type": "string"}  # 40 distinct values, each seen once: free text
    assert props["count"] == {"type": "integer"} and props["score"] == {"type": "number"}  # ints and floats
    assert props["urgent"] == {"type": "boolean"}
    assert props["tags"] == {"type": "array", "items": {"enum": ["typo", "vip"]}}
    assert props["meta"]["properties"] == {"lang": {"enum": ["en"]}, "chars": {"type": "integer"}}
    for reply in replies():
        jsonschema.validate(json.loads(reply), schema)


def test_a_label_is_a_string_field_with_few_values_each_seen_twice_or_few_against_the_replies():
    seen_once = [json.dumps({"label": f"l{i % 30}"}) for i in range(35)]  # 30 values, 25 of them seen once
    assert infer_reply_schema(seen_once, [])["properties"]["label"] == {"type": "string"}
    # a scored field (match_fields) with distinct values at most half the replies is a label even so
    many = [json.dumps({"label": f"l{i % 30}"}) for i in range(80)] + [json.dumps({"label": "rare"})]
    assert "enum" not in infer_reply_schema(many, [])["properties"]["label"]
    assert "rare" in infer_reply_schema(many, ["label"])["properties"]["label"]["enum"]
    # fewer distinct values than a tenth of the replies: a label, though one value is seen once
    few = [json.dumps({"label": "a"})] * 30 + [json.dumps({"label": "b"})]
    assert infer_reply_schema(few, [])["properties"]["label"] == {"enum": ["a", "b"]}
    over = [json.dumps({"label": f"l{i % 201}"}) for i in range(402)]  # 201 values, each twice: too many
    assert infer_reply_schema(over, [])["properties"]["label"] == {"type": "string"}


def test_replies_that_are_not_json_objects_have_no_schema():
    assert infer_reply_schema(["billing", '{"a": 1}'], []) is None
    assert infer_reply_schema(["[1, 2]"], []) is None
    assert infer_reply_schema([], []) is None


def test_each_task_type_gets_its_constraint():
    own = {"type": "object", "properties": {"label": {"type": "string"}}}
    assert task_constraint("json", own, replies(), []) == Constraint("json_schema", own, separators=(", ", ": "))
    inferred = task_constraint("json", None, replies(), ["queue"])
    assert inferred.kind == "json_schema" and inferred.schema == infer_reply_schema(replies(), ["queue"])
    assert task_constraint("json", None, ["not json"], []) == Constraint("json_object")
    labels = task_constraint("classification", None, [" billing\n", "shipping", "billing", ""], [])
    assert labels == Constraint("choice", choices=("billing", "shipping"))
    assert task_constraint("classification", None, [f"label {i}" for i in range(501)], []) is None
    assert task_constraint("chat", None, replies(), []) is None


def test_the_layout_of_the_replies_is_found_when_they_all_share_one():
    objs = [{"queue": "billing", "note": "caf\u00e9"}, {"queue": "shipping", "tags": [1, 2]}]
    assert reply_separators([json.dumps(o) for o in objs]) == (", ", ": ")
    assert reply_separators([json.dumps(o, separators=(",", ":"), ensure_ascii=False) for o in objs]) == (",", ":")
    assert reply_separators([json.dumps(objs[0]), json.dumps(objs[1], separators=(",", ":"))]) is None  # mixed
    assert reply_separators([json.dumps(o, indent=2) for o in objs]) is None
    assert reply_separators(["not json"]) is None and reply_separators([]) is None
    assert task_constraint("json", None, [json.dumps(o, indent=2) for o in objs], []).separators is None
    # the layout is part of the constraint and its key; a constraint without one keys as it always did
    assert Constraint("json_object").to_json() == {"kind": "json_object", "schema": None, "choices": []}
    assert Constraint("json_object", separators=(",", ":")).key() != Constraint("json_object").key()
    with pytest.raises(TunesmithError, match="separators"):
        Constraint("json_object", separators=(";", "="))


def test_a_constraint_has_a_stable_key_and_refuses_bad_input():
    a, b = Constraint("json_schema", SCHEMA), Constraint("json_schema", json.loads(json.dumps(SCHEMA)))
    assert a == b and hash(a) == hash(b) and a.key() == b.key() and len(a.key()) == 16
    assert a.key() != Constraint("json_object").key() != Constraint("choice", choices=("x",)).key()
    mine = {"type": "object"}
    c = Constraint("json_schema", mine)
    mine["type"] = "array"  # the caller's dict changing later changes nothing
    assert c.schema == {"type": "object"} and json.loads(json.dumps(c.to_json())) == c.to_json()
    with pytest.raises(TunesmithError, match="Invalid decoding constraint"):
        Constraint("json_schema", {"type": "no-such-type"})
    with pytest.raises(TunesmithError):
        Constraint("choice", choices=())
    with pytest.raises(TunesmithError):
        Constraint("regex")  # type: ignore[arg-type]


def test_response_formats_both_ways():
    closed = Constraint("json_schema", SCHEMA)
    assert to_response_format(closed) == {
        "type": "json_schema",
        "json_schema": {"name": "reply", "schema": SCHEMA, "strict": True},
    }
    optional = Constraint("json_schema", {**SCHEMA, "required": ["queue"]})
    assert to_response_format(optional)["json_schema"]["strict"] is False  # OpenAI's strict mode would refuse it
    assert to_response_format(Constraint("json_object")) == {"type": "json_object"}
    assert to_response_format(Constraint("choice", choices=("a",))) is None and to_response_format(None) is None
    assert constraint_from_response_format({"type": "text"}) is None
    assert constraint_from_response_format(to_response_format(closed)) == closed
    for bad in ({"type": "xml"}, {"type": "json_schema"}, {"type": "json_schema", "json_schema": {"schema": 3}}):
        with pytest.raises(TunesmithError):
            constraint_from_response_format(bad)


# ------------------------------------------------------------------------------------- the logits processor


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from tunesmith.models import load_model, load_tokenizer, resolve_model

    tok = load_tokenizer(resolve_model(str(tiny_model_dir)))
    tok.padding_side = "left"
    return load_model(resolve_model(str(tiny_model_dir))).eval(), tok


def generate(tiny, constraint: Constraint | None, no_repeat: int | None = None, max_new_tokens: int = 120):
    """Greedy left-padded replies: (text before the end-of-turn token, whether it stopped there) per prompt."""
    model, tok = tiny
    eot = tok.convert_tokens_to_ids(tok.eos_token)
    enc = tok(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    extra = (
        {"logits_processor": [logits_processor(tok, constraint, len(PROMPTS), no_repeat)], "no_repeat_ngram_size": 0}
        if constraint
        else {"no_repeat_ngram_size": no_repeat or 0}
    )
    with torch.inference_mode():
        out = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=eot,
            pad_token_id=tok.pad_token_id,
            **extra,
        )
    rows = out[:, enc["input_ids"].shape[1] :].tolist()
    return [(tok.decode(r[: r.index(eot)] if eot in r else r), eot in r) for r in rows]


def valid(text: str, schema: dict) -> bool:
    try:
        jsonschema.validate(json.loads(text), schema)
        return True
    except (ValueError, jsonschema.ValidationError):
        return False


@pytest.mark.parametrize("no_repeat", [None, 2])
def test_a_random_model_under_a_schema_gives_valid_json_and_stops_in_a_padded_batch(tiny, no_repeat):
    free = generate(tiny, None, no_repeat, max_new_tokens=40)
    assert not any(valid(text, SCHEMA) for text, _ in free)  # without the constraint: never
    held = generate(tiny, Constraint("json_schema", SCHEMA), no_repeat)
    assert all(stopped and valid(text, SCHEMA) for text, stopped in held), held
    assert len({len(text) for text, _ in held}) > 1  # rows finished at different steps: finished rows were fed on


def test_a_layout_holds_a_random_model_to_json_dumps_own_text(tiny):
    for layout in ((", ", ": "), (",", ":")):
        held = generate(tiny, Constraint("json_schema", SCHEMA, separators=layout), max_new_tokens=80)
        for text, stopped in held:  # no blanks to spend tokens on: exactly what json.dumps writes
            assert stopped and valid(text, SCHEMA) and text == json.dumps(json.loads(text), separators=layout)


def test_a_label_set_and_any_json_object_hold_too(tiny):
    labels = ("billing", "technical support", "x")
    assert all(stopped and text in labels for text, stopped in generate(tiny, Constraint("choice", choices=labels)))
    held = generate(tiny, Constraint("json_object"), max_new_tokens=40)
    for text, stopped in held:  # a random model writes a long object: it need not close in 40 tokens
        assert text.startswith("{") and (not stopped or isinstance(json.loads(text), dict))
    assert held != generate(tiny, None, max_new_tokens=40)


def test_blocking_repeated_ngrams_never_leaves_a_row_without_a_token(tiny):
    label = "the the the the the the"  # every continuation the grammar allows repeats a bigram
    held = generate(tiny, Constraint("choice", choices=(label,)), no_repeat=2, max_new_tokens=20)
    assert held == [(label, True)] * len(PROMPTS)


def test_the_processor_refuses_another_batch_size(tiny):
    model, tok = tiny
    proc = logits_processor(tok, Constraint("json_schema", SCHEMA), 2)
    with pytest.raises(ValueError, match="batches of 2"):
        proc(torch.zeros((3, 4), dtype=torch.long), torch.zeros((3, len(tok))))


def test_grammars_are_compiled_once_per_tokenizer_and_constraint(tiny):
    from tunesmith.generate.decoding import compiled_grammar

    _, tok = tiny
    first = compiled_grammar(tok, Constraint("json_schema", SCHEMA))
    assert compiled_grammar(tok, Constraint("json_schema", json.loads(json.dumps(SCHEMA)))) is first
    assert compiled_grammar(tok, Constraint("json_object")) is not first
    assert compiled_grammar(copy.copy(tok), Constraint("json_schema", SCHEMA)) is first  # a copy shares them
    assert compiled_grammar(tok, task_constraint("json", None, replies(), ["queue"]))  # nested, arrays, enums


def test_a_server_sent_many_schemas_keeps_only_the_most_recently_used_grammars(tiny, monkeypatch):
    """Each distinct response_format was compiled and kept for the server's life, each sized to the vocabulary."""
    from tunesmith.generate import decoding

    _, tok = tiny
    monkeypatch.setattr(decoding, "MAX_GRAMMARS", 3)
    labels = [Constraint("choice", choices=(f"label{i}", "other")) for i in range(5)]
    first = decoding.compiled_grammar(tok, labels[0])
    for constraint in labels[1:3]:
        decoding.compiled_grammar(tok, constraint)
    assert decoding.compiled_grammar(tok, labels[0]) is first  # used again: the most recent now
    for constraint in labels[3:]:
        decoding.compiled_grammar(tok, constraint)
    kept = decoding._GRAMMARS[tok.backend_tokenizer][tok.eos_token].compiled
    assert len(kept) == 3 and labels[0].key() in kept and labels[1].key() not in kept


def test_a_schema_the_compiler_cannot_take_is_a_clear_error(tiny):
    from tunesmith.generate.decoding import compiled_grammar

    with pytest.raises(TunesmithError, match="Cannot compile"):
        compiled_grammar(tiny[1], Constraint("json_schema", {"$ref": "#/$defs/missing"}))


# ------------------------------------------------------------------------------------------------ the backends


def test_the_transformers_backend_generates_under_a_constraint(tiny_model_dir):
    from tunesmith.generate.backends import TransformersBackend
    from tunesmith.models import resolve_model

    backend = TransformersBackend(resolve_model(str(tiny_model_dir)), precision="fp32")
    cases = [EvalCase(str(i), [{"role": "user", "content": p}]) for i, p in enumerate(PROMPTS)]
    for no_repeat in (None, 3):
        gens = backend.generate(
            cases,
            max_new_tokens=120,
            batch_size=2,
            no_repeat_ngram_size=no_repeat,
            constraint=Constraint("json_schema", SCHEMA),
        )
        assert all(valid(g.output, SCHEMA) and not g.hit_limit and g.new_tokens > 0 for g in gens), gens
    free = backend.generate(cases, max_new_tokens=20, batch_size=2)
    assert not any(valid(g.output, SCHEMA) for g in free)


def test_the_endpoint_backend_sends_the_response_format(monkeypatch):
    from tunesmith.generate.backends import EndpointBackend

    sent = []

    def create(**kwargs):
        sent.append(kwargs)
        message = types.SimpleNamespace(content='{"queue": "billing"}', tool_calls=None)
        return types.SimpleNamespace(choices=[types.SimpleNamespace(message=message, finish_reason="stop")], usage=None)

    backend = EndpointBackend("http://127.0.0.1:9/v1", model="m", max_retries=0)
    monkeypatch.setattr(
        backend,
        "client",
        types.SimpleNamespace(chat=types.SimpleNamespace(completions=types.SimpleNamespace(create=create))),
    )
    case = EvalCase("c", [{"role": "user", "content": "hi"}])
    backend.generate([case], constraint=Constraint("json_schema", SCHEMA))
    backend.generate([case], constraint=Constraint("choice", choices=("a",)))
    backend.generate([case])
    assert sent[0]["response_format"]["json_schema"]["schema"] == SCHEMA
    assert "response_format" not in sent[1] and "response_format" not in sent[2]


def test_llama_cpp_gets_the_grammar_and_vllm_its_structured_output_params(monkeypatch):
    from tunesmith.generate import backends

    parsed = []
    fake = types.ModuleType("llama_cpp")
    fake.LlamaGrammar = types.SimpleNamespace(from_string=lambda text, verbose=True: parsed.append(text) or text)
    monkeypatch.setitem(sys.modules, "llama_cpp", fake)
    calls = []
    llama = backends.LlamaCppBackend.__new__(backends.LlamaCppBackend)
    llama.llm = types.SimpleNamespace(
        create_chat_completion=lambda **kw: (
            calls.append(kw)
            or {
                "choices": [{"message": {"content": '{"queue": "billing"}'}, "finish_reason": "stop"}],
                "usage": {"completion_tokens": 5},
            }
        )
    )
    constraint = Constraint("json_schema", SCHEMA)
    case = EvalCase("c", [{"role": "user", "content": "hi"}])
    llama.generate([case, case], constraint=constraint)
    assert calls[0]["grammar"] == gbnf(constraint) and len(parsed) == 1  # parsed once, used for every case

    class Params:
        def __init__(self, **kw):
            self.kw = kw

    vllm = types.SimpleNamespace(sampling_params=types.SimpleNamespace(StructuredOutputsParams=Params))
    server = backends.VLLMBackend.__new__(backends.VLLMBackend)
    server.vllm = vllm
    assert server._structured(constraint)["structured_outputs"].kw == {"json": SCHEMA}
    assert server._structured(Constraint("choice", choices=("a", "b")))["structured_outputs"].kw == {
        "choice": ["a", "b"]
    }
    assert server._structured(None) == {}


# ------------------------------------------------------------------------------------------------------ cache


def test_cache_keys_of_free_decoding_are_unchanged_and_each_constraint_has_its_own():
    from tunesmith.generate.cache import cache_key

    free = {"max_new_tokens": 64, "no_repeat_ngram_size": None, "greedy": True}
    as_before = hashlib.sha256(
        json.dumps(["fp", free, "prompt"], sort_keys=True, ensure_ascii=False).encode("utf-8")
    ).hexdigest()
    assert cache_key("fp", free, "prompt") == as_before
    one = cache_key("fp", {**free, "constraint": Constraint("json_schema", SCHEMA)}, "prompt")
    same = cache_key("fp", {**free, "constraint": Constraint("json_schema", json.loads(json.dumps(SCHEMA)))}, "prompt")
    other = cache_key("fp", {**free, "constraint": Constraint("choice", choices=("a",))}, "prompt")
    assert one == same and len({as_before, one, other}) == 3


def test_generate_cached_passes_the_constraint_and_caches_by_it(tmp_path):
    from tunesmith.generate.backends import Generation
    from tunesmith.generate.cache import GenerationCache, generate_cached

    class Backend:
        fingerprint = "fake"

        def __init__(self):
            self.seen = []

        def prompt_key(self, case):
            return case.id

        def generate(
            self,
            cases,
            max_new_tokens=128,
            batch_size=16,
            label="",
            no_repeat_ngram_size=None,
            on_result=None,
            **kwargs,
        ):
            self.seen.append(kwargs)
            gens = [Generation(json.dumps(kwargs.get("constraint") is not None), 1, False, 0.0) for _ in cases]
            for i, g in enumerate(gens):
                on_result and on_result(i, g)
            return gens

    cache, backend = GenerationCache(tmp_path / "g.sqlite"), Backend()
    cases = [EvalCase("a", [])]
    free = {"max_new_tokens": 8, "no_repeat_ngram_size": None, "greedy": True}
    held = {**free, "constraint": Constraint("json_object")}
    assert generate_cached(backend, cases, free, cache)[0].output == "false"
    assert generate_cached(backend, cases, held, cache)[0].output == "true"
    assert generate_cached(backend, cases, held, cache)[0].cached  # the constraint's key found it again
    assert backend.seen == [{}, {"constraint": Constraint("json_object")}]  # free decoding passes no constraint


def chain_model(tmp_path, tiny_model_dir, reply: str):
    """A tiny Llama that answers every ChatML prompt with `reply`, then its end-of-turn token: its layers add
    nothing, so each step's logits depend on the current token only, and its (untied) head maps each token of the
    chain to the next."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = LlamaForCausalLM.from_pretrained(tiny_model_dir, tie_word_embeddings=False)
    prompt = tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True)
    start = tok(prompt, add_special_tokens=False)["input_ids"][-1]
    chain = [start, *tok(reply, add_special_tokens=False)["input_ids"], tok.convert_tokens_to_ids(tok.eos_token)]
    assert len(set(chain)) == len(chain)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embed = model.model.embed_tokens.weight
        model.lm_head.weight.normal_(0, 0.01)
        for here, after in zip(chain, chain[1:]):
            model.lm_head.weight[after] = 20 * embed[here] / embed[here].norm()
    out = tmp_path / "chain"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_a_free_reply_the_constraint_takes_whole_is_the_constrained_reply_and_is_not_generated_again(
    tmp_path, tiny_model_dir
):
    """A tuned model answering in its schema was decoded twice (free and constrained) for the same replies."""
    from tunesmith.config import Config
    from tunesmith.eval.evaluate import evaluate
    from tunesmith.generate.backends import TransformersBackend
    from tunesmith.generate.decoding import Decoding, settles
    from tunesmith.models import resolve_model

    reply = json.dumps({"queue": "billing"})
    backend = TransformersBackend(resolve_model(str(chain_model(tmp_path, tiny_model_dir, reply))), precision="fp32")
    calls = []
    answer = backend.answer
    backend.answer = lambda cases, request: calls.append(request.constraint) or answer(cases, request)
    cases = [EvalCase(str(i), [{"role": "user", "content": p}], expected=reply) for i, p in enumerate(PROMPTS)]
    schema = {"type": "object", "properties": {"queue": {"enum": QUEUES}}, "required": ["queue"]}
    other = {**schema, "properties": {"queue": {"enum": ["technical"]}}}
    cfg = Config.model_validate({"task": {"type": "json"}, "eval": {"general_probe": False, "batch_size": 2}})

    def run(held: Constraint, out: str) -> dict[str, list[str]]:
        calls.clear()
        free = Decoding(24)
        suites = {"heldout": cases, "heldout_free": cases}
        evaluate(
            backend,
            suites,
            cfg,
            tmp_path / out,
            decodings={"heldout": replace(free, constraint=held), "heldout_free": free},
        )
        rows = [json.loads(line) for line in (tmp_path / out / "results.jsonl").read_text().splitlines()]
        return {name: [r["output"] for r in rows if r["suite"] == name] for name in suites}

    layout = (", ", ": ")
    takes, refuses = (
        Constraint("json_schema", schema, separators=layout),
        Constraint("json_schema", other, separators=layout),
    )
    assert settles(backend.tok, takes, reply) and not settles(backend.tok, refuses, reply)
    assert not settles(backend.tok, takes, reply + " ") and not settles(backend.tok, takes, '{"queue":"billing"}')
    both = run(takes, "takes")
    assert both == {"heldout": [reply] * 3, "heldout_free": [reply] * 3} and calls == [None]  # decoded once
    backend.settled = lambda free, constraint: False  # decoded under the constraint after all: the same replies
    assert run(takes, "forced")["heldout"] == [reply] * 3 and calls == [None, takes]
    del backend.settled
    held = run(refuses, "refuses")
    assert held["heldout"] == [json.dumps({"queue": "technical"})] * 3 and calls == [None, refuses]
    # a reply cut at the limit, or one that re-encodes to other tokens than were generated, is not taken
    from tunesmith.generate.backends import Generation

    assert not backend.settled(Generation(reply, 6, True, 0.0), takes)
    assert not backend.settled(Generation(reply, 9, False, 0.0), takes)
    assert backend.settled(Generation(reply, 6, False, 0.0), takes)


# ------------------------------------------------------------------------------------------------------- GBNF


def rules_of(grammar: str) -> dict[str, str]:
    return dict(line.split(" ::= ", 1) for line in grammar.splitlines() if " ::= " in line)


def outside_literals(body: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]', " ", body)


def test_the_gbnf_grammar_names_every_enum_value_and_is_well_formed():
    schema = infer_reply_schema(replies(), ["queue"])
    grammar = gbnf(Constraint("json_schema", schema))
    rules = rules_of(grammar)
    assert "root" in rules and all(re.fullmatch(r"[a-zA-Z0-9-]+", name) for name in rules)  # llama.cpp's names
    for value in QUEUES + ["typo", "vip", "en", "none"]:
        assert f'"\\"{value}\\""' in grammar
    for body in rules.values():
        bare = outside_literals(body)
        assert bare.count("(") == bare.count(")") and bare.count("{") == bare.count("}")
        assert set(re.findall(r"[a-zA-Z][a-zA-Z0-9-]*", bare)) <= set(rules)  # every referenced rule is defined
    assert "{0, -1}" not in grammar and "(=" not in grammar  # none of xgrammar's own extensions


@pytest.mark.parametrize(
    "constraint, good, bad",
    [
        (
            Constraint("json_schema", {**SCHEMA, "required": ["queue", "priority"]}),
            [
                '{"queue": "billing", "priority": "low"}',
                '{\n  "queue":"shipping",\n  "urgent": true, "priority": "high"\n}',
            ],
            [
                '{"queue": "sales", "priority": "low"}',
                '{"priority": "low", "queue": "billing"}',
                '{"queue": "billing"}',
                '{"queue": "billing", "priority": "low", "extra": 1}',
            ],
        ),
        (Constraint("json_object"), ["{}", '{"a": [1, -2.5e3, "x\\n", null, {"b": false}]}'], ["[]", '{"a": }', '"s"']),
        (
            Constraint("json_schema", SCHEMA, separators=(", ", ": ")),
            ['{"queue": "billing", "urgent": false, "priority": "low"}'],
            [
                '{"queue":"billing","urgent":false,"priority":"low"}',
                '{ "queue": "billing", "urgent": false, "priority": "low"}',
            ],
        ),
        (Constraint("json_object", separators=(",", ":")), ['{"a":[1,{"b":null}]}'], ['{"a": 1}', '{"a":[1, 2]}']),
        (Constraint("choice", choices=("billing", 'say "hi"\n')), ["billing", 'say "hi"\n'], ["bill", "billing "]),
    ],
)
def test_the_gbnf_grammar_accepts_exactly_what_the_constraint_allows(constraint, good, bad):
    """Checked with xgrammar's EBNF parser, which reads llama.cpp's GBNF syntax."""
    import xgrammar as xgr

    from tunesmith.models import make_tiny_tokenizer

    compiler = xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(make_tiny_tokenizer()))
    compiled = compiler.compile_grammar(xgr.Grammar.from_ebnf(gbnf(constraint)))

    def accepts(text: str) -> bool:
        matcher = xgr.GrammarMatcher(compiled)
        return matcher.accept_string(text) and matcher.is_completed()

    assert all(accepts(t) for t in good), [t for t in good if not accepts(t)]
    assert not any(accepts(t) for t in bad), [t for t in bad if accepts(t)]


def test_a_gbnf_reader_of_llama_cpp_syntax_parses_the_grammar():
    """llguidance's GBNF reader (a port of llama.cpp's grammar syntax) parses it: a second, independent check."""
    to_lark = pytest.importorskip("llguidance.gbnf_to_lark").gbnf_to_lark
    import llguidance

    for constraint in (
        Constraint("json_schema", infer_reply_schema(replies(), ["queue"])),
        Constraint("json_object"),
        Constraint("choice", choices=("a", "b c")),
        task_constraint("json", None, replies(), []),
    ):
        lark = to_lark(gbnf(constraint))
        assert llguidance.LLMatcher.validate_grammar(llguidance.LLMatcher.grammar_from_lark(lark)) == ""


def test_gbnf_covers_arrays_strings_and_alternatives_and_names_what_it_cannot_enforce():
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["tags", "code", "id"],
        "properties": {
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1, "maxItems": 2},
            "code": {"type": "string", "maxLength": 3, "pattern": "^[A-Z]+$"},
            "id": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        },
    }
    grammar = gbnf(Constraint("json_schema", schema))
    assert grammar.startswith("# not enforced by this grammar: pattern at schema.properties.code")
    assert "char{0,3}" in grammar and "{0,1}" in grammar and "(integer | null)" in grammar
    with pytest.raises(TunesmithError, match="no GBNF grammar"):
        gbnf(Constraint("json_schema", {"$defs": {"x": {"type": "string"}}, "$ref": "#/$defs/x"}))
