"""Findings: what every data check reports — a `Code`, a `Severity`, and where, what and how to fix it (`Finding`).

Every check of `tunesmith.data` (record checks, PII, stale facts, formats, duplicates, coverage, poisoning)
reports these, so they live apart from the checks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Code(str, Enum):
    NO_USER_TURN = "no_user_turn"
    NO_FINAL_ASSISTANT = "no_final_assistant"
    EMPTY_CONTENT = "empty_content"
    SYSTEM_NOT_FIRST = "system_not_first"
    ROLE_ORDER = "role_order"
    UNDECLARED_TOOL = "undeclared_tool"
    TOOL_ARGS_INVALID = "tool_args_invalid"
    BAD_TOOL_DECLARATION = "bad_tool_declaration"
    SYSTEM_PROMPT_DRIFT = "system_prompt_drift"
    DUPLICATE_EXACT = "duplicate_exact"
    NEAR_DUPLICATE = "near_duplicate"
    CONFLICTING_ANSWER = "conflicting_answer"
    LEAKAGE = "leakage"
    TEMPLATE_ERROR = "template_error"
    TRUNCATED = "truncated"
    EMPTY_LOSS_MASK = "empty_loss_mask"
    NO_END_OF_TURN = "no_end_of_turn"
    REPLY_NOT_JSON = "reply_not_json"
    REPLY_SCHEMA = "reply_schema"
    STYLE_DRIFT = "style_drift"
    LENGTH_OUTLIER = "length_outlier"
    WORKED_ANSWERS = "worked_answers"
    PII = "pii"
    SECRET = "secret"
    STALE_FACT = "stale_fact"
    LOW_DATA = "low_data"
    NO_PUSHBACK = "no_pushback"
    CLASS_IMBALANCE = "class_imbalance"
    TOO_CLEAN = "too_clean"
    BAD_LINE = "bad_line"
    BAD_RECORD = "bad_record"
    UNKNOWN_KEY = "unknown_key"
    MIXED_FORMATS = "mixed_formats"
    FEW_EDGE_CASES = "few_edge_cases"
    THIN_SLICE = "thin_slice"
    POISON_TRIGGER = "poison_trigger"


@dataclass(slots=True)
class Finding:
    """One problem found in the data: a code, a severity, where (file:line and field), what, and a fix."""

    code: Code
    severity: Severity
    where: str
    field: str
    message: str
    hint: str = ""

    def to_json(self) -> dict:
        out = asdict(self)
        out["code"], out["severity"] = self.code.value, self.severity.value
        return out
