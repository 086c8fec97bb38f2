"""Safe HTML building for the report: every value is escaped unless it is already `Html`.

    Html("<b>") + esc(user_text)          # esc escapes; Html marks a fragment as already safe
    table(["code", "count"], [["low_data", 1]])
    generic({"any": {"nested": [1, 2]}})  # a key/value table for a shape the report does not know

The pattern is markupsafe's: a `str` subclass marks trusted markup, so a prompt, an output or a finding's message
can never inject a tag, whatever it holds.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from typing import Any


class Html(str):
    """A fragment of markup that is already safe (built here from escaped parts)."""

    def __add__(self, other: str) -> Html:
        return Html(str.__add__(self, esc(other)))

    def __radd__(self, other: str) -> Html:  # "text" + Html: the text is escaped too
        return Html(str.__add__(esc(other), self))


def esc(value: Any) -> Html:
    """`value` as safe text: Html is kept, None becomes "", everything else is escaped (quotes too)."""
    if isinstance(value, Html):
        return value
    if value is None:
        return Html("")
    return Html(html.escape(str(value), quote=True))


def join(parts: Iterable[Any], sep: str = "") -> Html:
    return Html(esc(sep).join(esc(p) for p in parts))


def tag(name: str, body: Any = "", cls: str | None = None, **attrs: Any) -> Html:
    """`<name class=... attr=...>body</name>`, the body and every attribute value escaped."""
    if cls:
        attrs = {"class": cls, **attrs}
    attr = "".join(f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"' for k, v in attrs.items() if v is not None)
    return Html(f"<{name}{attr}>{esc(body)}</{name}>")


def num(x: Any, fmt: str = ".3f") -> str:
    """A number formatted for a table; "-" when missing or not finite."""
    if x is None or isinstance(x, bool) or not isinstance(x, (int, float)):
        return "-" if x is None else str(x)
    if isinstance(x, float) and not math.isfinite(x):
        return "-"
    return format(x, fmt)


def signed(x: Any) -> str:
    return num(x, "+.3f")


def interval(low: Any, high: Any) -> str:
    return f"{signed(low)} .. {signed(high)}"


def duration(seconds: Any) -> str:
    """Seconds to a tenth under a minute, whole minutes and seconds under an hour, else hours and minutes: the total
    rounded to the unit shown before it is split (119.7 s is 2 min 0 s, not 1 min 60 s)."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "-"
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min"


def usd(x: Any) -> str:
    """Dollars to the cent from a cent up; a fraction of a cent keeps three significant digits."""
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return "-"
    if x == 0 or abs(x) >= 0.01:
        return f"${x:,.2f}"
    return f"${x:.3g}"


def percent(share: Any) -> str:
    """A share (a confidence level) as a percentage: whole when it is one (95%), else to a tenth (99.5%)."""
    if not isinstance(share, (int, float)) or isinstance(share, bool):
        return "-"
    whole = round(share * 100)
    return f"{whole}%" if math.isclose(share * 100, whole, abs_tol=1e-9) else f"{share:.1%}"


def table(
    headers: list[str], rows: Iterable[Iterable[Any]], cls: str | None = None, numeric: Iterable[str] = ()
) -> Html:
    """A table; cells are escaped unless Html. Columns named in `numeric` are right-aligned."""
    right = set(numeric)
    head = join(tag("th", h, cls="num" if h in right else None) for h in headers)
    body = []
    for row in rows:
        cells = [tag("td", c, cls="num" if h in right else None) for h, c in zip(headers, row)]
        body.append(tag("tr", join(cells)))
    return tag("table", tag("thead", tag("tr", head)) + tag("tbody", join(body)), cls=cls)


def kv(pairs: Iterable[tuple[Any, Any]]) -> Html:
    """A two-column key/value table (keys as row headers)."""
    rows = join(tag("tr", tag("th", k, scope="row") + tag("td", v)) for k, v in pairs)
    return tag("table", tag("tbody", rows), cls="kv")


def verdict_badge(verdict: str | None) -> Html:
    """better / worse / no significant difference as a colored label."""
    text = {"no significant difference": "no sig. diff."}.get(verdict or "", verdict or "-")
    cls = {"better": "good", "worse": "bad"}.get(verdict or "", "neutral")
    return tag("span", text, cls=f"badge {cls}")


def pass_badge(passed: bool | None) -> Html:
    if passed is None:
        return tag("span", "-", cls="badge neutral")
    return tag("span", "PASS" if passed else "FAIL", cls="badge good" if passed else "badge bad")


MAX_ROWS = 200
MAX_DEPTH = 4


def generic(value: Any, depth: int = 0) -> Html:
    """Any JSON-like value, readable: a dict as a key/value table, a list of dicts as a table with the union of
    their keys, a list of scalars as a comma list, a scalar as text. Long lists are cut at MAX_ROWS."""
    if depth >= MAX_DEPTH:
        return tag("code", _short(value))
    if isinstance(value, dict):
        if not value:
            return esc("-")
        return kv((k, generic(v, depth + 1)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        if not value:
            return esc("none")
        if all(isinstance(v, dict) for v in value):
            cols: list[str] = []
            for v in value[:MAX_ROWS]:
                cols += [k for k in v if k not in cols]
            rows = [[generic(v.get(c), depth + 1) for c in cols] for v in value[:MAX_ROWS]]
            more = _more(len(value))
            return table([str(c) for c in cols], rows) + more
        if all(not isinstance(v, (dict, list, tuple)) for v in value):
            shown = ", ".join(_scalar(v) for v in value[:MAX_ROWS])
            return esc(shown) + _more(len(value))
        return join(tag("div", generic(v, depth + 1)) for v in value[:MAX_ROWS]) + _more(len(value))
    return esc(_scalar(value))


def _scalar(v: Any) -> str:
    if isinstance(v, float):
        return num(v, ".4g")
    return "-" if v is None else str(v)


def _short(v: Any, limit: int = 200) -> str:
    import json

    text = json.dumps(v, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def _more(n: int) -> Html:
    return tag("p", f"… and {n - MAX_ROWS} more", cls="note") if n > MAX_ROWS else Html("")
