"""OpenAI's python grader: `source` defines `grade(sample, item) -> float`, run in a subprocess, never in tunesmith.

    {"type": "python", "source": "def grade(sample, item):\\n    return float(sample['output_text'] == item['answer'])",
     "timeout": 5, "pass_threshold": 1.0}

`sample` is `{"output_text", "output_json"}` and `item` the case's data, as in templates. Every reply of a scoring
call (an eval suite, a GRPO batch) is graded by one child process (`child.py`, run with the interpreter tunesmith
runs on, in isolated mode), so a suite costs one interpreter start. Each reply has `timeout` seconds (default 5); a
grade() that raises, runs past its time or returns what is not a finite number scores 0 for that reply, with the
reason in the details, and the others are still graded (after a timeout, in a fresh child). A reply passes at
`pass_threshold`, by default 1.0: full marks. A subprocess is not a sandbox: the source runs with the user's rights.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tunesmith.eval.openai_graders.base import Grade, Host, Item, scored
from tunesmith.eval.openai_graders.templates import item_of, sample_of
from tunesmith.scorer_specs.graders import PYTHON_TIMEOUT_S

CHILD = Path(__file__).with_name("child.py")
LOAD_TIMEOUT_S = 20.0  # the interpreter's start and the source's own imports, before the first reply's time


def python_grader(spec: dict[str, Any], items: list[Item], host: Host) -> list[Grade]:
    timeout = float(spec.get("timeout", PYTHON_TIMEOUT_S))
    threshold = float(spec.get("pass_threshold", 1.0))
    payloads = [{"sample": sample_of(it.output), "item": item_of(it.case)} for it in items]
    outcomes = run_python(spec["source"], payloads, timeout)
    return [scored(o, threshold) if isinstance(o, float) else Grade(False, 0.0, f"scored 0: {o}") for o in outcomes]


def run_python(source: str, payloads: list[dict], timeout_s: float) -> list[float | str]:
    """grade(sample, item) of each payload: its score, or why it has none. One child for all of them; after a
    reply that hangs (or a child that dies), a fresh child for the rest."""
    results: list[float | str] = []
    while len(results) < len(payloads):
        results += _child_run(source, payloads[len(results) :], timeout_s)
    return results


def _child_run(source: str, payloads: list[dict], timeout_s: float) -> list[float | str]:
    """Scores from one child, in order, until all are done or one fails the child (at least one result)."""
    proc = subprocess.Popen(
        [sys.executable, "-I", str(CHILD)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        start_new_session=True,  # its own process group: killed with whatever the grader started
    )
    try:
        lines = _lines(proc.stdout)
        with contextlib.suppress(BrokenPipeError, OSError):  # a child that died at once says so below
            proc.stdin.write(json.dumps({"source": source, "items": payloads}))
            proc.stdin.close()
        first = _next(lines, LOAD_TIMEOUT_S + timeout_s)
        if "ready" not in first:
            why = first.get("error") or _gone(first, proc, LOAD_TIMEOUT_S + timeout_s, "loading the source")
            return [why] * len(payloads)
        results: list[float | str] = []
        for _ in payloads:
            line = _next(lines, timeout_s)
            if "score" in line or "error" in line:
                results.append(float(line["score"]) if "score" in line else str(line["error"]))
                continue
            results.append(_gone(line, proc, timeout_s, "grading"))
            break
        return results
    finally:
        _kill(proc)


def _lines(stream) -> queue.Queue:
    """The child's lines as they come (None at the end), read by a thread so the wait for each can time out."""
    found: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in stream:
            found.put(line)
        found.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return found


def _next(lines: queue.Queue, timeout_s: float) -> dict[str, Any]:
    """The child's next message; {"timeout": True} when none comes in time, {"exited": True} when it ended."""
    try:
        line = lines.get(timeout=timeout_s)
    except queue.Empty:
        return {"timeout": True}
    if line is None:
        return {"exited": True}
    try:
        message = json.loads(line)
    except json.JSONDecodeError:
        return {"error": f"the grader's process wrote {line[:80]!r}"}
    return message if isinstance(message, dict) else {"error": f"the grader's process wrote {line[:80]!r}"}


def _gone(message: dict, proc: subprocess.Popen, timeout_s: float, doing: str) -> str:
    if message.get("timeout"):
        return f"timed out after {timeout_s:g}s {doing}"
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=1)
    return f"the grader's process exited while {doing} (exit code {proc.returncode})"


def _kill(proc: subprocess.Popen) -> None:
    """The child and anything it started (its process group), done or not."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            proc.kill()
    proc.wait()
    if proc.stdout:
        proc.stdout.close()
