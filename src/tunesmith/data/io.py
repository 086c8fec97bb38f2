"""Reading data files: JSONL and CSV with line numbers, problems reported by line. Input files are only ever read
(writing goes through `tunesmith.files`)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tunesmith.errors import Problem, TunesmithError

MAX_PROBLEMS_SHOWN = 10
MAX_LINE_BYTES = 8 << 20  # one record; longer lines are reported, not parsed


def _require_file(path: Path) -> None:
    if not path.exists():
        raise TunesmithError(
            "Data file not found",
            [Problem(str(path), "no such file", "check data.train in tunesmith.yaml or the path you gave")],
        )
    if path.is_dir():
        raise TunesmithError("Expected a file", [Problem(str(path), "is a directory", "name a .jsonl or .csv file")])


def _open_text(path: Path):
    _require_file(path)
    return path.open(encoding="utf-8", newline="")


def _open_lines(path: Path):
    """Binary lines of a JSONL file, transparently gunzipped for `.gz`; refuses directories and binary files."""
    import gzip
    import zlib

    _require_file(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(8192)
    except (OSError, EOFError, zlib.error) as exc:
        raise TunesmithError(
            "Cannot read data file", [Problem(str(path), str(exc), "is it a valid .gz file?")]
        ) from None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise TunesmithError(
            "Not a text file",
            [
                Problem(
                    str(path),
                    "the file is UTF-16, not UTF-8 (what Windows PowerShell's `>` writes)",
                    "save it as UTF-8, e.g. `Get-Content in.jsonl | Set-Content -Encoding utf8 out.jsonl`",
                )
            ],
        )
    if b"\0" in head:
        raise TunesmithError(
            "Not a text file",
            [Problem(str(path), "contains NUL bytes (a binary file?)", "give a JSONL file: one JSON object per line")],
        )
    if not head.strip():
        raise empty_data_file(path)
    return opener(path, "rb")


def empty_data_file(
    path: str | Path, message: str = "the file has no records", hint: str = "add records, or remove it from data.train"
) -> TunesmithError:
    """The error for a data file with nothing to read (blank, no rows under a header, an empty table)."""
    return TunesmithError("Empty data file", [Problem(str(path), message, hint)])


@dataclass(frozen=True)
class LineProblem:
    """A line that is not a JSON object: what is wrong with it and how to fix it."""

    message: str
    hint: str


def _physical_lines(fh, limit: int) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, bytes, size) per line; bytes is None for a line over `limit` bytes, which is skipped in
    chunks so a 50 MB (or 50 GB) line never sits in memory."""
    number = 0
    while True:
        raw = fh.readline(limit + 1)
        if not raw:
            return
        number += 1
        if len(raw) <= limit or raw.endswith(b"\n"):
            yield number, raw, len(raw)
            continue
        size = len(raw)
        while raw and not raw.endswith(b"\n"):
            raw = fh.readline(1 << 20)
            size += len(raw)
        yield number, None, size


def parse_line(number: int, raw: bytes | None, size: int) -> dict | LineProblem | None:
    """One physical line -> its JSON object, a LineProblem, or None for a blank line."""
    if raw is None:
        return LineProblem(
            f"line is {size / 2**20:.1f} MiB, over the {MAX_LINE_BYTES // 2**20} MiB limit for one record",
            "a training example is a few thousand tokens; is this a dump of a whole file on one line?",
        )
    if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return LineProblem(
            f"not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})",
            "save the file as UTF-8 (it looks like Latin-1 or Windows-1252)",
        )
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return LineProblem(
            f"not valid JSON ({exc.msg} at column {exc.colno})", "each line must be one complete JSON object"
        )
    except RecursionError:
        return LineProblem("JSON nested too deeply", "a record is a flat object with a list of messages")
    except ValueError as exc:  # an integer of more than 4300 digits (Python's int-from-string limit)
        return LineProblem(f"not valid JSON ({exc})", "each line must be one complete JSON object")
    if not isinstance(obj, dict):
        return LineProblem(f"expected a JSON object, got {type(obj).__name__}", "wrap the record in {...}")
    return obj


def scan_jsonl(path: str | Path) -> Iterator[tuple[int, dict | LineProblem]]:
    """Stream (line number, object or LineProblem) for each non-blank line, one line in memory at a time.

    Handles a UTF-8 BOM, CRLF line ends and `.jsonl.gz`; a line that is not UTF-8 (e.g. Latin-1), not JSON, not
    an object, or over MAX_LINE_BYTES is yielded as a LineProblem and the rest of the file is still read.
    """
    for number, raw, size in raw_lines(path):
        item = parse_line(number, raw, size)
        if item is not None:
            yield number, item


def raw_lines(path: str | Path) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, bytes or None when over MAX_LINE_BYTES, size) per line, unparsed: for parsing elsewhere."""
    import zlib

    path = Path(path)
    number = 0
    with _open_lines(path) as fh:
        try:
            for number, raw, size in _physical_lines(fh, MAX_LINE_BYTES):
                yield number, raw, size
        except (OSError, EOFError, zlib.error) as exc:  # a .gz file corrupt or cut short past its first block
            raise TunesmithError(
                "Cannot read data file",
                [
                    Problem(
                        f"{path}:{number + 1}",
                        f"cannot decompress from this line on ({type(exc).__name__}: {exc})",
                        "the compressed file is damaged or truncated; compress it again",
                    )
                ],
            ) from None


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; every bad line is reported at once, by number."""
    path = Path(path)
    problems: list[Problem] = []
    rows: list[tuple[int, dict]] = []
    for number, item in scan_jsonl(path):
        if isinstance(item, LineProblem):
            problems.append(Problem(f"{path}:{number}", item.message, item.hint))
        else:
            rows.append((number, item))
    if problems:
        raise TunesmithError.capped(
            f"Malformed JSONL: {len(problems)} bad line(s) in {path}", problems, MAX_PROBLEMS_SHOWN
        )
    yield from rows


def read_csv(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, row dict) for each CSV row; the line number is the row's first physical line."""
    path = Path(path)
    with _open_text(path) as fh:
        reader = csv.DictReader(fh)
        try:
            if fh.read(1) != "\ufeff":  # a UTF-8 BOM is not part of the first column's name
                fh.seek(0)
            _ = reader.fieldnames  # reads the header, so line_num now points at it
            rows = 0
            for row in reader:
                # line_num is the row's last physical line: back over the newlines inside its quoted cells (the
                # blank lines the reader skipped come before it, so counting on from the last row was wrong)
                cells = [*row.values(), *(row.get(reader.restkey) or [])]
                inner = sum(v.count("\n") for v in cells if isinstance(v, str))
                rows += 1
                yield reader.line_num - inner, row
        except UnicodeDecodeError:  # decoded in blocks, so find the bad byte's line in the raw file
            raw = path.read_bytes()
            try:
                raw.decode("utf-8")
                line, message = max(reader.line_num, 1), "not UTF-8"
            except UnicodeDecodeError as exc:
                line = raw[: exc.start].count(b"\n") + 1
                message = f"not UTF-8 (byte 0x{raw[exc.start]:02x})"
            raise TunesmithError(
                "Malformed CSV",
                [Problem(f"{path}:{line}", message, "save the file as UTF-8 (it looks like Latin-1 or Windows-1252)")],
            ) from None
        except csv.Error as exc:
            raise TunesmithError(
                "Malformed CSV", [Problem(f"{path}:{max(reader.line_num, 1)}", str(exc), "check quoting on that line")]
            ) from None
    if not rows:
        raise empty_data_file(path, "the CSV file has no rows under its header", "add rows, or give another file")
