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

Returns `{"runs", "findings": [{code, severity (ok|info|warning|error: info is "not measured"), title, evidence,
remedy}], "counts",
"masking_preview": [{where, segments: [{text, loss}], ...}], "loss": {steps, train, eval_steps, eval, flags, ...}}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.config import flat_train
from tunesmith.diagnose.evidence import ERROR, INFO, OK, SEVERITY_ORDER, WARNING, answered, finding, quote
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
    "INFO",
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
    read = _read_runs(cfg, split_dir, base_dir, tuned_dir, train_dir, check_dir)
    preview, preview_error = _preview(cfg, read.section, train_dir, read.records)
    findings = _output_checks(cfg, read, preview) + _missing_evaluations(read) + _unanswered_evaluations(read)
    curve, loss_findings = _loss_checks(read, train_dir)
    findings += loss_findings
    findings.sort(key=lambda f: SEVERITY_ORDER[f["severity"]])  # stable: problems first, checks in order
    out = {
        "runs": RunDirs(train_dir, split_dir, check_dir, base_dir, tuned_dir).to_json(),
        "objective": read.settings.get("objective", "sft"),
        "findings": findings,
        "counts": {s: sum(f["severity"] == s for f in findings) for s in (ERROR, WARNING, INFO, OK)},
        "masking_preview": preview,
        "loss": curve,
    }
    if preview_error:
        out["masking_preview_error"] = preview_error
    return out


@dataclass
class _Readings:
    """What the checks read from the run directories."""

    base_rows: list[dict]  # the base evaluation's results.jsonl
    tuned_rows: list[dict]  # the tuned evaluation's
    records: list  # the split's training records
    section: dict[str, Any]  # the train run's config.yaml
    settings: dict[str, Any]  # its train section (else the project's), flat: `lora_r` for old and new runs
    train_result: dict | None  # its result.json, when it finished
    report: dict | None  # the check run's report.json
    data_counts: dict[str, int]  # the data check's findings per code
    eval_section: dict[str, Any]  # the tuned evaluation's eval section


def _read_runs(
    cfg, split_dir: Path | None, base_dir: Path | None, tuned_dir: Path | None, train_dir: Path, check_dir: Path | None
) -> _Readings:
    """Read every run directory the checks need once (a missing one reads as empty)."""
    from tunesmith import runs

    section = read_section(train_dir)
    report = read_json(check_dir / "report.json") if check_dir else None
    data_counts: dict[str, int] = {}
    for c in (report or {}).get("counts", []):
        data_counts[c["code"]] = data_counts.get(c["code"], 0) + c["count"]
    return _Readings(
        base_rows=read_results(base_dir),
        tuned_rows=read_results(tuned_dir),
        records=_train_records(split_dir),
        section=section,
        settings=flat_train(section.get("train") or cfg.train.model_dump(mode="json")),
        train_result=runs.read_result(train_dir) if runs.is_complete(train_dir) else None,
        report=report,
        data_counts=data_counts,
        eval_section=read_section(tuned_dir).get("eval") or {},
    )


def _output_checks(cfg, read: _Readings, preview: list[dict]) -> list[dict[str, Any]]:
    """The checks on what the models answered: memorization, sameness, forgetting, overconfidence, stale facts and
    the stop token."""
    from tunesmith.diagnose import facts, memorization, regression, stop_token

    base_rows, tuned_rows, records, counts = read.base_rows, read.tuned_rows, read.records, read.data_counts
    replies = [
        (r.where, str(m.get("content") or "")) for r in records for m in r.messages if m.get("role") == "assistant"
    ]
    finals = [r.reply for r in records if r.reply]
    data = (read.train_result or {}).get("data") or {}
    duplicates = {k: counts[k] for k in ("duplicate_exact", "near_duplicate") if k in counts}
    significance = {"confidence": cfg.eval.confidence, "samples": cfg.eval.bootstrap_samples}  # as the comparison's
    return [
        memorization.check_memorization(replies, base_rows, tuned_rows, read.settings, duplicates),
        memorization.check_sameness(base_rows, tuned_rows),
        regression.check_forgetting(base_rows, tuned_rows, finals, read.settings, **significance),
        regression.check_overconfidence(base_rows, tuned_rows, finals, **significance),
        facts.check_stale_facts(read.report, records, base_rows, tuned_rows),
        stop_token.check_stop_token(
            base_rows,
            tuned_rows,
            preview,
            counts,
            data["assistant_tokens"] / data["examples"] if data.get("examples") else None,
            read.eval_section.get("max_new_tokens", cfg.eval.max_new_tokens),
        ),
    ]


def _missing_evaluations(read: _Readings) -> list[dict[str, Any]]:
    """A warning when the base or the tuned evaluation is missing (the checks on outputs then measure nothing)."""
    missing = [name for name, rows in (("base", read.base_rows), ("tuned", read.tuned_rows)) if not rows]
    if not missing:
        return []
    return [
        finding(
            "no_evaluation",
            WARNING,
            f"No evaluation of the {' and '.join(missing)} model: the checks on outputs are not measured",
            {"missing": missing},
            "Run `tunesmith run PROJECT`: it evaluates the base and the tuned model on the same "
            "cases, which memorization, forgetting, overconfidence and the stop token compare.",
        )
    ]


def _unanswered_evaluations(read: _Readings) -> list[dict[str, Any]]:
    """An error when an evaluation's rows hold no output at all (every request failed, e.g. out of GPU memory): the
    checks on outputs would otherwise read such a run as fine or as not measured."""
    silent = {
        name: _failures(rows)
        for name, rows in (("base", read.base_rows), ("tuned", read.tuned_rows))
        if rows and not answered(rows)
    }
    if not silent:
        return []
    first = next((f["first_error"] for f in silent.values() if f["first_error"]), None)
    title = " and ".join(f"the {name} model answered none of its {f['cases']} cases" for name, f in silent.items())
    return [
        finding(
            "no_outputs",
            ERROR,
            title[0].upper() + title[1:] + (f" (first error: {first})" if first else ""),
            silent,
            "Every case failed to generate, so the checks on outputs measure nothing: fix the error and run "
            "`tunesmith run PROJECT` again (out of GPU memory: lower eval.batch_size or eval.max_new_tokens).",
        )
    ]


def _failures(rows: list[dict]) -> dict[str, Any]:
    """How many of an evaluation's cases failed, and the first error recorded."""
    errors = [r["error"] for r in rows if r.get("error")]
    return {"cases": len(rows), "errors": len(errors), "first_error": quote(errors[0]) if errors else None}


def _loss_checks(read: _Readings, train_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The loss curve with its flags (the LoRA rank's among them when it is off) and the findings on it and on
    the rank."""
    from tunesmith.diagnose import loss

    curve, loss_findings = loss.check_loss(read_metrics(train_dir), read.train_result, _task_accuracy(read.tuned_rows))
    rank = loss.check_rank(read.settings, read.train_result, loss.rank_peers(train_dir))
    if rank["severity"] != OK:
        curve["flags"].append({"code": "lora_rank", "severity": rank["severity"], "detail": rank["title"]})
    return curve, loss_findings + [rank]


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
    max_len = int(section.get("max_seq_len") or cfg.data.max_seq_len)
    prompt_loss = bool((section.get("train") or {}).get("prompt_loss", False))
    return masking_preview(tok, records, task, max_len, prompt_loss=prompt_loss), None


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
        "confidence": cfg.eval.confidence,  # what a significant forgetting or overconfidence is
        "bootstrap_samples": cfg.eval.bootstrap_samples,
    }
    return pipe.stage(
        "diagnose",
        section,
        {"split": st_split.key, "base": st_base.key, "tuned": st_tuned.key, "train": st_train.key, "check": check_key},
        work,
    )
