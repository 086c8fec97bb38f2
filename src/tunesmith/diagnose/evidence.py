"""What every diagnosis finding is made of: a code, a severity, a title, the evidence and the remedy.

finding("forgetting", WARNING, "General instruction following dropped", {"base": 0.6, "tuned": 0.5}, REMEDY)
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

OK, INFO, WARNING, ERROR = "ok", "info", "warning", "error"  # INFO: not measured (neither passed nor a problem)
SEVERITY_ORDER = {ERROR: 0, WARNING: 1, INFO: 2, OK: 3}

QUOTE_CHARS = 160  # a quoted output in the evidence is cut to this many characters
MAX_EXAMPLES = 5  # example ids (and quotes) listed per finding
MIN_CASES = 5  # fewer paired cases than this are too few to compare base and tuned on

_WORD = re.compile(r"\w+")


def finding(
    code: str, severity: str, title: str, evidence: dict[str, Any] | None = None, remedy: str = ""
) -> dict[str, Any]:
    """One finding as the diagnosis returns it (plain JSON)."""
    return {"code": code, "severity": severity, "title": title, "evidence": evidence or {}, "remedy": remedy}


def quote(text: Any, limit: int = QUOTE_CHARS) -> str:
    """A short, one-line quote of an output or a reply (JSON values dumped)."""
    text = as_text(text)
    flat = text.replace("\r", "\\r").replace("\n", "\\n")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def as_text(value: Any) -> str:
    """An output, a reply or an expected value (a JSON object or a label) as text."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def words(text: str) -> list[str]:
    """Lowercased word tokens: what n-gram overlap and distinct-n count."""
    return _WORD.findall(text.lower())


def rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def finite(value: Any) -> float | None:
    """A float for JSON (None for a missing, NaN or infinite value)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def answered(rows: list[dict]) -> list[dict]:
    """Rows that got an output (not an unreadable case or a failed request)."""
    return [r for r in rows if r.get("output") is not None]


def paired(base_rows: list[dict], tuned_rows: list[dict], keep=lambda r: True) -> list[tuple[dict, dict]]:
    """(base, tuned) rows of the same case, both answered, for the cases `keep` selects."""
    base_by = {(r["suite"], r["id"]): r for r in answered(base_rows) if keep(r)}
    return [
        (base_by[(t["suite"], t["id"])], t)
        for t in answered(tuned_rows)
        if keep(t) and (t["suite"], t["id"]) in base_by
    ]
