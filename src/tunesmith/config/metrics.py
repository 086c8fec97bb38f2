"""The metric names a config may name (`eval.gate.metric`, `eval.gates[i].metric`, `train.select_metric`), checked
when the config loads: a typo fails at once, with a "did you mean", not after a training run that selected on a
metric never measured.

    metric_problems(cfg)                    # [] or [(("eval", "gate", "metric"), message, hint), ...]
    metric_problems(cfg, measured=True)     # also: the suite a gate names is evaluated (the general probe is on)

The names are those `tunesmith.eval.evaluate` measures (kept here, in the config's layer, and tested against it):
a gate compares the per-case scores of base and tuned, `train.select_metric` any metric of the validation split.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from tunesmith.config.eval import wants_constraint
from tunesmith.config.problems import did_you_mean, dotted
from tunesmith.errors import Problem, TunesmithError

# per-case pass/fail scores, as `tunesmith.eval.evaluate.metric_name` names their means: what a gate can compare
CASE_METRICS = (
    "task_accuracy",
    "format_validity",
    "behavior_accuracy",
    "hallucination_rate",
    "token_limit_rate",
    "prompt_strict_accuracy",
    "prompt_loose_accuracy",
)
# measured over a whole suite (`aggregate`): `train.select_metric` may name them, a gate cannot
SUITE_METRICS = (
    "instruction_strict_accuracy",
    "instruction_loose_accuracy",
    "latency_s",
    "latency_p50_s",
    "latency_p95_s",
    "new_tokens",
    "tokens_per_s",
    "errors",
    "cost_usd",
    "cost_per_success_usd",
    *(f"{b}_{m}" for b in ("refuse", "escalate", "clarify", "abstain") for m in ("precision", "recall")),
)
SLICE_METRICS = ("task_accuracy", "prompt_strict_accuracy", "behavior_accuracy", "format_validity")  # `suite#tag`
GENERAL_METRICS = ("prompt_strict_accuracy", "prompt_loose_accuracy", "token_limit_rate")  # the general probe's
HELDOUT = ("heldout", "heldout_free")

Found = tuple[tuple, str, str]  # (config path, message, hint)


def metric_problems(cfg: Any, measured: bool = False) -> list[Found]:
    """What is wrong with the metrics the gates and `train.select_metric` name (nothing: []). With `measured`, also
    that each suite a gate names is evaluated at all (`general` needs `eval.general_probe`, `heldout_free` a
    constrained decoding)."""
    gates = [(("eval", "gate"), cfg.eval.gate), *((("eval", "gates", i), g) for i, g in enumerate(cfg.eval.gates))]
    out = [((*w, "metric"), *p) for w, g in gates if (p := _gate_problem(cfg, g.metric, measured))]
    chosen = cfg.train.select_metric
    if chosen not in ("auto", "loss"):
        problem = _select_problem(cfg, chosen)
        if problem:
            out.append((("train", "select_metric"), *problem))
    return out


def check_metrics(cfg: Any, where=None, measured: bool = False) -> None:
    """Raise `metric_problems` as one "Bad config" error, each problem named by `where(config path)` (the dotted
    path by default: a loaded config's origin, file or `--set`, is the loader's to tell)."""
    name = where or dotted
    problems = [Problem(name(path), message, hint) for path, message, hint in metric_problems(cfg, measured)]
    if problems:
        raise TunesmithError(f"Bad config: {len(problems)} problem(s)", problems)


def suite_names(cfg: Any) -> list[str]:
    """The suites an evaluation of this project reports: the held-out split (and its free decoding), the general
    probe, and `eval.suites` (named by their file's stem)."""
    extra = [PurePath(s if isinstance(s, str) else s.path).stem for s in cfg.eval.suites]
    return list(dict.fromkeys([*HELDOUT, "general", *extra]))


def _gate_problem(cfg: Any, metric: str, measured: bool) -> tuple[str, str] | None:
    suite, _, name = metric.rpartition(".")
    suite, _, tag = (suite or "heldout").partition("#")
    suites = suite_names(cfg)
    if suite not in suites:
        return f"{metric!r}: no suite {suite!r} is evaluated", _did_you_mean(suite, suites, "suites")
    if measured and suite == "general" and not cfg.eval.general_probe:
        return f"{metric!r}: the general probe is off", "set eval.general_probe: true, or gate on another suite"
    if measured and suite == "heldout_free" and not wants_constraint(cfg):
        return (
            f"{metric!r}: heldout_free is measured only with constrained decoding",
            "gate on heldout, or set eval.decoding: constrained",
        )
    known = _case_metrics(cfg, suite)
    if tag:
        known = [m for m in known if m in SLICE_METRICS]
    if name in known or (name not in SUITE_METRICS and _open_name(cfg, suite, name)):
        return None
    within = "" if name == metric else f" (in {metric!r})"
    if name in SUITE_METRICS:
        return f"{name!r} is measured over a whole suite; a gate compares per-case scores{within}", (
            "gate on " + ", ".join(known[:4])
        )
    where = f"{suite} slices" if tag else suite
    return f"{name!r} is not a metric of {where}{within}", _did_you_mean(name, known, "metrics")


def _select_problem(cfg: Any, metric: str) -> tuple[str, str] | None:
    if "." in metric or "#" in metric:
        return f"{metric!r}: a metric of the validation split, without a suite", "e.g. task_accuracy (or auto, loss)"
    known = [*_case_metrics(cfg, "heldout"), *SUITE_METRICS, "loss"]
    if metric in known or _open_name(cfg, "heldout", metric):
        return None
    return f"{metric!r} is not a metric of the validation split", _did_you_mean(metric, known, "metrics")


def _case_metrics(cfg: Any, suite: str) -> list[str]:
    """The per-case metrics of `suite` whose names the config tells: the fixed ones, a json task's match fields
    (`<field>_accuracy`), the scorers' pass rates (`<name>_pass_rate`)."""
    if suite == "general":
        return list(GENERAL_METRICS)
    fields = [f"{f}_accuracy" for f in cfg.task.match_fields] if cfg.task.type == "json" else []
    scorers = list(cfg.task.scorers or []) + [{"type": "tool_call"}]
    for entry in cfg.eval.suites:
        if not isinstance(entry, str) and PurePath(entry.path).stem == suite:
            scorers += entry.scorers or []
    passes = [f"{s.get('name') or s.get('type')}_pass_rate" for s in scorers if isinstance(s, dict)]
    return list(dict.fromkeys([*CASE_METRICS, *fields, *passes]))


def _open_name(cfg: Any, suite: str, name: str) -> bool:
    """Names the config cannot tell: every field of the expected reply of a json task without match fields, and
    the scorers a suite file's own cases name."""
    if name.endswith("_accuracy") and cfg.task.type == "json" and not cfg.task.match_fields:
        return name not in SUITE_METRICS and len(name) > len("_accuracy")
    return name.endswith("_pass_rate") and len(name) > len("_pass_rate") and suite not in (*HELDOUT, "general")


def _did_you_mean(word: str, known: list[str], what: str) -> str:
    listed = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
    return did_you_mean(word, known) + f"{what}: {listed}"
