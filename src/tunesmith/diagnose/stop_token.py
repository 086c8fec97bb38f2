"""Stop token not learned: tuned outputs that run to the token limit or loop, and the likely root cause.

Chat-template / EOS / masking mismatches are the most common complaint about fine-tuning tools (design §7). The
causes looked at, in order: the label mask (does the end-of-turn token carry loss?), the template (does an
assistant turn end with the tokenizer's EOS, the token generation stops on?), the data check (replies without an
end-of-turn token, truncated records), and the generation limit itself (shorter than a typical training reply).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from tunesmith.diagnose.evidence import ERROR, INFO, MAX_EXAMPLES, OK, WARNING, answered, finding, quote, rate

STOP_RATE_WARN = 0.10  # share of tuned outputs running to the limit or looping that is flagged (ours)
STOP_RATE_ERROR = 0.50  # ... and an error from this share on
LOOP_MIN_TOKENS = 12  # shorter outputs are not judged as loops
LOOP_NGRAM = 4
LOOP_MAX_DISTINCT = 0.5  # at most this share of distinct 4-grams: the output repeats itself
LOOP_MIN_REPEATS = 3  # or one line repeated this often (and at least half the lines)
DATA_CODES = ("no_end_of_turn", "empty_loss_mask", "truncated", "template_error")

_TOKEN = re.compile(r"\w+|[^\w\s]")


def loops(output: str) -> bool:
    """Whether an output repeats itself: few distinct 4-grams of tokens, or one line over and over."""
    toks = _TOKEN.findall(output)
    if len(toks) >= LOOP_MIN_TOKENS:
        grams = [tuple(toks[i : i + LOOP_NGRAM]) for i in range(len(toks) - LOOP_NGRAM + 1)]
        if len(set(grams)) / len(grams) <= LOOP_MAX_DISTINCT:
            return True
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    if len(lines) >= LOOP_MIN_REPEATS:
        count = Counter(lines).most_common(1)[0][1]
        return count >= LOOP_MIN_REPEATS and count * 2 >= len(lines)
    return False


def runaway(row: dict) -> str | None:
    """`limit` when the output ran to the token limit, `loop` when it repeats itself, else None."""
    if loops(row.get("output") or ""):
        return "loop"
    return "limit" if (row.get("scores") or {}).get("hit_token_limit") else None


def _task_rows(rows: list[dict]) -> list[dict]:
    """The cases whose replies training taught (not the general probe, whose long answers may hit its limit)."""
    task = [r for r in answered(rows) if r.get("kind") != "general"]
    return task or answered(rows)


def check_stop_token(
    base_rows: list[dict],
    tuned_rows: list[dict],
    preview: list[dict],
    data_counts: dict[str, int] | None = None,
    reply_tokens: float | None = None,
    max_new_tokens: int | None = None,
) -> dict[str, Any]:
    """Tuned outputs that run to the limit or loop (base alongside), with the root causes found in the masking
    preview, the data check's counts (`data_counts`: code -> findings), and the mean training reply length in
    tokens against the generation limit."""
    tuned, base = _task_rows(tuned_rows), _task_rows(base_rows)
    kinds = [(r, runaway(r)) for r in tuned]
    bad = [(r, k) for r, k in kinds if k]
    base_bad = sum(1 for r in base if runaway(r))
    tuned_rate, base_rate = rate(len(bad), len(tuned)), rate(base_bad, len(base))
    evidence: dict[str, Any] = {
        "tuned_cases": len(tuned),
        "tuned_runaway": len(bad),
        "tuned_rate": tuned_rate,
        "hit_limit": sum(k == "limit" for _, k in bad),
        "looping": sum(k == "loop" for _, k in bad),
        "base_cases": len(base),
        "base_runaway": base_bad,
        "base_rate": base_rate,
        "examples": [
            {"suite": r["suite"], "id": r["id"], "why": k, "output": quote(r["output"])} for r, k in bad[:MAX_EXAMPLES]
        ],
    }
    causes, fixes = root_causes(preview, data_counts or {}, reply_tokens, max_new_tokens)
    evidence["root_causes"] = causes
    if reply_tokens is not None:
        evidence["mean_training_reply_tokens"] = reply_tokens
    if max_new_tokens is not None:
        evidence["max_new_tokens"] = max_new_tokens
    if not tuned:
        return finding("stop_token", INFO, "Stop token not measured (no tuned outputs)", evidence)
    if tuned_rate < STOP_RATE_WARN:
        return finding("stop_token", OK, "Tuned outputs stop on their own", evidence)
    only_limit = [c["code"] for c in causes] == ["limit"] and not evidence["looping"]
    severity = ERROR if tuned_rate >= STOP_RATE_ERROR and not only_limit else WARNING
    title = (
        f"{len(bad)} of {len(tuned)} tuned outputs run to the token limit or loop ({tuned_rate:.0%}; "
        f"base {base_rate or 0:.0%})"
    )
    if only_limit:
        title += ": the limit is shorter than a typical training reply"
    remedy = " ".join(fixes) or (
        "Check the stop token: the label mask must train each assistant turn's end-of-turn "
        "token (`tunesmith train --check` verifies the mask), the chat template must end "
        "a turn with the tokenizer's EOS, and the exported generation config must stop on "
        "it; eval.no_repeat_ngram_size breaks the loops small models fall into."
    )
    return finding("stop_token", severity, title, evidence, remedy)


def root_causes(
    preview: list[dict], data_counts: dict[str, int], reply_tokens: float | None, max_new_tokens: int | None
) -> tuple[list[dict], list[str]]:
    """([{code, detail}], [remedy sentence]) for what the masking preview, the data check and the lengths show."""
    found: list[tuple[str, str, str, dict]] = []  # (code, detail, remedy, more of the cause)
    shown = [p for p in preview if not p.get("error")]
    unmasked = [p for p in shown if p.get("eos_in_loss") is False]
    if unmasked:
        eos = unmasked[0].get("end_of_turn")
        detail = f"the end-of-turn token {eos!r} carries no loss in {len(unmasked)} of {len(shown)} previewed "
        remedy = (
            "Mask: train each assistant turn together with its end-of-turn token (tunesmith's own mask does; a "
            "custom collator or template may not)."
        )
        found.append(("mask", detail + "training examples", remedy, {"where": [p["where"] for p in unmasked]}))
    unended = [p for p in shown if p.get("eos_ends_turn") is False]
    if unended:
        eos = unended[0].get("end_of_turn")
        detail = f"the chat template ends an assistant turn without the tokenizer's EOS {eos!r}, the token "
        remedy = (
            "Template: use a tokenizer whose eos_token is the template's end-of-turn token (ChatML: <|im_end|>), in "
            "training and in the exported generation config."
        )
        found.append(("template", detail + "generation stops on", remedy, {}))
    flagged = {c: n for c, n in data_counts.items() if c in DATA_CODES and n}
    if flagged:
        detail = "the data check found " + ", ".join(f"{n} {c}" for c, n in sorted(flagged.items()))
        remedy = (
            "Data: fix or drop those records (the check run's report.json lists them), or raise data.max_seq_len so "
            "replies and their end-of-turn token are not cut."
        )
        found.append(("data", detail, remedy, {}))
    if reply_tokens is not None and max_new_tokens is not None and reply_tokens >= max_new_tokens:
        detail = f"a training reply averages {reply_tokens:.0f} tokens; the generation limit is {max_new_tokens}"
        remedy = f"Limit: the limit cuts replies before their end; raise eval.max_new_tokens above {reply_tokens:.0f}."
        found.append(("limit", detail, remedy, {}))
    return [{"code": c, "detail": d, **more} for c, d, _, more in found], [r for _, _, r, _ in found]
