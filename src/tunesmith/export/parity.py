"""Does the exported model behave like the checkpoint? The held-out suite, re-run on the artifact, compared.

    report = parity("q8_0", checkpoint_rows, export_rows, cfg, template_same=True, eos_same=True)

Agreement is the share of held-out cases whose greedy reply is identical to the checkpoint's, plus every metric's
paired delta with its interval (`tunesmith.eval.compare`). Both sides run in the same precision (fp32 by default:
on the built-in model, bf16 evaluation alone changes ~40% of greedy replies, which would hide what the export did).
Targets (`export.parity_*`): unquantized exports (`merged`, `f16`) give the identical reply on at least 95% of
cases; quantized ones (`q8_0`, `q4_0`) keep the suite's accuracy (task accuracy, else its primary accuracy metric:
`ACCURACY_METRICS`) within 2 points, and a q8_0 file gives the identical reply on at least half the cases
(`QUANTIZED_MIN_IDENTICAL`). A check that cannot tell is not measured, and not passed: no case both sides answered,
no accuracy metric, or a checkpoint accuracy too low for the allowed drop to show (a chat task scored 0 on both
sides passes any "within 2 points"). A miss is a finding with its likely cause: the chat template (the artifact
renders the prompt differently), the stop token (it stops elsewhere, or runs to the token limit more often), the
decoding (a runtime that cannot decode as the eval did), or the numbers (quantization or half precision moved
near-tied greedy choices). GGUF files are run by transformers (`gguf_file=`) and, when llama-cpp-python is installed, by
llama.cpp itself: its tokenizer and the template stored in the file, as Ollama runs them.
"""

from __future__ import annotations

from typing import Any

from tunesmith.config import Config

UNQUANTIZED = ("merged", "f16")
# the accuracy a quantized export must keep, the first the suite reports (task accuracy, then the primary metric of
# instruction-following and behaviour suites, then any per-field accuracy)
ACCURACY_METRICS = ("task_accuracy", "prompt_strict_accuracy", "behavior_accuracy", "prompt_loose_accuracy")
# Identical greedy replies a quantized file must give besides keeping accuracy. The demo's q8_0 file gave 74.2% (91
# of 93 for f16, 97.8%; benchmarks in README.md): a quarter of the replies reworded, mostly a free-text field. A
# floor of 50% is twice that change, so an 8-bit file that rewrites most replies fails even where accuracy cannot
# tell. No q4_0 share has been measured, so it has no floor.
QUANTIZED_MIN_IDENTICAL = {"q8_0": 0.5}


def parity(
    kind: str,
    checkpoint_rows: list[dict],
    export_rows: list[dict],
    cfg: Config,
    template_same: bool = True,
    eos_same: bool = True,
    runtime: str = "transformers",
    decoding_same: bool = True,
) -> dict[str, Any]:
    """The parity report of one exported artifact (`kind`: merged, f16, q8_0, q4_0) run by `runtime`
    (transformers, or llama.cpp for a GGUF; `decoding_same` False when the runtime cannot decode as the eval did,
    e.g. llama.cpp has no no_repeat_ngram_size)."""
    from tunesmith.eval.compare import compare
    from tunesmith.eval.evaluate import SLICE

    n, identical = _agreement(checkpoint_rows, export_rows)
    metrics = [m for m in compare(checkpoint_rows, export_rows, cfg)["metrics"] if SLICE not in m["suite"]]
    accuracy = accuracy_metric(metrics)
    limit = {m["metric"]: m for m in metrics}.get("token_limit_rate")
    max_drop = cfg.export.parity_max_drop
    floor = QUANTIZED_MIN_IDENTICAL.get(kind)
    unmeasured = "no held-out case was answered by both the checkpoint and the export" if n == 0 else None
    if kind in UNQUANTIZED:
        target = f"identical greedy replies >= {cfg.export.parity_min_identical:.0%}"
        passed = identical >= cfg.export.parity_min_identical
    else:
        name = accuracy["metric"] if accuracy else "task accuracy"
        target = f"{name} within {max_drop * 100:.0f} points" + (
            f" and identical greedy replies >= {floor:.0%}" if floor is not None else ""
        )
        if accuracy is None:
            unmeasured = unmeasured or "the suite reports no accuracy metric to hold a quantized export to"
        elif accuracy["base"] <= max_drop:
            unmeasured = unmeasured or (
                f"the checkpoint's {accuracy['metric']} is {accuracy['base']:.3f}: no drop beyond "
                f"{max_drop * 100:.0f} points could show"
            )
        passed = accuracy is not None and accuracy["delta"] >= -max_drop and (floor is None or identical >= floor)
    cause = None
    if unmeasured:
        passed = False
        cause = f"not measured: {unmeasured}"
    elif not passed:
        stops_elsewhere = not eos_same or (limit is not None and limit["delta"] > 0.05)
        cause = likely_cause(kind, runtime, decoding_same, template_same, stops_elsewhere)
    return {
        "kind": kind,
        "runtime": runtime,
        "n": n,
        "identical": identical,
        "target": target,
        "measured": unmeasured is None,
        "passed": passed,
        "cause": cause,
        "accuracy_metric": accuracy["metric"] if accuracy else None,
        "task_accuracy": None
        if accuracy is None
        else {k: accuracy[k] for k in ("base", "tuned", "delta", "ci_low", "ci_high")},
        "metrics": metrics,
    }


def accuracy_metric(metrics: list[dict]) -> dict | None:
    """The metric row a quantized export's accuracy is judged on: the first of `ACCURACY_METRICS` the held-out
    suite reports, else its first per-field accuracy; None when it reports no accuracy."""
    by_name = {m["metric"]: m for m in metrics if m["suite"] == "heldout"} or {m["metric"]: m for m in metrics}
    for name in ACCURACY_METRICS:
        if name in by_name:
            return by_name[name]
    return next((m for name, m in by_name.items() if name.endswith("_accuracy")), None)


def _agreement(checkpoint_rows: list[dict], export_rows: list[dict]) -> tuple[int, float]:
    """(cases both sides answered, the share of them whose reply is identical)."""
    theirs = {(r["suite"], r["id"]): r for r in export_rows}
    pairs = [(r, theirs[(r["suite"], r["id"])]) for r in checkpoint_rows if (r["suite"], r["id"]) in theirs]
    n = len(pairs)
    identical = sum(a["output"] is not None and a["output"] == b["output"] for a, b in pairs) / n if n else 0.0
    return n, identical


def likely_cause(kind: str, runtime: str, decoding_same: bool, template_same: bool, stops_elsewhere: bool) -> str:
    """Why a parity target was missed, the first that applies: the decoding, the chat template, the stop token,
    else the numbers (quantization or half precision)."""
    if not decoding_same:
        return (
            f"decoding: {runtime} cannot decode as the evaluation did (eval.no_repeat_ngram_size has no "
            "equivalent there); compare with eval.no_repeat_ngram_size unset to isolate the export"
        )
    if not template_same:
        return (
            "chat template: the exported model renders the prompt differently from the checkpoint; "
            "check the template stored in the artifact"
        )
    if stops_elsewhere:
        return (
            "stop token: the exported model stops elsewhere (or runs to the token limit more often); "
            "check its EOS / end-of-turn token"
        )
    return (
        "numbers: "
        + ("quantization" if kind not in UNQUANTIZED else "half precision")
        + " moved near-tied greedy choices; try a wider type (q8_0, f16)"
    )
