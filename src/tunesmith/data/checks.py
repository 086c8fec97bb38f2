"""Data checks: small pure functions `record -> list[Finding]`, plus dataset-level checks, and their runner.

    report = run_checks(records)
    report.kept, report.rejected, report.counts()

A record with an error-severity finding is rejected (written to `rejected.jsonl` with its reasons by the caller);
warnings and infos are reported and kept. Input files are never edited.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Callable

from tunesmith.data.records import Record


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
    PII = "pii"
    SECRET = "secret"
    STALE_FACT = "stale_fact"
    LOW_DATA = "low_data"
    NO_PUSHBACK = "no_pushback"
    CLASS_IMBALANCE = "class_imbalance"
    TOO_CLEAN = "too_clean"


@dataclass
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


def _finding(rec: Record, code: Code, severity: Severity, field: str, message: str, hint: str = "") -> Finding:
    return Finding(code, severity, rec.where, field, message, hint)


def check_turns(rec: Record) -> list[Finding]:
    """A user turn exists; the conversation ends with an assistant turn; system only first; no role repeats."""
    out = []
    roles = [m.get("role") for m in rec.messages]
    if "user" not in roles:
        out.append(_finding(rec, Code.NO_USER_TURN, Severity.ERROR, "messages", "no user turn",
                            "a training conversation needs at least one user message"))
    if not roles or roles[-1] != "assistant":
        out.append(_finding(rec, Code.NO_FINAL_ASSISTANT, Severity.ERROR, f"messages[{len(roles) - 1}]",
                            "the conversation does not end with an assistant turn",
                            "end it with the reply the model should learn, or drop the trailing turn"))
    for i, role in enumerate(roles):
        if role == "system" and i > 0:
            out.append(_finding(rec, Code.SYSTEM_NOT_FIRST, Severity.ERROR, f"messages[{i}].role",
                                "a system message after the first turn", "move it to the start"))
        if i > 0 and role == roles[i - 1] and role in ("user", "assistant"):
            out.append(_finding(rec, Code.ROLE_ORDER, Severity.WARNING, f"messages[{i}].role",
                                f"two {role} turns in a row", "merge them, or insert the missing turn"))
    return out


def check_content(rec: Record) -> list[Finding]:
    """No empty message (an assistant turn that only calls tools may have empty content)."""
    out = []
    for i, msg in enumerate(rec.messages):
        if msg.get("tool_calls"):
            continue
        if not str(msg.get("content", "")).strip():
            severity = Severity.ERROR if msg["role"] == "assistant" else Severity.WARNING
            out.append(_finding(rec, Code.EMPTY_CONTENT, severity, f"messages[{i}].content",
                                f"empty {msg['role']} message", "write the content or remove the turn"))
    return out


def check_tool_calls(rec: Record) -> list[Finding]:
    """Every called function is declared in the record's `tools`, and its arguments fit the declared JSON Schema."""
    declared = {}
    for t in rec.tools or []:
        if isinstance(t, dict):
            fn = t.get("function") or t
            declared[fn.get("name")] = fn.get("parameters")
    out = []
    for i, msg in enumerate(rec.messages):
        for j, call in enumerate(msg.get("tool_calls") or []):
            fn = call.get("function") or {}
            name, where = fn.get("name"), f"messages[{i}].tool_calls[{j}].function"
            if rec.tools is None:
                continue
            if name not in declared:
                out.append(_finding(rec, Code.UNDECLARED_TOOL, Severity.ERROR, f"{where}.name",
                                    f"calls {name!r}, which is not among the declared tools",
                                    f"declared: {', '.join(sorted(map(str, declared))) or 'none'}"))
            elif isinstance(declared[name], dict):
                import jsonschema

                errors = list(jsonschema.Draft202012Validator(declared[name]).iter_errors(fn.get("arguments", {})))
                if errors:
                    path = ".".join(map(str, errors[0].absolute_path))
                    out.append(_finding(rec, Code.TOOL_ARGS_INVALID, Severity.ERROR,
                                        f"{where}.arguments{'.' + path if path else ''}",
                                        f"arguments do not match {name}'s parameters: {errors[0].message}",
                                        "fix the call, or the tool's declared parameters"))
    return out


def check_sensitive(rec: Record) -> list[Finding]:
    """Personal data (warning) and secrets (error) in any message; see `tunesmith.data.pii`."""
    from tunesmith.data.pii import sensitive_findings

    return sensitive_findings(rec)


def check_stale_facts(rec: Record) -> list[Finding]:
    """Prices, dates, versions, URLs, policy numbers, "as of" in replies; see `tunesmith.data.facts`."""
    from tunesmith.data.facts import stale_fact_findings

    return stale_fact_findings(rec)


RECORD_CHECKS: list[Callable[[Record], list[Finding]]] = [check_turns, check_content, check_tool_calls,
                                                          check_sensitive, check_stale_facts]


def check_system_prompts(records: list[Record]) -> list[Finding]:
    """Several different system prompts where one is expected: a warning on the minority ones."""
    systems = Counter(r.messages[0]["content"] for r in records if r.messages and r.messages[0]["role"] == "system")
    if len(systems) <= 1:
        return []
    common, _ = systems.most_common(1)[0]
    return [Finding(Code.SYSTEM_PROMPT_DRIFT, Severity.WARNING, r.where, "messages[0].content",
                    f"system prompt differs from the most common one ({len(systems)} variants in the data)",
                    "use one system prompt for one behaviour, or tag the variants deliberately")
            for r in records if r.messages and r.messages[0]["role"] == "system"
            and r.messages[0]["content"] != common]


DATASET_CHECKS: list[Callable[[list[Record]], list[Finding]]] = [check_system_prompts]


@dataclass
class CheckReport:
    """Findings of a check run, and which records survive it."""

    findings: list[Finding] = field(default_factory=list)
    kept: list[Record] = field(default_factory=list)
    rejected: list[tuple[Record, list[Finding]]] = field(default_factory=list)

    def counts(self) -> dict[tuple[str, str], int]:
        return dict(Counter((f.code.value, f.severity.value) for f in self.findings))

    @property
    def has_errors(self) -> bool:
        return any(f.severity == Severity.ERROR for f in self.findings)

    def to_json(self) -> dict:
        return {
            "records": len(self.kept) + len(self.rejected),
            "kept": len(self.kept),
            "rejected": len(self.rejected),
            "counts": [{"code": c, "severity": s, "count": n} for (c, s), n in sorted(self.counts().items())],
            "findings": [f.to_json() for f in self.findings],
        }


def template_findings(rec: Record, tok, max_len: int, system_prompt: str | None = None) -> list[Finding]:
    """Render with the model's real chat template and tokenizer: length, truncation, loss mask, end-of-turn.

    `system_prompt` is added to conversations without one, as training does.
    """
    from tunesmith.chat import IGNORE, TemplateError, training_example

    messages = rec.messages
    if system_prompt and not (messages and messages[0].get("role") == "system"):
        messages = [{"role": "system", "content": system_prompt}] + messages
    try:
        ex = training_example(tok, messages, rec.tools, max_len)
    except TemplateError as exc:
        return [_finding(rec, Code.TEMPLATE_ERROR, Severity.ERROR, "messages", str(exc),
                         "use a model whose chat template renders conversations turn by turn")]
    except Exception as exc:  # noqa: BLE001 - a template that cannot render this record at all
        return [_finding(rec, Code.TEMPLATE_ERROR, Severity.ERROR, "messages",
                         f"the chat template cannot render it: {type(exc).__name__}: {exc}",
                         "check roles and contents against what the model's template expects")]
    out = []
    if ex.dropped_assistant_tokens:
        total = len(ex.input_ids) + ex.dropped_assistant_tokens  # at least; prompt tokens past the cut are not counted
        out.append(_finding(rec, Code.TRUNCATED, Severity.WARNING, "messages",
                            f"longer than max_seq_len={max_len}: truncation drops {ex.dropped_assistant_tokens} "
                            f"assistant token(s) (>= {total} tokens in all)",
                            "raise data.max_seq_len, shorten the conversation, or split it"))
    if ex.assistant_tokens == 0:
        out.append(_finding(rec, Code.EMPTY_LOSS_MASK, Severity.ERROR, "messages",
                            "no token would carry loss (nothing to learn from this example)",
                            "make sure it ends with an assistant reply inside max_seq_len"))
    elif not ex.dropped_assistant_tokens:
        eot = tok.convert_tokens_to_ids(tok.eos_token) if tok.eos_token else None
        if eot is None or eot not in [lab for lab in ex.labels if lab != IGNORE]:
            out.append(_finding(rec, Code.NO_END_OF_TURN, Severity.ERROR, "messages",
                                f"the end-of-turn token {tok.eos_token!r} is not in the trained part",
                                "the model would never learn to stop: fix the chat template or the eos token"))
    return out


def run_checks(records: list[Record], near_dup_threshold: float = 0.8, tokenizer=None,
               max_seq_len: int = 1024, system_prompt: str | None = None, json_task: bool = False,
               schema: dict | None = None, task_type: str | None = None,
               label_of: Callable[[Record], str | None] | None = None) -> CheckReport:
    """Run every record and dataset check; records with an error finding are rejected, the rest kept.

    With a tokenizer, each record is also rendered with the model's chat template (length, truncation, loss mask,
    end-of-turn token). `json_task`/`schema` hold replies to the task's JSON format. With `task_type`, coverage
    is compared with the guidance (size, pushback, class balance by `label_of`, realistic inputs).
    """
    from tunesmith.data.consistency import reply_format_findings, shape_findings
    from tunesmith.data.dedup import duplicate_findings

    validator = None
    if schema:
        import jsonschema

        validator = jsonschema.Draft202012Validator(schema)

    report = CheckReport()
    per_record: dict[int, list[Finding]] = {}
    for idx, rec in enumerate(records):
        found = [f for check in RECORD_CHECKS for f in check(rec)]
        if json_task:
            found += reply_format_findings(rec, validator)
        if tokenizer is not None and not any(f.severity == Severity.ERROR for f in found):
            found += template_findings(rec, tokenizer, max_seq_len, system_prompt)
        per_record[idx] = found
        report.findings.extend(found)
    for check in DATASET_CHECKS:
        report.findings.extend(check(records))
    report.findings.extend(duplicate_findings(records, near_dup_threshold))
    report.findings.extend(shape_findings(records, json_task))
    if task_type is not None:
        from tunesmith.data.coverage import coverage_findings

        report.findings.extend(coverage_findings(records, task_type, label_of or (lambda r: None)))
    for idx, rec in enumerate(records):
        errors = [f for f in per_record[idx] if f.severity == Severity.ERROR]
        (report.rejected.append((rec, errors)) if errors else report.kept.append(rec))
    return report
