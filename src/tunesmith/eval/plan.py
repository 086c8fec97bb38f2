"""How a project's task cases are decoded: the generation limit and the structured-decoding constraint.

    decoding = task_decoding(cfg, train_records, tok, schema)   # Decoding(max_new_tokens=24, constraint=...)

One `Decoding` serves every evaluation of a project's task cases — the base, the tuned model, the validation set
during training, the baselines — so they are compared on equal terms. The limit, when `eval.max_new_tokens` is
unset, is derived from the longest reply in the training split: a base model that rambles stops soon after the
longest answer it could need instead of at 128 tokens. The constraint (`eval.decoding`) holds replies to the task's
JSON Schema or label set (`tunesmith.generate.decoding`).
"""

from __future__ import annotations

from tunesmith.config.eval import wants_constraint
from tunesmith.generate.decoding import Decoding, task_constraint

DEFAULT_LIMIT = 128  # when nothing else says how long a reply may be
LIMIT_FACTOR, LIMIT_MARGIN, LIMIT_MAX = 1.25, 8, 512


def reply_limit(replies: list[str], tok, configured: int | None) -> int:
    """`eval.max_new_tokens` when set, else 1.25x the longest training reply's tokens plus 8 (at most 512)."""
    if configured:
        return configured
    lengths = [len(tok(r, add_special_tokens=False)["input_ids"]) for r in replies if r]
    if not lengths:
        return DEFAULT_LIMIT
    return min(LIMIT_MAX, int(max(lengths) * LIMIT_FACTOR) + LIMIT_MARGIN)


def task_constraint_of(cfg, replies: list[str], schema: dict | None):
    """The constraint `eval.decoding` puts on this task's replies (None: free decoding): what is evaluated, and
    what exports ship as a grammar and schema."""
    if not wants_constraint(cfg):
        return None
    return task_constraint(cfg.task.type, schema, replies, list(cfg.task.match_fields))


def task_decoding(cfg, replies: list[str], tok, schema: dict | None) -> Decoding:
    """The decoding of a project's task cases, from its config and the training split's replies."""
    return Decoding(
        reply_limit(replies, tok, cfg.eval.max_new_tokens),
        cfg.eval.no_repeat_ngram_size,
        task_constraint_of(cfg, replies, schema),
    )
