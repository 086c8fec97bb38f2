"""The data check's section: records kept and rejected, the split, the counts per finding code and the findings."""

from __future__ import annotations

from tunesmith.report.frame import SEVERITY_ORDER, not_measured, section, severity_label
from tunesmith.report.markup import Html, join, table, tag

FINDINGS_SHOWN = 100


def data(report: dict | None, split: dict | None) -> Html:
    """The data check's findings (counts per code, then each finding) and the split."""
    if report is None:
        return section(
            "data",
            "Data findings",
            not_measured("no data check run found", "run `tunesmith run` (or `tunesmith data check`)"),
        )
    parts = [
        tag(
            "p",
            f"{report.get('records', '-')} records: {report.get('kept', '-')} kept, "
            f"{report.get('rejected', '-')} rejected (rejected.jsonl in the check run, with reasons).",
        )
    ]
    if split:
        parts.append(
            tag(
                "p",
                f"Split: {split.get('train', '-')} for training, {split.get('heldout', '-')} held out"
                + (f", stratified by {split['stratified_by']}" if split.get("stratified_by") else "")
                + f"; {split.get('leaks', 0)} near-duplicate leak(s) between them.",
            )
        )
    counts = sorted(
        report.get("counts") or [], key=lambda c: (SEVERITY_ORDER.get(c.get("severity"), 3), str(c.get("code")))
    )
    if counts:
        parts.append(
            table(
                ["severity", "code", "count"],
                ([severity_label(c.get("severity")), c.get("code"), c.get("count")] for c in counts),
                numeric=["count"],
            )
        )
    findings = sorted(report.get("findings") or [], key=lambda f: SEVERITY_ORDER.get(f.get("severity"), 3))
    if findings:
        parts.append(tag("h3", "Findings"))
        parts.append(
            table(
                ["severity", "code", "where", "field", "message", "fix"],
                (
                    [
                        severity_label(f.get("severity")),
                        f.get("code"),
                        f.get("where"),
                        f.get("field"),
                        f.get("message"),
                        f.get("hint"),
                    ]
                    for f in findings[:FINDINGS_SHOWN]
                ),
                cls="findings",
            )
        )
        if len(findings) > FINDINGS_SHOWN:
            parts.append(tag("p", f"… and {len(findings) - FINDINGS_SHOWN} more in report.json", cls="note"))
    else:
        parts.append(tag("p", "No finding: every check passed.", cls="note"))
    return section("data", "Data findings", join(parts))
