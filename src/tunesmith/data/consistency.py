"""Format consistency of replies: JSON that parses and fits the task's schema, replies that drift in shape
(some JSON, some prose), and length outliers.

    findings = reply_format_findings(record, validator) + shape_findings(records)
"""

from __future__ import annotations

import json
import statistics

from tunesmith.data.records import Record


def _as_json_object(text: str):
    try:
        obj = json.loads(text.strip())
    except (json.JSONDecodeError, AttributeError):
        return None
    return obj if isinstance(obj, dict) else None


def reply_format_findings(rec: Record, validator=None) -> list:
    """For json tasks: the final reply is one JSON object and fits the schema (a jsonschema validator) if given."""
    from tunesmith.data.checks import Code, Finding, Severity

    if rec.reply is None or not rec.reply.strip():
        return []  # reported by the schema checks
    obj = _as_json_object(rec.reply)
    if obj is None:
        return [Finding(Code.REPLY_NOT_JSON, Severity.ERROR, rec.where, "messages[-1].content",
                        "the reply is not one JSON object, but the task is json",
                        "write the reply as a single JSON object (no code fence, no prose around it)")]
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)) if validator else []
    if errors:
        path = ".".join(map(str, errors[0].absolute_path)) or "(root)"
        return [Finding(Code.REPLY_SCHEMA, Severity.ERROR, rec.where, f"messages[-1].content {path}",
                        f"reply does not match the task's JSON Schema: {errors[0].message}",
                        "fix the reply, or the schema if the reply is right")]
    return []


def shape_findings(records: list[Record], json_task: bool = False) -> list:
    """Replies that drift in shape (a JSON minority among prose or the reverse) and length outliers."""
    from tunesmith.data.checks import Code, Finding, Severity

    with_reply = [(r, r.reply) for r in records if r.reply is not None and r.reply.strip()]
    out = []
    parsed = [(r, _as_json_object(reply)) for r, reply in with_reply]
    n_json = sum(obj is not None for _, obj in parsed)
    share = n_json / len(parsed) if parsed else 0.0
    if not json_task and 0 < n_json < len(parsed) and (share >= 0.8 or share <= 0.2):
        minority_is_json = share <= 0.2
        for r, obj in parsed:
            if (obj is not None) == minority_is_json:
                shape, usual = ("JSON", "prose") if minority_is_json else ("prose", "JSON")
                out.append(Finding(Code.STYLE_DRIFT, Severity.WARNING, r.where, "messages[-1].content",
                                   f"a {shape} reply where {max(share, 1 - share):.0%} of replies are {usual}",
                                   "make every reply the same shape, or set task.type to say which"))
    lengths = [len(reply) for _, reply in with_reply]
    if len(lengths) >= 20:
        q1, _, q3 = statistics.quantiles(lengths, n=4)
        high, low = q3 + 3 * (q3 - q1), max(0.0, q1 - 3 * (q3 - q1))
        for (r, _), n in zip(with_reply, lengths):
            if n > high or n < low:
                out.append(Finding(Code.LENGTH_OUTLIER, Severity.INFO, r.where, "messages[-1].content",
                                   f"reply length {n} chars is far outside the usual {q1:.0f}-{q3:.0f}",
                                   "check it is the behaviour you want; outliers pull style toward them"))
    return out
