"""Masking preview: a few training examples rendered with the model's chat template, the tokens that carry loss
marked. The mask is the one training uses (`tunesmith.chat.training_example`), so what is shown is what trained.

    preview = masking_preview(tok, records, task, max_len=512)
    html = masking_html(preview)       # escaped spans; <span class="ts-loss"> for tokens that carry loss
"""

from __future__ import annotations

import html
from typing import Any

from tunesmith.chat import IGNORE, TemplateError, assistant_spans, training_example
from tunesmith.eval.suite import with_system_prompt

PREVIEW_EXAMPLES = 3  # training examples shown


def pick_examples(records: list, n: int = PREVIEW_EXAMPLES) -> list:
    """The first record, the first with several assistant turns, the first with tools; then the next ones."""
    picked: list = []
    fresh = lambda r: all(r is not p for p in picked)
    for test in (
        lambda r: True,
        lambda r: sum(m.get("role") == "assistant" for m in r.messages) > 1,
        lambda r: bool(r.tools) or any(m.get("tool_calls") for m in r.messages),
    ):
        hit = next((r for r in records if test(r) and fresh(r)), None)
        if hit is not None:
            picked.append(hit)
    picked += [r for r in records[: n + len(picked)] if fresh(r)][: max(0, n - len(picked))]
    return picked[:n]


def preview_example(
    tok, messages: list[dict], tools: list | None, max_len: int, prompt_loss: bool = False
) -> dict[str, Any]:
    """Segments of the rendered conversation, each `{"text", "loss"}`, with counts and the end-of-turn facts the
    stop-token check reads (`eos_in_loss`, `eos_ends_turn`). `prompt_loss`: the run trained on the user turns too."""
    ex = training_example(tok, messages, tools, max_len, prompt_loss=prompt_loss)
    text, spans = assistant_spans(tok, messages, tools)
    offsets = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    kept = len(ex.input_ids)
    # Token k shows text[start_k:start_(k+1)]: the text between tokens (a trimmed space) goes with the token before
    # it, so the segments put together are the rendered text exactly (up to the truncation point).
    starts, prev = [], 0
    for s, e in offsets:
        prev = max(prev, s if e > s else prev)
        starts.append(prev)
    if starts:
        starts[0] = 0
    starts.append(len(text))
    segments: list[dict[str, Any]] = []
    for k in range(kept):
        piece = text[starts[k] : starts[k + 1]]
        loss = ex.labels[k] != IGNORE
        if segments and segments[-1]["loss"] == loss:
            segments[-1]["text"] += piece
        elif piece:
            segments.append({"text": piece, "loss": loss})
    eos = tok.eos_token or ""
    trained = {lab for lab in ex.labels if lab != IGNORE}
    return {
        "segments": segments,
        "tokens": len(ex.input_ids),
        "loss_tokens": sum(lab != IGNORE for lab in ex.labels),
        "truncated_tokens": len(offsets) - kept,
        "end_of_turn": eos,
        "eos_in_loss": tok.eos_token_id in trained if eos else None,
        "eos_ends_turn": all(eos in text[a:b] for a, b in spans) if eos and spans else None,
    }


def masking_preview(
    tok, records: list, task=None, max_len: int = 1024, n: int = PREVIEW_EXAMPLES, prompt_loss: bool = False
) -> list[dict]:
    """For a few training records: where it is (file:line) and its rendered text in segments that carry loss or
    not. A record the template cannot render says why instead (`error`)."""
    out = []
    for rec in pick_examples(records, n):
        messages = with_system_prompt(rec.messages, task) if task is not None else rec.messages
        try:
            out.append({"where": rec.where, **preview_example(tok, messages, rec.tools, max_len, prompt_loss)})
        except TemplateError as exc:
            out.append({"where": rec.where, "segments": [], "error": str(exc)})
    return out


MASKING_CSS = (
    ".ts-mask{margin:.5em 0}.ts-mask-where{font:600 .85em sans-serif;color:#555}"
    ".ts-mask pre{white-space:pre-wrap;word-break:break-word;background:#f6f6f6;padding:.5em;margin:.2em 0}"
    ".ts-loss{background:#c8f0c8;outline:1px solid #7ac27a}.ts-mask-error{color:#b00}"
)


def masking_html(preview: list[dict], style: bool = True) -> str:
    """The preview as an HTML fragment: per example its place and the rendered text, every piece escaped, the
    pieces that carry loss in `<span class="ts-loss">` (with a small <style> unless `style=False`)."""
    parts = [f"<style>{MASKING_CSS}</style>"] if style else []
    for item in preview:
        where = html.escape(str(item.get("where", "")))
        if item.get("error"):
            parts.append(
                f'<div class="ts-mask"><div class="ts-mask-where">{where}</div>'
                f'<div class="ts-mask-error">{html.escape(item["error"])}</div></div>'
            )
            continue
        body = "".join(
            f'<span class="ts-loss">{html.escape(s["text"])}</span>' if s["loss"] else html.escape(s["text"])
            for s in item["segments"]
        )
        counts = f" ({item['loss_tokens']} of {item['tokens']} tokens carry loss)" if "tokens" in item else ""
        parts.append(
            f'<div class="ts-mask"><div class="ts-mask-where">{where}{html.escape(counts)}</div><pre>{body}</pre></div>'
        )
    return "\n".join(parts)
