"""Diagnose a fine-tune: what it broke and why, each finding with its evidence and the guidance's remedy.

    result = diagnose("examples/support-triage")              # the newest finished `tunesmith run`
    result = diagnose(project, "train-0df9")                  # a train, eval-tuned or compare run
    html = masking_html(result["masking_preview"])
    print_diagnosis(result, console())                          # tunesmith.cli.render, for the terminal

It reads run directories only (nothing is generated or trained): the train run (its recipe, metrics.jsonl and
result), its split (the training records), the split's check run (the data doctor's findings), and the base and
tuned evaluations of the same cases (results.jsonl). The checks, one small function each, thresholds as named
constants in their modules:

- memorization (`memorization.py`): tuned outputs repeating training replies verbatim; template-like sameness;
- forgetting and overconfidence (`regression.py`): the general probe and hedging, tuned vs base;
- stale facts (`facts.py`); stop token not learned, with its root cause (`stop_token.py`);
- the loss curve and LoRA rank (`loss.py`); and a masking preview of a few training examples (`masking.py`).

Returns `{"runs", "findings": [{code, severity (ok|warning|error), title, evidence, remedy}], "counts",
"masking_preview": [{where, segments: [{text, loss}], ...}], "loss": {steps, train, eval_steps, eval, flags, ...}}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunesmith.diagnose.evidence import ERROR, OK, SEVERITY_ORDER, WARNING, finding
from tunesmith.diagnose.locate import RunDirs, locate_runs, read_json, read_metrics, read_results, read_section
from tunesmith.diagnose.masking import masking_html, masking_preview

__all__ = [
    "diagnose",
    "diagnose_runs",
    "diagnose_stage",
    "masking_html",
    "masking_preview",
    "locate_runs",
    "RunDirs",
    "finding",
    "OK",
    "WARNING",
    "ERROR",
]


def diagnose(project: str | Path, train_run: str | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Diagnose the fine-tune of a finished `tunesmith run` of `project`: the newest, or `train_run` (a train,
    eval-tuned or compare run: name, unique part or path)."""
    from tunesmith.config import load_config

    cfg, project = load_config(project, overrides)
    dirs = locate_runs(project, train_run)
    return diagnose_runs(cfg, dirs.split, dirs.base, dirs.tuned, dirs.train, dirs.check)


def diagnose_runs(
    cfg,
    split_dir: Path | None,
    base_dir: Path | None,
    tuned_dir: Path | None,
    train_dir: Path,
    check_dir: Path | None = None,
) -> dict[str, Any]:
    """The diagnosis from run directories (any but the train run may be None: its checks then say what was not
    measured). Training settings come from the train run's own config.yaml, falling back to `cfg`."""
    from tunesmith import runs
    from tunesmith.diagnose import facts, loss, memorization, regression, stop_token

    base_rows, tuned_rows = read_results(base_dir), read_results(tuned_dir)
    records = _train_records(split_dir)
    section = read_section(train_dir)
    settings = section.get("train") or cfg.train.model_dump(mode="json")
    train_result = runs.read_result(train_dir) if runs.is_complete(train_dir) else None
    report = read_json(check_dir / "report.json") if check_dir else None
    data_counts: dict[str, int] = {}
    for c in (report or {}).get("counts", []):
        data_counts[c["code"]] = data_counts.get(c["code"], 0) + c["count"]
    replies = [
        (r.where, str(m.get("content") or "")) for r in records for m in r.messages if m.get("role") == "assistant"
    ]
    finals = [r.reply for r in records if r.reply]
    preview, preview_error = _preview(cfg, section, train_dir, records)
    eval_section = read_section(tuned_dir).get("eval") or {}
    data = (train_result or {}).get("data") or {}

    findings = [
        memorization.check_memorization(
            replies,
            base_rows,
            tuned_rows,
            settings,
            {k: data_counts[k] for k in ("duplicate_exact", "near_duplicate") if k in data_counts},
        ),
        memorization.check_sameness(base_rows, tuned_rows),
        regression.check_forgetting(base_rows, tuned_rows, finals, settings),
        regression.check_overconfidence(base_rows, tuned_rows, finals),
        facts.check_stale_facts(report, records, base_rows, tuned_rows),
        stop_token.check_stop_token(
            base_rows,
            tuned_rows,
            preview,
            data_counts,
            data["assistant_tokens"] / data["examples"] if data.get("examples") else None,
            eval_section.get("max_new_tokens", cfg.eval.max_new_tokens),
        ),
    ]
    missing = [name for name, rows in (("base", base_rows), ("tuned", tuned_rows)) if not rows]
    if missing:
        findings.append(
            finding(
                "no_evaluation",
                WARNING,
                f"No evaluation of the {' and '.join(missing)} model: the checks on outputs are not measured",
                {"missing": missing},
                "Run `tunesmith run PROJECT`: it evaluates the base and the tuned model on the same "
                "cases, which memorization, forgetting, overconfidence and the stop token compare.",
            )
        )
    curve, loss_findings = loss.check_loss(read_metrics(train_dir), train_result, _task_accuracy(tuned_rows))
    rank = loss.check_rank(settings, train_result, loss.rank_peers(train_dir))
    if rank["severity"] != OK:
        curve["flags"].append({"code": "lora_rank", "severity": rank["severity"], "detail": rank["title"]})
    findings += loss_findings + [rank]
    findings.sort(key=lambda f: SEVERITY_ORDER[f["severity"]])  # stable: problems first, checks in order
    out = {
        "runs": RunDirs(train_dir, split_dir, check_dir, base_dir, tuned_dir).to_json(),
        "objective": settings.get("objective", "sft"),
        "findings": findings,
        "counts": {s: sum(f["severity"] == s for f in findings) for s in (ERROR, WARNING, OK)},
        "masking_preview": preview,
        "loss": curve,
    }
    if preview_error:
        out["masking_preview_error"] = preview_error
    return out


def _task_accuracy(rows: list[dict], suite: str = "heldout") -> float | None:
    """The share of `suite`'s cases with a task result that are right (None when none has one)."""
    known = [
        r["scores"]["task_correct"]
        for r in rows
        if r.get("suite") == suite and (r.get("scores") or {}).get("task_correct") is not None
    ]
    return sum(map(bool, known)) / len(known) if known else None


def _train_records(split_dir: Path | None) -> list:
    from tunesmith.data.formats import load_records

    path = None if split_dir is None else split_dir / "train.jsonl"
    return load_records([path]) if path is not None and path.exists() else []


def _preview(cfg, section: dict, train_dir: Path, records: list) -> tuple[list[dict], str | None]:
    """The masking preview with the tokenizer the run saved (else the base model's), the task and length limit it
    trained with; ([], why) when no tokenizer can be loaded."""
    from tunesmith.config import TaskConfig
    from tunesmith.errors import TunesmithError

    if not records:
        return [], None
    try:
        tok = _tokenizer(cfg, train_dir)
    except (OSError, ValueError, TunesmithError) as exc:
        return [], f"no tokenizer to render the training examples: {exc}"
    task = TaskConfig.model_validate(section["task"]) if section.get("task") else cfg.task
    return masking_preview(tok, records, task, int(section.get("max_seq_len") or cfg.data.max_seq_len)), None


def _tokenizer(cfg, train_dir: Path):
    """The tokenizer saved with the run's adapter or model; else the project's base model's."""
    from tunesmith.models import load_tokenizer, resolve_model

    for name in ("adapter", "model"):
        if (train_dir / name / "tokenizer_config.json").exists():
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(train_dir / name, trust_remote_code=cfg.model.trust_remote_code)
    return load_tokenizer(resolve_model(cfg.model.base, cfg.model.trust_remote_code))


def diagnose_stage(cfg, pipe, st_split, st_base, st_tuned, st_train):
    """The `diagnose` stage of `tunesmith run` (after compare): cached under the keys of the runs it reads; its
    result.json is the diagnosis."""
    from tunesmith import runs
    from tunesmith.diagnose.locate import run_inputs

    check_key = run_inputs(st_split.run_dir).get("inputs", {}).get("check")
    check_dir = runs.find_run(pipe.project, "check", check_key) if check_key else None

    def work(run_dir: Path) -> dict[str, Any]:
        return diagnose_runs(cfg, st_split.run_dir, st_base.run_dir, st_tuned.run_dir, st_train.run_dir, check_dir)

    section = {
        "task": cfg.task.model_dump(mode="json"),
        "max_seq_len": cfg.data.max_seq_len,
        "max_new_tokens": cfg.eval.max_new_tokens,
    }
    return pipe.stage(
        "diagnose",
        section,
        {"split": st_split.key, "base": st_base.key, "tuned": st_tuned.key, "train": st_train.key, "check": check_key},
        work,
    )
