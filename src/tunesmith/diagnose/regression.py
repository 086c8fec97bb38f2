"""What fine-tuning broke: general instruction following (forgetting) and hedging (overconfidence).

Both compare the tuned model with the base on the same cases (paired), as the guide asks: "If your fine-tuned model
gets better at your task but starts hallucinating more on everything else, you have a regression problem."
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tunesmith.data.coverage import reply_behavior
from tunesmith.diagnose.evidence import (
    ERROR,
    INFO,
    MAX_EXAMPLES,
    OK,
    WARNING,
    answered,
    finding,
    paired,
    quote,
    rate,
)
from tunesmith.eval.stats import paired_change

FORGETTING_DROP = 0.05  # a drop of the general probe's pass rate by this much (absolute) is flagged (ours)
OVERCONFIDENCE_DROP = 0.10  # a drop of the hedging rate on out-of-domain/ambiguous cases by this much (ours)
STYLE_OPENING_SHARE = 0.5  # training replies sharing one opening this often make it "the fine-tuned style"
OPENING_WORDS = 3
HEDGES = ("clarify", "abstain", "escalate", "refuse")  # a reply that does not just answer
CONFIDENCE = 0.95  # eval.confidence's default: the diagnosis is given the project's own
BOOTSTRAP_SAMPLES = 2000  # eval.bootstrap_samples' default

FORGETTING_REMEDY = (
    "Include varied instruction-following examples in the training mix (train.general_data with "
    "train.general_share: `[builtin:self]` mixes in the base model's own replies to built-in "
    "everyday prompts, and `tunesmith data distill` writes its replies to your own general prompts: "
    "self-distillation, which learns the task without losing old skills; with train.general_kl: 3.0 they "
    "train towards the base's own next-token distribution, not only its sampled replies), reduce training "
    "strength (lower train.lr, fewer epochs, a lower train.lora.r), or use LoRA with narrower "
    "target modules (e.g. train.lora.target_modules: [q_proj, v_proj])."
)
OVERCONFIDENCE_REMEDY = (
    'Include training examples where the correct reply is "I need more information", '
    '"I cannot verify that" or "escalate to a human" (`tunesmith data synth` can add refuse '
    "and escalate variants; review them). A fine-tuned model that answers with confidence is "
    "worse than a base model that hedges correctly."
)


def _paired_change(
    pairs: list[tuple[dict, dict]], holds, confidence: float, samples: int
) -> tuple[list[float], list[float], dict[str, Any], list]:
    """(base, tuned, change, lost): whether `holds` for each paired base and tuned row; the change's delta, bootstrap
    interval at `confidence` over `samples` resamples, McNemar's p and whether it is a significant drop
    (`paired_direction`, the comparison's own rule); and the pairs where it held for the base only."""
    base = [float(bool(holds(b))) for b, _ in pairs]
    tuned = [float(bool(holds(t))) for _, t in pairs]
    delta, low, high, direction, p = paired_change(base, tuned, samples, confidence)
    change = {
        "delta": delta,
        "ci_low": low,
        "ci_high": high,
        "confidence": confidence,
        "p_mcnemar": p,
        "significant": direction < 0,
    }
    return base, tuned, change, [(b, t) for b, t in pairs if holds(b) and not holds(t)]


def _general(row: dict) -> bool:
    return row.get("kind") == "general"


def _passed(row: dict) -> bool | None:
    """A general case's pass/fail: IFEval's prompt-level strict accuracy, else task correctness."""
    scores = row.get("scores") or {}
    for key in ("prompt_strict", "task_correct"):
        if scores.get(key) is not None:
            return bool(scores[key])
    return None


def _opening(text: str) -> str:
    return " ".join(text.split()[:OPENING_WORDS])


def training_style(train_replies: list[str]) -> str | None:
    """The opening (first words) most training replies share, when at least STYLE_OPENING_SHARE of them do."""
    openings = Counter(_opening(r) for r in train_replies if r.strip())
    if not openings:
        return None
    top, count = openings.most_common(1)[0]
    return top if count / sum(openings.values()) >= STYLE_OPENING_SHARE else None


def check_forgetting(
    base_rows: list[dict],
    tuned_rows: list[dict],
    train_replies: list[str],
    train_settings: dict[str, Any] | None = None,
    confidence: float = CONFIDENCE,
    samples: int = BOOTSTRAP_SAMPLES,
) -> dict[str, Any]:
    """The general instruction-following cases (kind `general`, e.g. the built-in probe): pass rate tuned vs base
    with a paired bootstrap interval (at `confidence`, over `samples` resamples: eval.confidence and
    eval.bootstrap_samples) and McNemar's p; the cases lost, and how many tuned replies open like the training
    replies (the fine-tuned style leaking into general prompts)."""
    pairs = [
        (b, t) for b, t in paired(base_rows, tuned_rows, _general) if _passed(b) is not None and _passed(t) is not None
    ]
    if not pairs:
        return _forgetting_not_measured(_asked(base_rows, tuned_rows, _general))
    settings = train_settings or {}
    evidence = _forgetting_evidence(pairs, train_replies, settings, confidence, samples)
    delta = evidence["delta"]
    if -delta >= FORGETTING_DROP:
        significant = evidence["significant"]
        return finding(
            "forgetting",
            ERROR if significant else WARNING,
            f"General instruction following dropped {evidence['base_pass_rate']:.0%} -> "
            f"{evidence['tuned_pass_rate']:.0%} ({delta:+.3f}"
            + (", significant)" if significant else ", not significant)"),
            evidence,
            _forgetting_remedy(settings),
        )
    return finding(
        "forgetting", OK, f"General instruction following held ({delta:+.3f} over {len(pairs)} cases)", evidence
    )


def _asked(base_rows: list[dict], tuned_rows: list[dict], kind) -> dict[str, int]:
    """How many of each evaluation's rows are of `kind` (a row test): asked, answered or not."""
    return {name: sum(map(kind, rows)) for name, rows in (("base", base_rows), ("tuned", tuned_rows))}


def _forgetting_not_measured(general: dict[str, int]) -> dict[str, Any]:
    """No general case scored in both evaluations: none was asked (a warning: turn the probe on), or every one
    failed or went unscored in one of them (not measured; the failed generations are their own finding)."""
    if not any(general.values()):
        return finding(
            "forgetting",
            WARNING,
            "Forgetting not measured: no general instruction-following cases",
            {"general_cases": general},
            "Turn on eval.general_probe (the built-in 150-prompt instruction-following probe) or add a "
            "suite of kind `general`, so a regression on general instructions shows.",
        )
    return finding(
        "forgetting",
        INFO,
        "Forgetting not measured: no general instruction-following case has a scored answer from both models "
        f"(base {general['base']}, tuned {general['tuned']} cases)",
        {"general_cases": general},
        "See why the general cases went unanswered or unscored (the evaluations' results.jsonl record each "
        "case's error), fix it and run again.",
    )


def _forgetting_evidence(
    pairs: list[tuple[dict, dict]], train_replies: list[str], settings: dict[str, Any], confidence: float, samples: int
) -> dict[str, Any]:
    """The general cases' pass rates, their paired change with its interval and McNemar's p, the cases lost and
    gained, the training style in tuned and base replies, and the training settings that bear on forgetting."""
    base, tuned, change, lost = _paired_change(pairs, _passed, confidence, samples)
    evidence: dict[str, Any] = {
        "cases": len(pairs),
        "base_pass_rate": sum(base) / len(base),
        "tuned_pass_rate": sum(tuned) / len(tuned),
        **change,
        "lost": len(lost),
        "gained": sum(1 for b, t in pairs if _passed(t) and not _passed(b)),
        "examples": [_lost_example(b, t) for b, t in lost[:MAX_EXAMPLES]],
    }
    style = training_style(train_replies)
    if style:
        evidence["training_opening"] = style
        evidence["tuned_in_training_style"] = sum(_opening(t["output"]) == style for _, t in pairs)
        evidence["base_in_training_style"] = sum(_opening(b["output"]) == style for b, _ in pairs)
    evidence.update(
        {
            k: settings[k]
            for k in ("general_share", "general_kl", "target_modules", "lr", "epochs", "lora_r")
            if k in settings
        }
    )
    return evidence


def _lost_example(b: dict, t: dict, **more: Any) -> dict[str, Any]:
    """A case the base got right and the tuned model lost: where it is, what was asked, both outputs quoted."""
    return {
        "suite": t["suite"],
        "id": t["id"],
        **more,
        "prompt": quote(t.get("prompt"), 100),
        "base_output": quote(b["output"]),
        "tuned_output": quote(t["output"]),
    }


def _forgetting_remedy(settings: dict[str, Any]) -> str:
    notes = []
    if not settings.get("general_share"):
        notes.append("no general data is mixed in (train.general_share is 0)")
    elif not settings.get("general_kl"):
        notes.append("the general rows train on sampled replies only (train.general_kl is 0)")
    if settings.get("target_modules") == "all-linear":
        notes.append("every linear layer carries an adapter (train.lora.target_modules: all-linear)")
    return FORGETTING_REMEDY + (" Here: " + "; ".join(notes) + "." if notes else "")


def _hedge_case(row: dict) -> bool:
    """Out-of-domain and ambiguous cases: those where hedging (asking, abstaining, escalating) is right."""
    return (
        row.get("kind") == "out_of_domain"
        or row.get("behavior") in ("clarify", "abstain")
        or "ambiguous" in (row.get("tags") or [])
    )


def _hedges(row: dict) -> bool:
    return reply_behavior(row["output"] or "") in HEDGES


def check_overconfidence(
    base_rows: list[dict],
    tuned_rows: list[dict],
    train_replies: list[str],
    confidence: float = CONFIDENCE,
    samples: int = BOOTSTRAP_SAMPLES,
) -> dict[str, Any]:
    """Hedging on out-of-domain and ambiguous cases, tuned vs base (paired, its interval at `confidence` over
    `samples` resamples); clarifying questions over all cases; how many training replies hedge at all."""
    pushback = Counter(reply_behavior(r) for r in train_replies)
    clarify = {
        name: sum(reply_behavior(r["output"]) == "clarify" for r in answered(rows))
        for name, rows in (("base", base_rows), ("tuned", tuned_rows))
    }
    evidence: dict[str, Any] = {
        "training_replies": len(train_replies),
        "training_hedges": {b: pushback[b] for b in HEDGES if pushback[b]},
        "clarifying_questions": clarify,
    }
    pairs = paired(base_rows, tuned_rows, _hedge_case)
    if not pairs:
        return _overconfidence_not_measured(_asked(base_rows, tuned_rows, _hedge_case), evidence)
    evidence.update(_hedging_change(pairs, confidence, samples))
    delta = evidence["delta"]
    if -delta >= OVERCONFIDENCE_DROP:
        hedging = sum(evidence["training_hedges"].values())
        return finding(
            "overconfidence",
            ERROR if evidence["significant"] else WARNING,
            f"Hedges less on out-of-domain and ambiguous cases: {evidence['base_hedge_rate']:.0%} -> "
            f"{evidence['tuned_hedge_rate']:.0%} of {len(pairs)}",
            evidence,
            OVERCONFIDENCE_REMEDY + f" Here: {hedging} of {len(train_replies)} training replies ask, "
            "abstain, escalate or refuse.",
        )
    return finding(
        "overconfidence", OK, f"Hedging held on {len(pairs)} out-of-domain/ambiguous cases ({delta:+.3f})", evidence
    )


def _overconfidence_not_measured(asked: dict[str, int], evidence: dict[str, Any]) -> dict[str, Any]:
    """No out-of-domain or ambiguous case answered by both models: none was asked (a warning: add some), or every
    one failed in one of the evaluations (not measured; the failed generations are their own finding)."""
    evidence["cases"] = 0
    if not any(asked.values()):
        return finding(
            "overconfidence",
            WARNING,
            "Overconfidence not measured: no out-of-domain or ambiguous cases",
            evidence,
            "Add an eval suite with out-of-domain cases (kind: out_of_domain) and ambiguous ones "
            "(behavior: clarify or abstain), so hedging is measured against the base.",
        )
    evidence["hedge_cases"] = asked
    return finding(
        "overconfidence",
        INFO,
        "Overconfidence not measured: no out-of-domain or ambiguous case was answered by both models "
        f"(base {asked['base']}, tuned {asked['tuned']} cases)",
        evidence,
    )


def _hedging_change(pairs: list[tuple[dict, dict]], confidence: float, samples: int) -> dict[str, Any]:
    """The hedge rates of base and tuned on the paired cases, the change with its interval and significance, the
    cases that stopped hedging."""
    base, tuned, change, lost = _paired_change(pairs, _hedges, confidence, samples)
    return {
        "cases": len(pairs),
        "base_hedge_rate": rate(int(sum(base)), len(base)),
        "tuned_hedge_rate": rate(int(sum(tuned)), len(tuned)),
        **change,
        "examples": [
            _lost_example(b, t, kind=t.get("kind"), expected_behavior=t.get("behavior")) for b, t in lost[:MAX_EXAMPLES]
        ],
    }
