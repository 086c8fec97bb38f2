"""Data checks: the small pure functions `record -> list[Finding]` (findings themselves: `tunesmith.data.findings`).

    findings = [f for check in RECORD_CHECKS for f in check(record)]

Dataset-level checks (duplicates, drift, coverage, poisoning) and the runner live in `tunesmith.data.audit`.
"""

from __future__ import annotations

from collections.abc import Callable

from tunesmith.data.findings import Code, Finding, Severity
from tunesmith.data.formats import FORMAT_KEYS, MESSAGE_KEYS, META_KEYS
from tunesmith.data.pii import sensitive_findings
from tunesmith.data.records import Record
from tunesmith.data.stale_facts import stale_fact_findings
from tunesmith.schemas import schema_problem, validator_for


def _finding(rec: Record, code: Code, severity: Severity, field: str, message: str, hint: str = "") -> Finding:
    return Finding(code, severity, rec.where, field, message, hint)


def check_turns(rec: Record) -> list[Finding]:
    """A user turn exists; the conversation ends with an assistant turn; system only first; no role repeats."""
    out = []
    roles = [m.get("role") for m in rec.messages]
    if "user" not in roles:
        out.append(
            _finding(
                rec,
                Code.NO_USER_TURN,
                Severity.ERROR,
                "messages",
                "no user turn",
                "a training conversation needs at least one user message",
            )
        )
    if not roles or roles[-1] != "assistant":
        out.append(
            _finding(
                rec,
                Code.NO_FINAL_ASSISTANT,
                Severity.ERROR,
                f"messages[{len(roles) - 1}]",
                "the conversation does not end with an assistant turn",
                "end it with the reply the model should learn, or drop the trailing turn",
            )
        )
    for i, role in enumerate(roles):
        if role == "system" and i > 0:
            out.append(
                _finding(
                    rec,
                    Code.SYSTEM_NOT_FIRST,
                    Severity.ERROR,
                    f"messages[{i}].role",
                    "a system message after the first turn",
                    "move it to the start",
                )
            )
        if i > 0 and role == roles[i - 1] and role in ("user", "assistant"):
            out.append(
                _finding(
                    rec,
                    Code.ROLE_ORDER,
                    Severity.WARNING,
                    f"messages[{i}].role",
                    f"two {role} turns in a row",
                    "merge them, or insert the missing turn",
                )
            )
    return out


def check_content(rec: Record) -> list[Finding]:
    """No empty message (an assistant turn that only calls tools may have empty content), in the conversation and
    in a preference pair's rejected turns (an empty rejected reply teaches DPO to prefer anything to silence)."""
    out = []
    turns = [("messages", rec.messages), ("rejected", rec.rejected or [])]
    for field, messages in turns:
        for i, msg in enumerate(messages):
            if msg.get("tool_calls") or str(msg.get("content", "")).strip():
                continue
            role = msg.get("role", "assistant")
            out.append(
                _finding(
                    rec,
                    Code.EMPTY_CONTENT,
                    Severity.ERROR if role == "assistant" else Severity.WARNING,
                    f"{field}[{i}].content",
                    f"empty {'rejected ' if field == 'rejected' else ''}{role} message",
                    "write the content or remove the turn" if field == "messages" else "write the rejected reply",
                )
            )
    return out


def _declared_tools(rec: Record) -> tuple[dict, list[Finding]]:
    """name -> parameters JSON Schema (or None) of the record's `tools`, and findings for unusable declarations."""
    declared, out = {}, []
    for i, tool in enumerate(rec.tools or []):
        fn = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            out.append(
                _finding(
                    rec,
                    Code.BAD_TOOL_DECLARATION,
                    Severity.ERROR,
                    f"tools[{i}]",
                    "a tool declaration needs function.name",
                    '{"type": "function", "function": {"name": "f", "parameters": {...}}}',
                )
            )
            continue
        params = fn.get("parameters")
        problem = schema_problem(params) if params is not None else None
        if problem:
            out.append(
                _finding(
                    rec,
                    Code.BAD_TOOL_DECLARATION,
                    Severity.ERROR,
                    f"tools[{i}].function.parameters",
                    f"not a valid JSON Schema: {problem}",
                    "fix the tool's parameters schema",
                )
            )
            params = None
        declared[fn["name"]] = params
    return declared, out


def check_tool_calls(rec: Record) -> list[Finding]:
    """Tool declarations are usable; every called function is declared in the record's `tools`, and its arguments
    fit the declared JSON Schema."""
    if rec.tools is None:
        return []
    declared, out = _declared_tools(rec)
    for i, msg in enumerate(rec.messages):
        for j, call in enumerate(msg.get("tool_calls") or []):
            fn = call.get("function") or {}
            name, where = fn.get("name"), f"messages[{i}].tool_calls[{j}].function"
            if name not in declared:
                out.append(
                    _finding(
                        rec,
                        Code.UNDECLARED_TOOL,
                        Severity.ERROR,
                        f"{where}.name",
                        f"calls {name!r}, which is not among the declared tools",
                        f"declared: {', '.join(sorted(map(str, declared))) or 'none'}",
                    )
                )
            elif isinstance(declared[name], dict):
                error = validator_for(declared[name]).first_error(fn.get("arguments", {}))
                if error:
                    path, message = error
                    out.append(
                        _finding(
                            rec,
                            Code.TOOL_ARGS_INVALID,
                            Severity.ERROR,
                            f"{where}.arguments{'' if path == '(root)' else '.' + path}",
                            f"arguments do not match {name}'s parameters: {message}",
                            "fix the call, or the tool's declared parameters",
                        )
                    )
    return out


def check_sensitive(rec: Record) -> list[Finding]:
    """Personal data (warning) and secrets (error) in any message; see `tunesmith.data.pii`."""
    return sensitive_findings(rec)


def check_stale_facts(rec: Record) -> list[Finding]:
    """Prices, dates, versions, URLs, policy numbers, "as of" in replies; see `tunesmith.data.stale_facts`."""
    return stale_fact_findings(rec)


def check_keys(rec: Record) -> list[Finding]:
    """Keys the record's format does not define: a typo (`mesages`), or data a converter silently drops."""
    import difflib

    out = []
    for path in rec.unknown_keys:
        key = path.rsplit(".", 1)[-1]
        in_message = "." in path
        known = MESSAGE_KEYS if in_message else FORMAT_KEYS.get(rec.format, set()) | META_KEYS
        close = difflib.get_close_matches(key, sorted(known), n=1)
        effect = (
            "it stays in the message and goes to the chat template, which usually ignores it"
            if in_message
            else f"a {rec.format} record has no such key, so it is dropped"
        )
        out.append(
            _finding(
                rec,
                Code.UNKNOWN_KEY,
                Severity.WARNING,
                path,
                f"unknown key {key!r}: {effect}",
                f"did you mean {close[0]!r}?" if close else "remove it, or move it under `meta`",
            )
        )
    return out


RECORD_CHECKS: list[Callable[[Record], list[Finding]]] = [
    check_turns,
    check_content,
    check_keys,
    check_tool_calls,
    check_sensitive,
    check_stale_facts,
]


def template_findings(rec: Record, tok, max_len: int, system_prompt: str | None = None, lengths=None) -> list[Finding]:
    """Render with the model's real chat template and tokenizer: length, truncation, loss mask, end-of-turn.

    `system_prompt` is added to conversations without one, as training does; each rendered length (in tokens,
    before truncation) is appended to `lengths` when given.
    """
    from tunesmith.chat import TemplateError, training_example

    messages = rec.messages
    if system_prompt and not (messages and messages[0].get("role") == "system"):
        messages = [{"role": "system", "content": system_prompt}] + messages
    try:
        ex = training_example(tok, messages, rec.tools, max_len)
    except TemplateError as exc:
        return [_template_error(rec, str(exc), "use a model whose chat template renders conversations turn by turn")]
    except Exception as exc:
        return [
            _template_error(
                rec,
                f"the chat template cannot render it: {type(exc).__name__}: {exc}",
                "check roles and contents against what the model's template expects",
            )
        ]
    if lengths is not None:
        lengths.append(len(ex.input_ids) + ex.dropped_assistant_tokens)
    return _trained_part_findings(rec, ex, tok, max_len)


def _template_error(rec: Record, message: str, fix: str) -> Finding:
    return _finding(rec, Code.TEMPLATE_ERROR, Severity.ERROR, "messages", message, fix)


def _trained_part_findings(rec: Record, ex, tok, max_len: int) -> list[Finding]:
    """What is wrong with the trained part of a rendered example: truncated, empty, or without the end of turn."""
    out = []
    if ex.dropped_assistant_tokens:
        total = len(ex.input_ids) + ex.dropped_assistant_tokens  # at least; prompt tokens past the cut are not counted
        out.append(
            _finding(
                rec,
                Code.TRUNCATED,
                Severity.WARNING,
                "messages",
                f"longer than max_seq_len={max_len}: truncation drops {ex.dropped_assistant_tokens} "
                f"assistant token(s) (>= {total} tokens in all)",
                "raise data.max_seq_len, shorten the conversation, or split it",
            )
        )
    if ex.assistant_tokens == 0:
        out.append(
            _finding(
                rec,
                Code.EMPTY_LOSS_MASK,
                Severity.ERROR,
                "messages",
                "no token would carry loss (nothing to learn from this example)",
                "make sure it ends with an assistant reply inside max_seq_len",
            )
        )
    elif not ex.dropped_assistant_tokens and not _trains_end_of_turn(ex, tok):
        out.append(
            _finding(
                rec,
                Code.NO_END_OF_TURN,
                Severity.ERROR,
                "messages",
                f"the end-of-turn token {tok.eos_token!r} is not in the trained part",
                "the model would never learn to stop: fix the chat template or the eos token",
            )
        )
    return out


def _trains_end_of_turn(ex, tok) -> bool:
    """Whether the tokenizer's end-of-turn (eos) token is among the labels that carry loss."""
    from tunesmith.chat import IGNORE

    eot = tok.convert_tokens_to_ids(tok.eos_token) if tok.eos_token else None
    return eot is not None and eot in [lab for lab in ex.labels if lab != IGNORE]
