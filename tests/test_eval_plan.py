"""The decoding of a project's task cases: the derived generation limit and when replies are constrained."""

from tunesmith.config import Config
from tunesmith.eval.plan import DEFAULT_LIMIT, LIMIT_MAX, Decoding, reply_limit, task_decoding, wants_constraint


def test_the_limit_comes_from_the_longest_training_reply_unless_configured(tiny_tok):
    replies = ['{"queue": "billing"}', '{"queue": "technical", "priority": "high"}']
    longest = max(len(tiny_tok(r, add_special_tokens=False)["input_ids"]) for r in replies)
    assert reply_limit(replies, tiny_tok, None) == int(longest * 1.25) + 8
    assert reply_limit(replies, tiny_tok, 200) == 200
    assert reply_limit([], tiny_tok, None) == DEFAULT_LIMIT
    assert reply_limit(["word " * 2000], tiny_tok, None) == LIMIT_MAX


def test_constrained_decoding_is_the_default_for_json_and_label_tasks_only():
    assert wants_constraint(Config.model_validate({"task": {"type": "json"}}))
    assert wants_constraint(Config.model_validate({"task": {"type": "classification"}}))
    assert not wants_constraint(Config.model_validate({"task": {"type": "chat"}}))
    assert not wants_constraint(Config.model_validate({"task": {"type": "json"}, "eval": {"decoding": "free"}}))
    assert wants_constraint(Config.model_validate({"task": {"type": "chat"}, "eval": {"decoding": "constrained"}}))


def test_free_decoding_keeps_the_cache_settings_it_always_had(tiny_tok):
    cfg = Config.model_validate({"task": {"type": "json"}, "eval": {"no_repeat_ngram_size": 4}})
    d = task_decoding(cfg, ['{"queue": "billing"}'] * 4, tiny_tok, None)
    assert d.constraint is not None and d.no_repeat_ngram_size == 4
    assert d.free() == Decoding(d.max_new_tokens, 4)
    assert d.free().cache_settings() == {"max_new_tokens": d.max_new_tokens, "no_repeat_ngram_size": 4, "greedy": True}
    assert d.cache_settings()["constraint"] is d.constraint
