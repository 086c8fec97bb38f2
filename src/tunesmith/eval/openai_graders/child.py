"""The python grader's child process: run as a script by `tunesmith.eval.openai_graders.python`, never imported
by tunesmith (it uses the standard library only, and runs with `python -I`).

It reads `{"source": ..., "items": [{"sample": ..., "item": ...}, ...]}` as JSON on stdin, runs the source, writes
`{"ready": true}` (or `{"error": ...}` when the source does not load), then one JSON line per item, in order:
`{"score": x}`, or `{"error": ...}` when grade() raised or returned what is not a finite number. What the grader
prints goes to stderr, never into those lines.
"""

import json
import math
import os
import sys
import traceback

WHERE = "<python grader>"


def describe(exc: BaseException) -> str:
    """The error as `Type: message (line N)`, N being the grader's own line where it happened."""
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == WHERE]
    return f"{type(exc).__name__}: {exc}" + (f" (line {lines[-1]})" if lines else "")


def result(value) -> dict:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return {"error": f"grade returned {type(value).__name__}, not a number"}
    try:
        number = float(value)
    except OverflowError:
        return {"error": "grade returned an integer too large for a float"}
    return {"score": number} if math.isfinite(number) else {"error": f"grade returned {number}"}


def main() -> None:
    job = json.load(sys.stdin)
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the grader's prints, even to file descriptor 1, go where stderr goes
    sys.stdout = sys.stderr

    def send(obj: dict) -> None:
        protocol.write(json.dumps(obj) + "\n")
        protocol.flush()

    namespace = {"__name__": "grader"}
    try:
        exec(compile(job["source"], WHERE, "exec"), namespace)
        grade = namespace["grade"]
    except BaseException as exc:
        send({"error": f"the source did not load: {describe(exc)}"})
        return
    send({"ready": True})
    for entry in job["items"]:
        try:
            send(result(grade(entry["sample"], entry["item"])))
        except BaseException as exc:
            send({"error": describe(exc)})


if __name__ == "__main__":
    main()
