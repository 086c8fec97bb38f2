"""Answers from a project: the task type of its config, the data doctor's counts over its files, the latest
evaluation of its base model (and the gate of its last `tunesmith run`), and its model's shape."""

from __future__ import annotations

from pathlib import Path

from tunesmith.advise.answers import Answers
from tunesmith.cost import Recipe

# task.type -> (the task, in the rules' vocabulary, and what the model must get right)
TASK_OF_TYPE = {
    "json": ("structured", "format"),
    "classification": ("classification", "classification"),
    "chat": ("style", "style"),
    "math": ("reasoning", "reasoning"),
}


def answers_from_project(project: str | Path, overrides: list[str] | None = None) -> Answers:
    """Answers from a project: its task type, the data doctor's counts (run without a tokenizer, so no model is
    loaded) and the latest evaluation of the base (and the gate of the last `tunesmith run`)."""
    from tunesmith.config import load_config
    from tunesmith.cost import model_shape
    from tunesmith.errors import TunesmithError

    cfg, root = load_config(project, overrides)
    a = _answers_from_data(cfg, *_doctor(cfg, root))
    _add_base_eval(a, root)
    try:
        a.model_shape = model_shape(cfg.model.base, cfg.model.trust_remote_code)
    except TunesmithError as err:  # e.g. a hub id while offline: advise without the fit check
        a.evidence.append(f"model {cfg.model.base}: not sized ({err.title})")
    return a


def _doctor(cfg, root: Path):
    """The data doctor over the project's files (no tokenizer, nothing kept): its report and the records with tools."""
    from tunesmith.data.audit import check_files
    from tunesmith.data.project import data_files, load_schema, stratify_field
    from tunesmith.data.records import Record
    from tunesmith.data.split import ReplyLabel

    with_tools = [0]

    def seen(item, errors) -> None:
        if isinstance(item, Record) and item.tools:
            with_tools[0] += 1

    report = check_files(
        data_files(cfg, root),
        cfg.data.format,
        root,
        workers=1,
        keep=False,
        on_verdict=seen,
        near_dup_threshold=cfg.data.near_dup_threshold,
        system_prompt=cfg.task.system_prompt,
        json_task=cfg.task.type == "json",
        schema=load_schema(cfg, root),
        task_type=cfg.task.type,
        label_of=ReplyLabel(stratify_field(cfg)),
    )
    return report, with_tools[0]


def _answers_from_data(cfg, report, with_tools: int) -> Answers:
    """The task and needs of the project's task type, tools and escalations seen in the data, the usable examples
    and the replies that state changeable facts."""
    from tunesmith.data.findings import Code

    a = Answers(recipe=Recipe.from_config(cfg))
    a.task, need = TASK_OF_TYPE[cfg.task.type]
    a.needs = [need]
    if with_tools:
        a.needs.append("tools")
    behaviors = report.stats.get("behaviors") or {}
    if behaviors.get("escalate") or behaviors.get("refuse"):
        a.needs.append("behavior")
    stale = {f.where for f in report.findings if f.code == Code.STALE_FACT}
    a.examples = report.n_kept
    a.stale_fact_share = len(stale) / report.records if report.records else None
    a.stale_fact_records = len(stale)
    a.evidence.append(
        f"data doctor: {report.n_kept} usable of {report.records} records, {len(stale)} with "
        f"replies stating changeable facts, {with_tools} with tool calls, "
        f"{behaviors.get('escalate', 0)} escalations, {behaviors.get('refuse', 0)} refusals"
    )
    return a


def _add_base_eval(a: Answers, root: Path) -> None:
    """The base's held-out accuracy and format validity, from the last `tunesmith run` (with its gate) or else the
    latest completed evaluation of the base."""
    from tunesmith import runs

    summary = runs.load_summary(root)
    base = None
    if summary:
        base = (summary.get("base_metrics") or {}).get("heldout")
        a.tuned_gate_passed = bool((summary.get("gate") or {}).get("passed"))
    else:
        done = [r for r in runs.list_runs(root) if r["stage"] == "eval-base" and r["status"] == "completed"]
        if done:
            base = ((done[-1]["result"] or {}).get("metrics") or {}).get("heldout")
    if not base:
        return
    a.base_accuracy, a.base_format_validity = base.get("task_accuracy"), base.get("format_validity")
    a.evidence.append(
        "eval: base task accuracy "
        + (f"{a.base_accuracy:.0%}" if a.base_accuracy is not None else "n/a")
        + (
            ""
            if a.tuned_gate_passed is None
            else f", gate {'passed' if a.tuned_gate_passed else 'failed'} after tuning"
        )
    )
