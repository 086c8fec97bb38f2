"""What every section of the report is made of: the titled `<section>`, the "Not measured" line that stands in
for missing data (with how to measure it), and the severity label of a finding.
"""

from __future__ import annotations

from typing import Any

from tunesmith.report.markup import Html, esc, tag

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2, "ok": 3}


def section(id_: str, title: str, body: Any) -> Html:
    return tag("section", tag("h2", title) + esc(body), id=id_)


def not_measured(what: str, how: str = "") -> Html:
    """The line a section shows instead of data: what is missing, and how to measure it."""
    if how:
        how = " " + how[0].upper() + how[1:] + ("" if how.endswith(".") else ".")
    return tag("p", f"Not measured: {what}.{how}", cls="not-measured")


def severity_label(s: Any) -> Html:
    return tag("span", s or "-", cls=f"sev {s}" if s in SEVERITY_ORDER else "sev")
