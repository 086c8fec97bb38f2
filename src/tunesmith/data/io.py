"""Reading and writing files: JSONL and CSV with line numbers in; atomic writes out.

Every write goes to a temporary file in the same directory and is renamed into place, so a crash leaves either
the old file or the new one, never half of one. Input files are only ever read.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tunesmith.errors import Problem, TunesmithError

MAX_PROBLEMS_SHOWN = 10


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` through a temp file + rename (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _open_text(path: Path):
    if not path.exists():
        raise TunesmithError("Data file not found", [Problem(str(path), "no such file",
                                                             "check data.train in tunesmith.yaml or the path you gave")])
    if path.is_dir():
        raise TunesmithError("Expected a file", [Problem(str(path), "is a directory", "name a .jsonl or .csv file")])
    return path.open(encoding="utf-8", newline="")


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; every bad line is reported at once, by number."""
    path = Path(path)
    problems: list[Problem] = []
    rows: list[tuple[int, dict]] = []
    with _open_text(path) as fh:
        try:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    problems.append(Problem(f"{path}:{number}", f"not valid JSON ({exc.msg} at column {exc.colno})",
                                            "each line must be one complete JSON object"))
                    continue
                if not isinstance(obj, dict):
                    problems.append(Problem(f"{path}:{number}", f"expected a JSON object, got {type(obj).__name__}",
                                            "wrap the record in {...}"))
                    continue
                rows.append((number, obj))
        except UnicodeDecodeError as exc:
            raise TunesmithError("Data file is not UTF-8 text", [
                Problem(str(path), str(exc), "save the file as UTF-8")]) from None
    if problems:
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        if more:
            shown.append(Problem("", f"... and {more} more bad line(s)"))
        raise TunesmithError(f"Malformed JSONL: {len(problems)} bad line(s) in {path}", shown)
    yield from rows


def read_csv(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, row dict) for each CSV row; the line number is the row's first physical line."""
    path = Path(path)
    with _open_text(path) as fh:
        reader = csv.DictReader(fh)
        _ = reader.fieldnames  # reads the header, so line_num now points at it
        start = reader.line_num + 1
        try:
            for row in reader:
                yield start, row
                start = reader.line_num + 1
        except (csv.Error, UnicodeDecodeError) as exc:
            raise TunesmithError("Malformed CSV", [Problem(f"{path}:{reader.line_num}", str(exc),
                                                           "check quoting on that line")]) from None
