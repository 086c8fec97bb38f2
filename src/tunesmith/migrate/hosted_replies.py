"""The hosted fine-tuned model's replies a team already has, brought into an imported project
(`tunesmith import openai-job ... --hosted-replies replies.jsonl`) as the recorded baseline `hosted`.

    replies = read_replies(Path("replies.jsonl"))          # checked: each line names its case and has a string output
    gaps = coverage(replies, {"data/train.jsonl": rows}, "data/train.jsonl")   # gaps.missing, gaps.unmatched

A line is what `tunesmith eval score` reads: the case it answers by `prompt` (the user message, matched to a
held-out case's last turn) or by `id` (IFEval's `key`), and the reply as `output` (or `response`). A line that is
not that is a problem naming file:line and the field; all of them are reported at once and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tunesmith.data.formats import to_record
from tunesmith.data.io import LineProblem, scan_jsonl
from tunesmith.errors import Problem, TunesmithError

OPTION = "--hosted-replies"
SHAPE = '{"prompt": "the user message it answers", "output": "the hosted model\'s reply"} (or `id` for `prompt`)'


@dataclass(frozen=True)
class Reply:
    """One recorded reply: its line, the case it names (`prompt` or `id`) and the line as it is."""

    line: int
    prompt: str | None
    id: str | None
    row: dict[str, Any]


@dataclass
class Coverage:
    """How the replies meet the project's data: the prompts (file:line) of the file the held-out cases are drawn
    from that have no reply, and the reply lines (file:line) that answer no prompt of the data."""

    prompts: int
    missing: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)


def read_replies(path: Path) -> list[Reply]:
    """Every line of `path`, checked; a missing or empty file, or any bad line, is a TunesmithError."""
    if not path.is_file():
        raise TunesmithError(
            "Hosted replies not found", [Problem(str(path), "no such file", f"{OPTION} names a JSONL file: {SHAPE}")]
        )
    replies, problems = [], []
    for line, item in _lines(path):
        if isinstance(item, LineProblem):
            problems.append(Problem(f"{path}:{line}", item.message, item.hint))
        elif (problem := _line_problem(item)) is not None:
            problems.append(Problem(f"{path}:{line} [{problem[0]}]", problem[1], SHAPE))
        else:
            rid = item.get("id", item.get("key"))
            replies.append(Reply(line, item.get("prompt") if rid is None else None, _text(rid), item))
    if problems:
        raise TunesmithError.capped(f"{len(problems)} line(s) of {path} are not recorded replies", problems)
    if not replies:
        raise TunesmithError("No hosted replies", [Problem(str(path), "the file has no replies", SHAPE)])
    return replies


def _lines(path: Path) -> list[tuple[int, dict[str, Any] | LineProblem]]:
    """The file's lines; a file that cannot be read as JSONL at all (empty, binary) is named with the format."""
    try:
        return list(scan_jsonl(path))
    except TunesmithError as exc:
        raise TunesmithError(exc.title, [replace(p, hint=f"{OPTION}: {SHAPE}") for p in exc.problems]) from None


def _line_problem(obj: dict[str, Any]) -> tuple[str, str] | None:
    """(field, what is wrong) for a line that is not a recorded reply, else None."""
    rid = obj.get("id", obj.get("key"))
    if rid is None and not isinstance(obj.get("prompt"), str):
        keys = ", ".join(sorted(map(str, obj))) or "none"
        return "prompt", f"a reply needs the `prompt` it answers (a string) or an `id` (it has: {keys})"
    output = obj.get("output", obj.get("response"))
    if not isinstance(output, str):
        got = "none" if output is None else type(output).__name__
        return "output", f"a reply needs its text as a string `output` (got {got})"
    return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def coverage(
    replies: list[Reply], data: dict[str, list[dict[str, Any]]], held_out_from: str, base: Path | None = None
) -> Coverage:
    """Which prompts of the data file the held-out cases are drawn from (`held_out_from`, a name in `data`:
    `{name: rows}`) no reply answers, and which replies answer no prompt of any file, matched as `tunesmith run`
    matches them to held-out cases: by the prompt's last turn, or by the record's id. `base` (the replies' file)
    names the unmatched lines."""
    prompts, ids = set(), set()
    answered = {r.prompt for r in replies if r.prompt is not None} | {r.id for r in replies if r.id is not None}
    result = Coverage(prompts=0)
    for name, rows in data.items():
        for line, row in enumerate(rows, start=1):
            record = to_record(row, name, line)
            last = record.prompt[-1].get("content") if record.prompt else None
            last = last if isinstance(last, str) else None  # content parts (a list) match no recorded prompt
            prompts.add(last)
            ids.add(record.id)
            if name != held_out_from:
                continue
            result.prompts += 1
            if last not in answered and (record.id is None or record.id not in answered):
                result.missing.append(record.where)
    prompts.discard(None)
    ids.discard(None)
    where = f"{base}:" if base is not None else "line "
    result.unmatched = [f"{where}{r.line}" for r in replies if r.prompt not in prompts and r.id not in ids]
    return result
