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


def _require_file(path: Path) -> None:
    if not path.exists():
        raise TunesmithError("Data file not found", [Problem(str(path), "no such file",
                                                             "check data.train in tunesmith.yaml or the path you gave")])
    if path.is_dir():
        raise TunesmithError("Expected a file", [Problem(str(path), "is a directory", "name a .jsonl or .csv file")])


def _open_text(path: Path):
    _require_file(path)
    return path.open(encoding="utf-8", newline="")


def _open_lines(path: Path):
    """Binary lines of a JSONL file, transparently gunzipped for `.gz`; refuses directories and binary files."""
    import gzip

    _require_file(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(8192)
    except (OSError, EOFError) as exc:
        raise TunesmithError("Cannot read data file", [Problem(str(path), str(exc), "is it a valid .gz file?")]) \
            from None
    if b"\0" in head:
        raise TunesmithError("Not a text file", [Problem(str(path), "contains NUL bytes (a binary file?)",
                                                         "give a JSONL file: one JSON object per line")])
    if not head.strip():
        raise TunesmithError("Empty data file", [Problem(str(path), "the file has no records",
                                                         "add records, or remove it from data.train")])
    return opener(path, "rb")


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; every bad line is reported at once, by number.

    Handles a UTF-8 BOM, CRLF line ends and `.jsonl.gz`; a line that is not UTF-8 (e.g. Latin-1) is reported
    with its line and column while the rest of the file is still read.
    """
    path = Path(path)
    problems: list[Problem] = []
    rows: list[tuple[int, dict]] = []
    with _open_lines(path) as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.append(Problem(f"{path}:{number}", f"not UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                                        f"{exc.start + 1})", "save the file as UTF-8 (it looks like Latin-1 or "
                                        "Windows-1252)"))
                continue
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
        if fh.read(1) != "\ufeff":  # a UTF-8 BOM is not part of the first column's name
            fh.seek(0)
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
