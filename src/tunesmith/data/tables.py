"""Reading the files data sets are kept in besides JSONL: Parquet and Arrow files and saved `datasets` directories
(`Dataset.save_to_disk`), streamed through the `datasets` library, and JSON-array `.json` files.

Each row comes with its 1-based row number, which stands where a JSONL record has its line: findings say
`FILE:ROW [field]`. A row that cannot be read is a `LineProblem` in its place, as in `io.scan_jsonl`.

    for row, item in scan_rows(Path("data/train.parquet")):   # item: a dict, or a LineProblem saying why not
        ...
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunesmith.data.io import LineProblem, empty_data_file
from tunesmith.errors import Problem, TunesmithError

TABLE_SUFFIXES = (".parquet", ".arrow")
READ_HINT = "is it a Parquet file, an Arrow stream file as `datasets` writes them, or a `save_to_disk` directory?"


def is_saved_dataset(path: Path) -> bool:
    """A directory written by `Dataset.save_to_disk` (or `DatasetDict.save_to_disk`, which holds splits)."""
    return path.is_dir() and (
        (path / "dataset_info.json").is_file()
        and (path / "state.json").is_file()
        or (path / "dataset_dict.json").is_file()
    )


def is_json_array(path: Path) -> bool:
    """A `.json` file whose first character (after a BOM and blanks) is `[`: a list of records."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    with path.open("rb") as fh:
        head = fh.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    return head.startswith(b"[")


def is_table(path: Path) -> bool:
    """Whether `scan_rows` reads this path (else it is JSONL, read by line)."""
    return path.suffix.lower() in TABLE_SUFFIXES or is_saved_dataset(path) or is_json_array(path)


def scan_rows(path: str | Path) -> Iterator[tuple[int, dict | LineProblem]]:
    """(row number, row or LineProblem) for each row of a table file; raises TunesmithError naming the file
    (and the row, when reading stops part-way) for a file that cannot be read."""
    path = Path(path)
    rows = _json_array_rows(path) if is_json_array(path) else _dataset_rows(path)
    number = 0
    for number, item in rows:
        yield number, item
    if number == 0:
        raise empty_data_file(path)


def _dataset_rows(path: Path) -> Iterator[tuple[int, dict | LineProblem]]:
    rows = iter(_open_dataset(path))
    number = 0
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except Exception as exc:
            what = f"{type(exc).__name__}: {exc}"
            raise TunesmithError(
                "Cannot read data file",
                [
                    Problem(f"{path}:{number + 1}", f"cannot read from row {number + 1} on ({what})", READ_HINT)
                    if number
                    else Problem(str(path), what, READ_HINT)
                ],
            ) from None
        number += 1
        yield number, {key: _without_nulls(value) for key, value in row.items()}


def _open_dataset(path: Path):
    """The rows of a Parquet or Arrow file or a saved data set, streamed (nothing is copied or cached)."""
    if not path.exists():
        raise TunesmithError(
            "Data file not found",
            [Problem(str(path), "no such file", "check data.train in tunesmith.yaml or the path you gave")],
        )
    import datasets

    try:
        if path.is_dir():
            data = datasets.load_from_disk(str(path))  # memory-mapped Arrow: rows are read as they are iterated
        elif path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            if pq.ParquetFile(str(path)).metadata.num_rows == 0:  # streaming it fails on an empty batch
                raise empty_data_file(path)
            data = datasets.IterableDataset.from_parquet(str(path))
        else:
            data = datasets.IterableDataset.from_file(str(path))
    except TunesmithError:
        raise
    except Exception as exc:
        raise TunesmithError(
            "Cannot read data file", [Problem(str(path), f"{type(exc).__name__}: {exc}", READ_HINT)]
        ) from None
    if isinstance(data, datasets.DatasetDict):
        splits = ", ".join(data)
        raise TunesmithError(
            "A data set with splits",
            [
                Problem(
                    str(path),
                    f"saved with splits ({splits}), not one set of rows",
                    f"name one split's directory, e.g. {path / next(iter(data), 'train')}",
                )
            ],
        )
    return data


def _without_nulls(value: Any) -> Any:
    """A nested Arrow value without the keys a struct column fills with null where a row has none (a message
    column's `tool_calls: null` beside every plain message); top-level columns keep theirs."""
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


_BLANKS = re.compile(r"\s*")


def _after_array(text: str, pos: int, number: int) -> Iterator[tuple[int, LineProblem]]:
    """A problem when anything but blanks follows the array's closing `]` (two arrays in one file: `cat a.json
    b.json` kept the first and dropped the rest without a word)."""
    rest = _BLANKS.match(text, pos).end()
    if rest < len(text):
        line = text.count("\n", 0, rest) + 1
        yield (
            number + 1,
            LineProblem(
                f"not valid JSON (text after the array's closing `]`, line {line})",
                "the file must be one JSON array of objects: merge the arrays, or write JSON Lines",
            ),
        )


def _json_array_rows(path: Path) -> Iterator[tuple[int, dict | LineProblem]]:
    """The elements of a JSON array, decoded one at a time; a broken element ends the file (nothing after it can
    be found) as a LineProblem, naming the line and column of the file where decoding failed."""
    raw = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise TunesmithError(
            "Cannot read data file",
            [
                Problem(
                    str(path),
                    f"not UTF-8 (byte 0x{raw[exc.start]:02x} on line {line})",
                    "save the file as UTF-8 (it looks like Latin-1 or Windows-1252)",
                )
            ],
        ) from None
    decoder, pos, number = json.JSONDecoder(), _BLANKS.match(text, 0).end() + 1, 0  # past the `[`
    while True:
        pos = _BLANKS.match(text, pos).end()
        if text.startswith("]", pos) and number == 0:
            yield from _after_array(text, pos + 1, number)
            return
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError, ValueError) as exc:
            what = (
                f"{exc.msg} at line {exc.lineno} column {exc.colno}"
                if isinstance(exc, json.JSONDecodeError)
                else type(exc).__name__
            )
            yield number + 1, LineProblem(f"not valid JSON ({what})", "the file must be one JSON array of objects")
            return
        number += 1
        yield (
            number,
            obj
            if isinstance(obj, dict)
            else LineProblem(
                f"expected a JSON object, got {type(obj).__name__}", "each element of the array is one record {...}"
            ),
        )
        pos = _BLANKS.match(text, pos).end()
        if text.startswith("]", pos):
            yield from _after_array(text, pos + 1, number)
            return
        if not text.startswith(",", pos):
            yield (
                number + 1,
                LineProblem(
                    f"not valid JSON (expected `,` or `]` after row {number})",
                    "the file must be one JSON array of objects",
                ),
            )
            return
        pos += 1
