"""Run suites through a backend, score every case, and aggregate metrics per suite.

    metrics = evaluate(backend, {"heldout": cases, "redteam": red}, cfg, out_dir)

Writes `results.jsonl` (one line per case: suite, id, output, scores, latency) and returns
`{suite: {metric: value}}`. Metric names: task_accuracy, format_validity, <field>_accuracy, behavior_accuracy,
hallucination_rate (out-of-domain cases), <behavior>_precision and _recall, token_limit_rate, latency_s (mean),
latency_p50_s, latency_p95_s, new_tokens, tokens_per_s, and cost_per_success_usd when an hourly price is
configured. Latency per case is its batch's wall time divided by the batch size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunesmith.config import Config
from tunesmith.data.io import atomic_write_jsonl
from tunesmith.eval.scorers import score_case
from tunesmith.eval.suite import EvalCase


def metric_name(score_key: str) -> str:
    """Per-case score key -> aggregate metric name."""
    if score_key.startswith("field:"):
        return score_key[6:] + "_accuracy"
    return {"task_correct": "task_accuracy", "format_valid": "format_validity", "hit_token_limit": "token_limit_rate",
            "behavior_correct": "behavior_accuracy", "hallucinated": "hallucination_rate"}.get(score_key, score_key)


def load_schema(cfg: Config, project: Path) -> dict | None:
    """The task's JSON Schema (inline or from a file relative to the project), checked to be a valid schema."""
    from tunesmith.errors import fail
    from tunesmith.schemas import schema_problem

    schema = cfg.task.json_schema
    where = "task.json_schema"
    if isinstance(schema, str):
        path = project / schema
        where = str(path)
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except OSError:
            raise fail("JSON Schema not found", where, "cannot read the file",
                       "task.json_schema is relative to the project directory") from None
        except json.JSONDecodeError as exc:
            raise fail("JSON Schema is not JSON", f"{where}:{exc.lineno}", exc.msg, "fix the file") from None
    problem = schema_problem(schema) if schema is not None else None
    if problem:
        raise fail("Invalid JSON Schema", where, problem, "see json-schema.org for the syntax")
    return schema


def aggregate(rows: list[dict[str, Any]], hourly_usd: float | None = None) -> dict[str, float | int | None]:
    """Means of every pass/fail score over the cases where it applies, plus latency and cost."""
    out: dict[str, float | int | None] = {"cases": len(rows)}
    keys = sorted({k for r in rows for k in r["scores"]})
    for key in keys:
        vals = [r["scores"][key] for r in rows if r["scores"].get(key) is not None]
        out[metric_name(key)] = sum(vals) / len(vals) if vals else None
    out.update(behavior_precision_recall(rows))
    answered = [r for r in rows if not r.get("error")]  # a case that got no output has no latency either
    latencies = sorted(r["latency_s"] for r in answered)
    out["latency_s"] = sum(latencies) / len(latencies) if latencies else None
    out["latency_p50_s"] = _percentile(latencies, 50)
    out["latency_p95_s"] = _percentile(latencies, 95)
    out["new_tokens"] = sum(r["new_tokens"] for r in answered) / len(answered) if answered else None
    out["tokens_per_s"] = (sum(r["new_tokens"] for r in answered) / sum(latencies)
                           if latencies and sum(latencies) > 0 else None)
    if hourly_usd is not None and rows:
        successes = sum(1 for r in rows if r["scores"].get("task_correct"))
        cost = sum(r["latency_s"] for r in rows) / 3600 * hourly_usd
        out["cost_usd"] = cost
        out["cost_per_success_usd"] = cost / successes if successes else None
    return out


def evaluate(backend, suites: dict[str, list[EvalCase]], cfg: Config, out_dir: Path,
             schema: dict | None = None, label: str = "") -> dict[str, dict[str, Any]]:
    """Generate and score every case of every suite; write results.jsonl into `out_dir`."""
    rows: list[dict[str, Any]] = []
    metrics: dict[str, dict[str, Any]] = {}
    for name, cases in suites.items():
        if not cases:
            continue
        gens = backend.generate(cases, max_new_tokens=cfg.eval.max_new_tokens, batch_size=cfg.eval.batch_size,
                                label=f"{label} {name}".strip(), no_repeat_ngram_size=cfg.eval.no_repeat_ngram_size)
        suite_rows = [result_row(name, case, gen.output, score_case(case, gen.output, cfg.task, schema,
                                                                     hit_limit=gen.hit_limit),
                                 gen.latency_s, gen.new_tokens)
                      for case, gen in zip(cases, gens)]
        metrics[name] = aggregate(suite_rows, cfg.budget.hourly_usd)
        rows.extend(suite_rows)
    atomic_write_jsonl(out_dir / "results.jsonl", rows)
    return metrics


def _percentile(sorted_values: list[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation, as numpy's default) of an ascending list."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def behavior_precision_recall(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Refusal correctness and its kin: for each pushback behaviour expected or shown, recall (of the cases that
    expect it, the share that show it) and precision (of the replies that show it, the share that should)."""
    from tunesmith.eval.scorers import detect_behavior

    pairs = [(r["behavior"], detect_behavior(r["output"])) for r in rows if r.get("output") is not None]
    out: dict[str, float | None] = {}
    for b in ("refuse", "escalate", "clarify", "abstain"):
        expected = sum(e == b for e, _ in pairs)
        shown = sum(d == b for _, d in pairs)
        if expected or shown:
            hit = sum(e == b == d for e, d in pairs)
            out[f"{b}_recall"] = hit / expected if expected else None
            out[f"{b}_precision"] = hit / shown if shown else None
    return out


def result_row(suite: str, case: EvalCase, output: str | None, scores: dict, latency_s: float = 0.0,
               new_tokens: int = 0, error: str | None = None) -> dict[str, Any]:
    """One line of results.jsonl."""
    row = {"suite": suite, "id": case.id, "where": case.where, "kind": case.kind, "behavior": case.behavior,
           "tags": case.tags, "expected": case.expected, "output": output, "scores": scores,
           "latency_s": latency_s, "new_tokens": new_tokens}
    if error:
        row["error"] = error
    return row


def score_responses(suite: str, cases: list[EvalCase], responses: Path, cfg: Config,
                    schema: dict | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Score recorded outputs (JSONL: `id`, `output`, optional `latency_s`, `new_tokens`) against a suite without
    generating: e.g. golden outputs of an API model recorded before moving off it.

    A case with no response is a failure with its error in the row (`error`), and the other cases are still
    scored; a response for no case, or a line without `id`/`output`, is a clear error naming its line.
    """
    from tunesmith.data.io import read_jsonl
    from tunesmith.errors import Problem, TunesmithError

    by_id, problems = {}, []
    known = {c.id for c in cases}
    for line, obj in read_jsonl(responses):
        rid, output = obj.get("id"), obj.get("output")
        if rid is None or not isinstance(output, str):
            problems.append(Problem(f"{responses}:{line}", "a response needs `id` and a string `output`",
                                    '{"id": "case-id", "output": "the model\'s reply"}'))
        elif str(rid) not in known:
            problems.append(Problem(f"{responses}:{line} [id]", f"no case {rid!r} in the suite",
                                    "ids must match the suite's `id` fields"))
        else:
            by_id[str(rid)] = obj
    if problems:
        raise TunesmithError.capped(f"{len(problems)} bad response line(s)", problems)
    rows = []
    for case in cases:
        got = by_id.get(case.id)
        if got is None:
            scores = {"task_correct": False} if case.expected is not None else {}
            rows.append(result_row(suite, case, None, scores, error="no response recorded for this case"))
            continue
        scores = score_case(case, got["output"], cfg.task, schema)
        rows.append(result_row(suite, case, got["output"], scores, float(got.get("latency_s") or 0.0),
                               int(got.get("new_tokens") or 0)))
    return rows, aggregate(rows, cfg.budget.hourly_usd)
