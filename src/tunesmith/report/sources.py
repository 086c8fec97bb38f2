"""What the report reads besides the summary: the run directories its stages name.

    dirs = stage_dirs(summary, project)           # {"check": Path, "train": Path, "compare": Path, ...}
    check_report(dirs.get("check"))               # the check run's report.json (findings, counts, stats)
    train_log(dirs.get("train"))                  # the trainer's metrics.jsonl rows
    changed_cases(dirs.get("eval-base"), dirs.get("eval-tuned"))
    label_view(dirs)                              # a label task's most confused labels and its still-wrong cases

Every reader returns None (or an empty list) when its file is missing or unreadable: a report of a partial or
moved project still renders, with "not measured" where a part is missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def stage_dirs(summary: dict, project: Path) -> dict[str, Path]:
    """Stage name -> its run directory, for each stage of the summary whose directory exists (looked up by name
    under the project's runs when the recorded path is gone, e.g. after the project moved)."""
    from tunesmith.runs import runs_root

    out: dict[str, Path] = {}
    for st in summary.get("stages") or []:
        if not isinstance(st, dict) or not st.get("run") or not st.get("stage"):
            continue
        path = Path(st["run"])
        if not path.is_dir():
            path = runs_root(project) / path.name
        if path.is_dir():
            out[str(st["stage"])] = path
    return out


def read_json(path: Path | None) -> Any:
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def check_report(check_dir: Path | None) -> dict | None:
    """The data check's report.json: records, kept, rejected, counts per (code, severity), stats, findings."""
    report = read_json(check_dir / "report.json") if check_dir else None
    return report if isinstance(report, dict) else None


def stage_result(run_dir: Path | None) -> dict | None:
    result = read_json(run_dir / "result.json") if run_dir else None
    return result if isinstance(result, dict) else None


def read_rows(path: Path | None) -> list[dict]:
    """The JSON objects of a JSONL file; a partial or broken line (an interrupted append) is skipped."""
    if path is None or not path.is_file():
        return []
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


def train_log(train_dir: Path | None) -> list[dict]:
    """The train run's metrics.jsonl (one row per trainer log: step, loss, learning_rate, grad_norm, eval_loss)."""
    return read_rows(train_dir / "metrics.jsonl") if train_dir else []


def changed_cases(
    base_dir: Path | None, tuned_dir: Path | None, suite: str = "heldout", limit: int = 5
) -> dict[str, Any] | None:
    """Cases of `suite` whose task result flipped between the base and the tuned evaluation: `broke` (base right,
    tuned wrong) and `fixed`, each capped at `limit`, with their totals; `samples` holds the first cases when none
    flipped. None when either results file is missing."""
    from tunesmith.eval.confusion import paired_cases, side_by_side

    base = read_rows(base_dir / "results.jsonl") if base_dir else []
    tuned = read_rows(tuned_dir / "results.jsonl") if tuned_dir else []
    if not base or not tuned:
        return None
    broke, fixed, same = [], [], []
    for b, t in paired_cases(base, tuned, suite):
        was, now = (b.get("scores") or {}).get("task_correct"), (t.get("scores") or {}).get("task_correct")
        case = side_by_side(b, t)
        if was is True and now is False:
            broke.append(case)
        elif was is False and now is True:
            fixed.append(case)
        else:
            same.append(case)
    return {
        "suite": suite,
        "broke": broke[:limit],
        "fixed": fixed[:limit],
        "n_broke": len(broke),
        "n_fixed": len(fixed),
        "n": len(broke) + len(fixed) + len(same),
        "samples": [] if broke or fixed else same[:3],
    }


def load_preference(path: Path) -> dict:
    """A blind A/B review's result: its directory (summarized afresh) or a preference.json (or any JSON file of
    that shape, such as an LLM judge's)."""
    from tunesmith.errors import Problem, TunesmithError

    path = Path(path)
    if path.is_dir():
        from tunesmith.review.preference import preference_summary

        return preference_summary(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise TunesmithError(
            "Cannot read the preference result",
            [
                Problem(
                    str(path),
                    "not a JSON object",
                    "give a review directory (tunesmith review ab) or its preference.json",
                )
            ],
        )
    return data


def load_json_arg(path: Path, what: str) -> dict:
    """A JSON object from a file named on the command line (`--diagnosis`, `--cost`), or a clear error."""
    from tunesmith.errors import Problem, TunesmithError

    data = read_json(Path(path))
    if not isinstance(data, dict):
        raise TunesmithError(
            f"Cannot read the {what}",
            [Problem(str(path), "missing, or not a JSON object", f"give the {what} as a JSON file")],
        )
    return data


def read_yaml(path: Path | None) -> dict:
    """A YAML mapping (a run's config.yaml); {} when missing or unreadable."""
    import yaml

    if path is None or not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def train_replies(split_dir: Path | None) -> list[str]:
    """The final assistant reply of every training record of a split run (train.jsonl)."""
    replies = []
    for row in read_rows(split_dir / "train.jsonl") if split_dir else []:
        turns = [m for m in row.get("messages") or [] if isinstance(m, dict) and m.get("role") == "assistant"]
        if turns and isinstance(turns[-1].get("content"), str):
            replies.append(turns[-1]["content"])
    return replies


def label_view(dirs: dict[str, Path], limit: int = 5, top: int = 10) -> dict[str, Any] | None:
    """For a label task (classification, or JSON with label-like fields as the classifier baseline sees them in
    the training split): `{"task", "fields", "why", "confused": [{field, expected, predicted, count}],
    "still_wrong": {suite, n, cases} | None}` from the tuned (and base) evaluation's results.jsonl; `fields` is
    None and `why` says why when it is not a label task. None when there are no tuned results."""
    from pydantic import ValidationError

    from tunesmith.config import TaskConfig
    from tunesmith.eval.baselines import label_fields, label_problem
    from tunesmith.eval.confusion import confused_pairs, row_fields, still_wrong

    tuned_dir, base_dir = dirs.get("eval-tuned"), dirs.get("eval-base")
    tuned = read_rows(tuned_dir / "results.jsonl") if tuned_dir else []
    if not tuned:
        return None
    try:
        task = TaskConfig.model_validate(read_yaml(tuned_dir / "config.yaml").get("task") or {})
    except ValidationError:
        return None
    replies = train_replies(dirs.get("split"))
    fields = label_fields(task, replies) if replies else row_fields(tuned, task)
    why = (label_problem(task, replies) if replies else None) or ("not a label task" if fields is None else None)
    base = read_rows(base_dir / "results.jsonl") if base_dir else []
    return {
        "task": task.type,
        "fields": fields,
        "why": why,
        "confused": confused_pairs(tuned, task, top=top, fields=fields) if fields else [],
        "still_wrong": still_wrong(base, tuned, limit) if fields and base else None,
    }
