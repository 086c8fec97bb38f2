"""Rendering conversations with the model's own chat template, and the training label mask.

Most chat templates (SmolLM2's among them) have no `{% generation %}` markers, so `assistant_only_loss` cannot
ask the template which tokens are the assistant's. tunesmith finds them by rendering incrementally: the text of
assistant turn i is what `messages[:i+1]` adds to `messages[:i]` + the generation prompt, cut right after the
end-of-turn token. Character spans are mapped to tokens through the tokenizer's offsets, so the mask is exact for
any template with this prefix property (and a clear error names the record when a template lacks it).

    ids, labels = training_example(tok, record.messages, record.tools, max_len=512)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

IGNORE = -100


@dataclass
class TrainingExample:
    input_ids: list[int]
    labels: list[int]
    assistant_tokens: int  # tokens that carry loss, after truncation
    dropped_assistant_tokens: int  # assistant tokens lost to truncation


class TemplateError(ValueError):
    """The chat template cannot render a conversation in a way tunesmith can mask."""


def _render(tok, messages: list[dict], tools: list | None, add_generation_prompt: bool = False) -> str:
    kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": add_generation_prompt}
    if tools:
        kwargs["tools"] = tools
    return tok.apply_chat_template(messages, **kwargs)


def _tool_call_text(call: dict) -> str:
    fn = call.get("function") or {}
    return (
        "<tool_call>\n"
        + json.dumps({"name": fn.get("name"), "arguments": fn.get("arguments", {})}, ensure_ascii=False)
        + "\n</tool_call>"
    )


def prepare_messages(tok, messages: list[dict], tools: list | None) -> tuple[list[dict], list | None]:
    """Messages and tools as this template can render them.

    Templates that know tools render them natively. For those that ignore them (SmolLM2), tool calls become
    Hermes-style `<tool_call>{json}</tool_call>` text in the assistant turn and declared tools go into the system
    prompt, so nothing of a tool conversation is silently dropped.
    """
    has_calls = any(m.get("tool_calls") for m in messages)
    if not has_calls and not tools:
        return messages, tools
    names = [c["function"]["name"] for m in messages for c in m.get("tool_calls") or []]
    names += [(t.get("function") or t).get("name", "") for t in tools or [] if isinstance(t, dict)]
    try:
        probe = _render(tok, messages, tools)
    except Exception:
        probe = ""
    if all(name in probe for name in names if name):
        return messages, tools
    out = []
    for m in messages:
        weight = {"weight": m["weight"]} if "weight" in m else {}  # a reply kept as context stays one
        if m.get("tool_calls"):
            text = "\n".join(
                [m.get("content") or ""] * bool(m.get("content")) + [_tool_call_text(c) for c in m["tool_calls"]]
            )
            out.append({"role": "assistant", "content": text, **weight})
        else:
            out.append({k: v for k, v in m.items() if k in ("role", "content", "weight")})
    if tools:
        decl = (
            "You can call these tools:\n<tools>\n"
            + "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
            + '\n</tools>\nCall one as <tool_call>{"name": ..., "arguments": {...}}</tool_call>.'
        )
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + decl}
        else:
            out.insert(0, {"role": "system", "content": decl})
    return out, None


def render_prompt(tok, messages: list[dict], tools: list | None = None) -> str:
    """The text a model is given to produce the next assistant turn."""
    messages, tools = prepare_messages(tok, messages, tools)
    return _render(tok, messages, tools, add_generation_prompt=True)


def assistant_spans(tok, messages: list[dict], tools: list | None = None) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of each assistant turn (content + end-of-turn token) that
    carries loss: a turn with `weight: 0` is context only."""
    messages, tools = prepare_messages(tok, messages, tools)
    full = _render(tok, messages, tools)
    eot = tok.eos_token or ""
    spans = []
    for i, msg in enumerate(messages):
        if msg.get("role") != "assistant" or msg.get("weight") == 0:
            continue
        before = _render(tok, messages[:i], tools, add_generation_prompt=True) if i else ""
        upto = _render(tok, messages[: i + 1], tools)
        if not (upto.startswith(before) and full.startswith(upto)):
            raise TemplateError(f"the chat template does not render turn {i} as a prefix of the conversation")
        start, end = len(before), len(upto)
        cut = full.rfind(eot, start, end) if eot else -1
        spans.append((start, cut + len(eot) if cut >= 0 else end))
    return full, spans


def user_spans(tok, messages: list[dict], tools: list | None, full: str) -> list[tuple[int, int]]:
    """The character spans of each user turn's text in `full` (the rendered conversation): the text the template
    adds for turn i, searched for the message's content from its end, so the role header, the end-of-turn token
    and any default system prompt the template adds stay outside."""
    messages, tools = prepare_messages(tok, messages, tools)
    spans = []
    for i, msg in enumerate(messages):
        content = msg.get("content")
        if msg.get("role") != "user" or not isinstance(content, str) or not content:
            continue
        start = len(_render(tok, messages[:i], tools)) if i else 0
        end = len(_render(tok, messages[: i + 1], tools))
        at = full.rfind(content, start, end)
        if at >= 0:
            spans.append((at, at + len(content)))
    return spans


def training_example(
    tok,
    messages: list[dict],
    tools: list | None = None,
    max_len: int = 1024,
    finished: bool = True,
    prompt_loss: bool = False,
) -> TrainingExample:
    """Token ids and labels with loss on every assistant turn and its end-of-turn token, nothing else. An
    unfinished final reply (`finished=False`: a teacher's reply cut at its token limit) keeps the loss on its text
    but not on the final end-of-turn token, so training never teaches the model to stop where the cut fell.
    `prompt_loss` puts loss on the text of the user's turns too (`train.prompt_loss`); `assistant_tokens` still
    counts the replies' tokens only."""
    text, spans = assistant_spans(tok, messages, tools)
    prompts = user_spans(tok, messages, tools, text) if prompt_loss else []
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = [IGNORE] * len(ids)
    replies = [False] * len(ids)
    for k, (s, e) in enumerate(offsets):
        if e > s and any(a <= s < b for a, b in spans):
            labels[k], replies[k] = ids[k], True
        elif e > s and any(a <= s < b for a, b in prompts):
            labels[k] = ids[k]
    if not finished:
        last = max((k for k, reply in enumerate(replies) if reply), default=None)
        if last is not None and ids[last] == tok.eos_token_id:
            labels[last], replies[last] = IGNORE, False
    total = sum(replies)
    ids, labels = ids[:max_len], labels[:max_len]
    kept = sum(replies[:max_len])
    return TrainingExample(ids, labels, kept, total - kept)
