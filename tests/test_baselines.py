"""The cheapest alternatives as generation backends: a TF-IDF classifier and few-shot prompting, scored by the same
`evaluate()` as a model, on a small synthetic intent data set (and the tiny model for few-shot end to end)."""

from __future__ import annotations

import json

import pytest

from tunesmith.config import Config, TaskConfig
from tunesmith.data.records import Record
from tunesmith.errors import TunesmithError
from tunesmith.eval.baselines import (
    ClassifierBackend,
    FewShotBackend,
    applicable,
    label_fields,
    label_problem,
    user_text,
)
from tunesmith.eval.evaluate import evaluate
from tunesmith.eval.suite import cases_from_records
from tunesmith.generate.backends import Generation
from tunesmith.generate.cache import GenerationCache

SYSTEM = "Classify the banking question. Reply with JSON only."
INTENTS = {
    "card_arrival": ["card", "arrive", "delivery", "post"],
    "lost_card": ["lost", "stolen", "missing", "thief"],
    "exchange_rate": ["exchange", "rate", "currency", "euros"],
    "top_up_failed": ["top-up", "failed", "declined", "reload"],
}
NAMES = list(INTENTS)
OPENERS = ["hi there, about the", "question on my", "please help, my", "urgent:"]


def intent_rows(n: int = 60, start: int = 0, task: str = "json") -> list[dict]:
    """Conversations written like conftest's routing_rows: one distinctive word per intent in each message."""
    rows = []
    for i in range(start, start + n):
        intent = NAMES[i % 4]
        word = INTENTS[intent][(i // 4) % 4]
        reply = (
            intent
            if task == "classification"
            else json.dumps({"intent": intent, "priority": "high" if i % 7 == 0 else "normal"})
        )
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"{OPENERS[i % 4]} {word} issue, ticket {i * 13 % 97}"},
                    {"role": "assistant", "content": reply},
                ]
            }
        )
    return rows


def records(rows: list[dict]) -> list[Record]:
    return [
        Record(messages=r["messages"], id=f"case-{i:03d}", source="data/x.jsonl", line=i + 1)
        for i, r in enumerate(rows)
    ]


def json_cfg(**eval_settings) -> Config:
    cfg = Config()
    cfg.task = TaskConfig(type="json", match_fields=["intent"], system_prompt=SYSTEM)
    cfg.eval.max_new_tokens = 8
    cfg.eval.bootstrap_samples = 100
    for k, v in eval_settings.items():
        setattr(cfg.eval, k, v)
    return cfg


def read_rows(out) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


# --- what a classifier can predict -----------------------------------------------------------------------------


def test_label_fields_for_classification_json_and_free_text():
    json_replies = [r["messages"][-1]["content"] for r in intent_rows(60)]
    assert label_fields(TaskConfig(type="classification"), ["a", "b", "a"]) == ["__label__"]
    assert label_fields(TaskConfig(type="json"), json_replies) == ["intent", "priority"]
    assert label_fields(TaskConfig(type="json", match_fields=["intent"]), json_replies) == ["intent"]
    free = [json.dumps({"intent": NAMES[i % 4], "reason": f"because of reason number {i}"}) for i in range(60)]
    assert label_fields(TaskConfig(type="json"), free) is None  # `reason` is free text
    assert "reason" in label_problem(TaskConfig(type="json"), free)
    assert label_fields(TaskConfig(type="json", match_fields=["intent"]), free) == ["intent"]
    assert label_fields(TaskConfig(type="chat"), ["Sure, I can help with that."] * 30) is None
    nested = [json.dumps({"intent": {"name": "x"}}) for _ in range(30)]
    assert label_fields(TaskConfig(type="json"), nested) is None
    # Too many values for the replies: 30 replies, 12 values (not fewer than a third).
    many = [json.dumps({"intent": f"i{i % 12}"}) for i in range(30)]
    assert label_fields(TaskConfig(type="json"), many) is None
    assert label_fields(TaskConfig(type="json"), many[:12] * 4) is not None  # 48 replies, 12 values


def test_applicable_baselines_follow_eval_baselines():
    labelled = records(intent_rows(30))
    chat = records(
        [
            {
                "messages": [
                    {"role": "user", "content": f"tell me a story {i}"},
                    {"role": "assistant", "content": f"Once upon a time, number {i}."},
                ]
            }
            for i in range(30)
        ]
    )
    cfg = json_cfg()
    assert applicable(cfg, labelled) == ["classifier", "few_shot"]
    cfg.task = TaskConfig(type="chat")
    assert applicable(cfg, chat) == []
    cfg.eval.baselines = ["few_shot"]
    assert applicable(cfg, chat) == ["few_shot"]
    cfg.eval.baselines = ["classifier", "few_shot"]
    with pytest.raises(TunesmithError) as err:
        applicable(cfg, chat)
    assert err.value.problems[0].where == "eval.baselines" and "free text" in err.value.problems[0].message


# --- the classifier ---------------------------------------------------------------------------------------------


def test_classifier_scores_a_json_label_task_through_evaluate(tmp_path):
    cfg = json_cfg()
    train, test = records(intent_rows(60)), records(intent_rows(24, start=200))
    backend = ClassifierBackend(train, cfg.task)
    assert backend.C == 10.0 and backend.c_scores == {} and backend.fields == ["intent"]
    assert backend.train_s > 0 and '"C": 10.0' in backend.fingerprint
    metrics = evaluate(backend, {"heldout": cases_from_records(test, cfg.task)}, cfg, tmp_path)["heldout"]
    assert metrics["task_accuracy"] >= 0.9 and metrics["format_validity"] == 1.0
    assert metrics["intent_accuracy"] == metrics["task_accuracy"] and metrics["latency_s"] > 0
    rows = read_rows(tmp_path)
    assert len(rows) == 24 and {"field:intent", "format_valid", "task_correct"} <= set(rows[0]["scores"])
    for row in rows:
        obj = json.loads(row["output"])
        assert list(obj) == ["intent", "priority"] and obj["priority"] == "normal"  # the most common value
        assert obj["intent"] in NAMES


def test_classifier_renders_bare_labels_for_a_classification_task(tmp_path):
    cfg = json_cfg()
    cfg.task = TaskConfig(type="classification", system_prompt=SYSTEM)
    train = records(intent_rows(60, task="classification"))
    test = records(intent_rows(24, start=200, task="classification"))
    backend = ClassifierBackend(train, cfg.task)
    metrics = evaluate(backend, {"heldout": cases_from_records(test, cfg.task)}, cfg, tmp_path)["heldout"]
    assert metrics["task_accuracy"] >= 0.9
    assert {r["output"] for r in read_rows(tmp_path)} <= set(NAMES)


def test_classifier_is_cached_like_a_model(tmp_path):
    cfg = json_cfg()
    backend = ClassifierBackend(records(intent_rows(40)), cfg.task)
    cases = cases_from_records(records(intent_rows(8, start=300)), cfg.task)
    cache = GenerationCache(tmp_path / "gen.sqlite")
    first = evaluate(backend, {"heldout": cases}, cfg, tmp_path, cache=cache)
    again = evaluate(backend, {"heldout": cases}, cfg, tmp_path, cache=cache)
    assert len(cache) == 8 and all(r["cached"] for r in read_rows(tmp_path))
    assert again["heldout"]["task_accuracy"] == first["heldout"]["task_accuracy"]
    other = ClassifierBackend(records(intent_rows(40, start=1)), cfg.task)  # other training data: another model
    assert other.fingerprint != backend.fingerprint


def test_validation_picks_c():
    # Imbalanced training data: a heavily regularized model predicts the majority intent for everything.
    rows = [r for i, r in enumerate(intent_rows(120)) if i % 4 == 0 or i % 3 == 0][:60]
    train, valid = records(rows), records(intent_rows(16, start=400))
    backend = ClassifierBackend(train, TaskConfig(type="json", match_fields=["intent"]), valid, c_grid=(0.001, 3.0))
    assert set(backend.c_scores) == {0.001, 3.0}
    assert backend.c_scores[3.0] > backend.c_scores[0.001] and backend.C == 3.0
    assert '"C": 3.0' in backend.fingerprint
    default = ClassifierBackend(train, TaskConfig(type="json", match_fields=["intent"]), valid)
    assert set(default.c_scores) == {1.0, 3.0, 10.0, 30.0}
    assert default.c_scores[default.C] == max(default.c_scores.values())


def test_classifier_refuses_a_free_text_task():
    rows = [
        {"messages": [{"role": "user", "content": f"q {i}"}, {"role": "assistant", "content": f"answer {i}"}]}
        for i in range(20)
    ]
    with pytest.raises(TunesmithError) as err:
        ClassifierBackend(records(rows), TaskConfig(type="chat"))
    assert err.value.problems[0].where == "eval.baselines"


# --- few-shot prompting -----------------------------------------------------------------------------------------


class RecordingBackend:
    """A fake inner backend: records the cases and settings it gets, answers each case's last user turn."""

    fingerprint = "fake-model"

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def prompt_key(self, case) -> str:
        return json.dumps(case.messages)

    def generate(
        self, cases, max_new_tokens=128, batch_size=16, label="Generating", no_repeat_ngram_size=None, on_result=None
    ):
        self.calls.append(
            {
                "cases": cases,
                "max_new_tokens": max_new_tokens,
                "batch_size": batch_size,
                "no_repeat_ngram_size": no_repeat_ngram_size,
            }
        )
        out = [Generation(f"echo {c.messages[-1]['content']}", 3, False, 0.01) for c in cases]
        for i, gen in enumerate(out):
            if on_result:
                on_result(i, gen)
        return out


def shot_record(text: str, reply: str, system: bool = True) -> Record:
    head = [{"role": "system", "content": "old system"}] if system else []
    return Record(messages=head + [{"role": "user", "content": text}, {"role": "assistant", "content": reply}])


def test_few_shot_prompts_hold_the_nearest_examples_most_similar_last(tmp_path):
    train = [
        shot_record("my parcel is late", "shipping"),
        shot_record("the invoice total is wrong", "billing"),
        shot_record("invoice wrong and charged twice on the invoice", "billing-2"),
        shot_record("password reset does not work", "technical"),
        shot_record("cannot log in", "technical-2"),
    ]
    inner = RecordingBackend()
    backend = FewShotBackend(inner, train, k=2)
    cases = cases_from_records([shot_record("why is my invoice wrong?", "billing")], TaskConfig())
    cases[0].messages = [{"role": "system", "content": "Route it."}, cases[0].messages[-1]]
    gens = evaluate(backend, {"heldout": cases}, json_cfg(no_repeat_ngram_size=4), tmp_path)
    sent = inner.calls[0]["cases"][0].messages
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert sent[0]["content"] == "Route it." and sent[-1]["content"] == "why is my invoice wrong?"
    # The two invoice records are the nearest, the more similar of them last (right before the case).
    shown = [m["content"] for m in sent[1:-1]]
    assert set(shown[1::2]) == {"billing", "billing-2"}
    sims = backend.nearest(["why is my invoice wrong?"])[0]
    assert [backend.examples[j][1] for j in sims] == shown[1::2]
    assert sims == sorted(sims, key=lambda j: _cosine(backend, "why is my invoice wrong?", j))
    assert inner.calls[0]["max_new_tokens"] == 8 and inner.calls[0]["no_repeat_ngram_size"] == 4
    assert gens["heldout"]["cases"] == 1
    # The prompt key is the inner backend's key of the rewritten case; the fingerprint names model, k and data.
    assert backend.prompt_key(cases[0]) == json.dumps(sent)
    fp = json.loads(backend.fingerprint)
    assert fp["few_shot"] == "fake-model" and fp["k"] == 2 and fp["data"]
    assert json.loads(FewShotBackend(inner, train[:4], k=2).fingerprint)["data"] != fp["data"]


def test_few_shot_without_a_system_message_puts_the_examples_first():
    inner = RecordingBackend()
    train = [shot_record(f"question {w}", w, system=False) for w in ("alpha", "bravo", "charlie")]
    backend = FewShotBackend(inner, train, k=8)
    case = cases_from_records([shot_record("question bravo", "bravo", system=False)], TaskConfig())[0]
    sent = backend.rewrite([case])[0].messages
    assert len(sent) == 7 and sent[0]["role"] == "user" and sent[-1]["content"] == "question bravo"
    assert sent[-2]["content"] == "bravo"  # the identical example is the most similar: last
    assert case.messages == [{"role": "user", "content": "question bravo"}]  # the case itself is untouched


def _cosine(backend: FewShotBackend, text: str, j: int) -> float:
    return float((backend.vectorizer.transform([text]) @ backend.matrix[j].T).toarray()[0, 0])


def test_few_shot_on_the_tiny_model_end_to_end(tmp_path, tiny_model_dir):
    from tunesmith.generate.backends import TransformersBackend
    from tunesmith.models import resolve_model

    cfg = json_cfg(batch_size=4, few_shot_k=3)
    inner = TransformersBackend(resolve_model(str(tiny_model_dir)), precision="fp32")
    backend = FewShotBackend(inner, records(intent_rows(20)), k=cfg.eval.few_shot_k)
    cases = cases_from_records(records(intent_rows(4, start=500)), cfg.task)
    metrics = evaluate(backend, {"heldout": cases}, cfg, tmp_path)["heldout"]
    rows = read_rows(tmp_path)
    assert metrics["cases"] == 4 and len(rows) == 4 and all(r["output"] is not None for r in rows)
    assert all(r["new_tokens"] <= 8 for r in rows) and "format_valid" in rows[0]["scores"]
    prompt = backend.prompt_key(cases[0])
    assert prompt == inner.prompt_key(backend.rewrite([cases[0]])[0]) != inner.prompt_key(cases[0])
    assert prompt.count('"intent"') == 3 and prompt.index(SYSTEM) < prompt.index('"intent"')
    assert user_text(cases[0].messages) in prompt
