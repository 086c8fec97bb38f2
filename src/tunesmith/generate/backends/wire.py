"""What several backends use: the progress bar, messages in OpenAI's wire format, and short error text with any
key left out."""

from __future__ import annotations

import json


def progress_bar(label: str, total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    from tunesmith.progress import LoggedProgress

    progress = LoggedProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    return progress, progress.add_task(label, total=total, rate="")


def wire_messages(messages: list[dict]) -> list[dict]:
    """Messages as the OpenAI API wants them: tool-call arguments as JSON strings."""
    out = []
    for m in messages:
        if m.get("tool_calls"):
            m = {
                **m,
                "tool_calls": [
                    {
                        **c,
                        "type": c.get("type", "function"),
                        "id": c.get("id", f"call_{j}"),
                        "function": {**c["function"], "arguments": json.dumps(c["function"].get("arguments") or {})},
                    }
                    for j, c in enumerate(m["tool_calls"])
                ],
            }
        out.append(m)
    return out


def short_error(text: str, secret: str | None = None, limit: int = 200) -> str:
    """One line of at most `limit` characters, with `secret` (an API key) masked wherever it appears."""
    text = " ".join(str(text).split())
    if secret:
        text = text.replace(secret, "[redacted]")
    return text if len(text) <= limit else text[:limit] + "…"
