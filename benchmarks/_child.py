"""A benchmark's settings measured each in a fresh process: the parent runs its own script again with `--child`
options, the child prints one `RESULT {json}` line, and the parent reads the figures back from it.

    from _child import child_result, print_result

    if args.child:
        print_result(measure(args.child))  # in the child
        return
    figures = {name: child_result(__file__, "--child", name) for name in SETTINGS}  # in the parent
"""

from __future__ import annotations

import json
import subprocess
import sys

RESULT = "RESULT "


def print_result(result: dict) -> None:
    """The child's side: its figures, on the one line the parent reads."""
    print(RESULT + json.dumps(result, default=str))


def child_result(script: str, *args: str, env: dict[str, str] | None = None) -> dict:
    """The parent's side: run `script` with `args` in a fresh Python (with `env` as its whole environment when
    given) and return its figures (raises `subprocess.CalledProcessError` when the child fails)."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith(RESULT))[len(RESULT) :])
