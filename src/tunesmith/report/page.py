"""The whole page: head, inline stylesheet, navigation, and the sections in reading order.

One self-contained file: the CSS is inline, figures are data: URIs, there is no script and no external URL, so it
opens the same from disk, from an e-mail or from a CI artifact.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tunesmith.report import after_training, comparison, costs, data_findings, headline, outcomes, training_run
from tunesmith.report.markup import Html, esc, join, tag

CSS = """
:root { --fg:#1f2933; --muted:#52606d; --line:#d9e2ec; --bg:#ffffff; --soft:#f5f7fa;
        --good:#1a7f37; --good-bg:#e6f4ea; --bad:#c62828; --bad-bg:#fdecea; --warn:#b45309; --warn-bg:#fff4e0; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); }
header, main, footer { max-width: 1100px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 20px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 16px 0 6px; }
h4 { font-size: 12px; margin: 0 0 2px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.meta, .note, figcaption { color: var(--muted); font-size: 13px; }
.not-measured { color: var(--muted); font-style: italic; }
.lead { font-size: 16px; }
nav { margin: 10px 0 0; font-size: 13px; }
nav a { color: var(--muted); margin-right: 12px; text-decoration: none; }
nav a:hover { color: var(--fg); text-decoration: underline; }
.verdict { margin-top: 18px; padding: 10px 18px; border-radius: 8px; border: 1px solid; }
.verdict h2 { border: 0; margin: 4px 0; }
.verdict ul { margin: 4px 0 8px; padding-left: 18px; }
.verdict.pass { background: var(--good-bg); border-color: var(--good); }
.verdict.fail { background: var(--bad-bg); border-color: var(--bad); }
.verdict .badge.good { background: var(--good); color: #fff; }
.verdict .badge.bad { background: var(--bad); color: #fff; }
.glance { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 14px; margin-top: 16px; }
.box { border: 1px solid var(--line); border-top: 4px solid var(--muted); border-radius: 8px; padding: 8px 14px;
       background: var(--soft); }
.box.good { border-top-color: var(--good); }
.box.bad { border-top-color: var(--bad); }
.box h3 { margin-top: 4px; }
.box ul { padding-left: 18px; margin: 4px 0; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 12px; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
thead th { background: var(--soft); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv { width: auto; }
table.kv th { font-weight: 600; white-space: nowrap; padding-right: 18px; }
table.findings td { word-break: break-word; }
table.findings td:nth-child(-n+2) { white-space: nowrap; word-break: normal; }
table.findings td:nth-child(3) { min-width: 12ch; }
.box table.kv { width: 100%; }
.box table.kv th { white-space: normal; width: 48%; }
.box table.kv td { word-break: break-word; }
.badge { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 12px; font-weight: 600;
         white-space: nowrap; }
.badge.good { background: var(--good-bg); color: var(--good); }
.badge.bad { background: var(--bad-bg); color: var(--bad); }
.badge.neutral { background: var(--soft); color: var(--muted); border: 1px solid var(--line); }
.sev { font-weight: 600; }
.sev.error { color: var(--bad); }
.sev.warning { color: var(--warn); }
.sev.info { color: var(--muted); }
.sev.ok { color: var(--good); }
figure { margin: 8px 0 14px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
pre { margin: 0; white-space: pre-wrap; word-break: break-word; font: 12px/1.45 ui-monospace, SFMono-Regular,
      Menlo, Consolas, monospace; background: var(--soft); padding: 6px 8px; border-radius: 4px; }
.case, .mask { border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; margin: 8px 0; }
.case-id { font-size: 12px; color: var(--muted); margin-bottom: 4px; }
.case-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); gap: 8px; }
.finding { border-left: 4px solid var(--line); padding: 4px 10px; margin: 6px 0; }
.finding.error { border-left-color: var(--bad); }
.finding.warning { border-left-color: var(--warn); }
.finding.ok { border-left-color: var(--good); }
.finding .remedy { margin: 2px 0; font-size: 14px; }
details { margin: 2px 0 4px; font-size: 13px; }
summary { cursor: pointer; color: var(--muted); }
details table { width: auto; }
section { overflow-x: auto; }
.trained { background: #fde68a; }
.context { color: var(--muted); }
footer { margin: 36px auto 24px; color: var(--muted); font-size: 12px; }
@media print { nav { display: none; } .glance { grid-template-columns: 1fr 1fr 1fr; } }
"""

NAV = [
    ("data", "Data"),
    ("metrics", "Base vs tuned"),
    ("alternatives", "Alternatives"),
    ("slices", "Slices"),
    ("cases", "Cases"),
    ("labels", "Labels"),
    ("search", "Search"),
    ("training", "Training"),
    ("diagnosis", "Diagnosis"),
    ("cost", "Cost"),
    ("parity", "Export parity"),
    ("preference", "Preference"),
    ("stages", "Stages"),
]


@dataclass(frozen=True)
class ReportInputs:
    """What the page is made of: the run's summary and what its stages wrote (each may be missing). `labels`
    (`sources.label_view`) is read from the run directories the summary names when not given."""

    summary: dict
    check: dict | None = None
    split: dict | None = None
    log: list[dict] = field(default_factory=list)
    changed: dict | None = None
    diagnosis: Any = None
    cost: Any = None
    preference: Any = None
    labels: dict | None = None


def render(inputs: ReportInputs) -> str:
    """The report as one HTML document (a string)."""
    summary = inputs.summary
    project = Path(str(summary.get("project") or "project")).name
    if inputs.labels is None:
        from tunesmith.report import sources

        labels = sources.label_view(sources.stage_dirs(summary, Path(str(summary.get("project") or "."))))
        inputs = replace(inputs, labels=labels)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n{head(project)}\n</head>\n<body>\n{header(summary, project)}\n'
        f"<main>\n{sections(inputs)}\n</main>\n{footer()}\n</body>\n</html>\n"
    )


def sections(inputs: ReportInputs) -> Html:
    """Every section, in reading order."""
    summary, cost = inputs.summary, inputs.cost
    parity = summary.get("parity")
    return join(
        [
            headline.verdict(summary),
            headline.glance(summary, cost if isinstance(cost, dict) else None, inputs.preference, parity),
            data_findings.data(inputs.check, inputs.split),
            comparison.metrics(summary),
            headline.alternatives(summary),
            comparison.slices(summary),
            outcomes.cases(inputs.changed),
            outcomes.labels(inputs.labels),
            training_run.search(summary),
            training_run.training(summary, inputs.log),
            after_training.diagnosis(inputs.diagnosis),
            costs.cost(cost, summary),
            after_training.parity(parity),
            after_training.preference(inputs.preference),
            costs.stages(summary),
        ]
    )


def head(project: str) -> Html:
    """The document head: charset, viewport, title and the inline stylesheet."""
    return (
        Html('<meta charset="utf-8">\n<meta name="viewport" content="width=device-width, initial-scale=1">\n')
        + tag("title", f"tunesmith report: {project}")
        + Html(f"\n<style>{CSS}</style>")
    )


def header(summary: dict, project: str) -> Html:
    """The title, the base model and project, and the navigation to each section."""
    nav = tag("nav", join(Html(f'<a href="#{i}">') + esc(label) + Html("</a>") for i, label in NAV))
    return tag(
        "header",
        tag("h1", f"tunesmith report: {project}")
        + tag("p", f"Base model {summary.get('model', '?')} · {summary.get('project', '')}", cls="meta")
        + nav,
    )


def footer() -> Html:
    """Which tunesmith wrote the page, when, and where its numbers come from."""
    import tunesmith

    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return tag(
        "footer",
        f"Written by tunesmith {tunesmith.__version__} on {when}. The numbers come from "
        "summary.json and the run directories listed under Stages.",
    )
