"""The HTML report of a run: one self-contained page a person reads, what was paid, what improved, what broke.

    from tunesmith.report import build_report
    path = build_report("examples/support-triage")            # after `tunesmith run`; reads summary.json
    path = build_report(project, summary, diagnosis=d, cost=c, preference=p, out=Path("report.html"))

or `tunesmith report PROJECT` (or a compare RUN). The page holds, in reading order: the verdict of the gates; what
was paid, what improved and what broke; the data check's findings; base vs tuned per metric with intervals (chart
and table); the per-slice table; the held-out cases that flipped; the loss curves; the diagnosis; cost; export
parity; human preference; the stages. A part with no data says "Not measured" and how to measure it.

Plots are matplotlib figures (Agg, no pyplot) inlined as base64 PNGs; without matplotlib the page keeps its
tables. There is no script and no external URL; every text from data, prompts and outputs is HTML-escaped.
"""

from __future__ import annotations

from pathlib import Path

from tunesmith.errors import Problem, TunesmithError

REPORT_FILE = "report.html"


def build_report(
    project: str | Path,
    summary: dict | None = None,
    diagnosis: dict | None = None,
    cost: dict | None = None,
    preference: dict | None = None,
    out: Path | None = None,
) -> Path:
    """Write the report of a project's run and return its path.

    `summary` defaults to PROJECT/.tunesmith/summary.json (what `tunesmith run` wrote). The check run's findings,
    the train run's metrics.jsonl and the eval results are found through `summary["stages"]`. `diagnosis`, `cost`
    and `preference` default to the summary's keys of those names (`human_preference` too) and are rendered in any
    shape. The file is written atomically to `out`, or by default into the compare stage's run directory and to
    PROJECT/.tunesmith/report.html (the first of those is returned)."""
    from tunesmith.files import atomic_write_text
    from tunesmith.report import sources
    from tunesmith.report.page import ReportInputs, render

    project = Path(project)
    if summary is None:
        summary = sources.read_json(project / ".tunesmith" / "summary.json")
        if not isinstance(summary, dict):
            raise TunesmithError(
                "No run to report",
                [
                    Problem(
                        str(project / ".tunesmith" / "summary.json"),
                        "missing or unreadable",
                        f"run the project first: tunesmith run {project}",
                    )
                ],
            )
    diagnosis = diagnosis if diagnosis is not None else summary.get("diagnosis")
    cost = cost if cost is not None else summary.get("cost")
    preference = (
        preference if preference is not None else (summary.get("preference") or summary.get("human_preference"))
    )
    dirs = sources.stage_dirs(summary, project)
    inputs = ReportInputs(
        summary,
        check=sources.check_report(dirs.get("check")),
        split=sources.stage_result(dirs.get("split")),
        log=sources.train_log(dirs.get("train")),
        changed=sources.changed_cases(dirs.get("eval-base"), dirs.get("eval-tuned")),
        diagnosis=diagnosis,
        cost=cost,
        preference=preference,
    )
    text = render(inputs)
    targets = [Path(out)] if out is not None else default_targets(project, dirs)
    for target in targets:
        atomic_write_text(target, text)
    return targets[0]


def default_targets(project: Path, dirs: dict[str, Path]) -> list[Path]:
    """Where a report goes by default: beside the compare run's summary.json, and at PROJECT/.tunesmith/."""
    out = [dirs["compare"] / REPORT_FILE] if "compare" in dirs else []
    return out + [project / ".tunesmith" / REPORT_FILE]


__all__ = ["REPORT_FILE", "build_report", "default_targets"]
