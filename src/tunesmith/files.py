"""Files written safely, and content hashes: the lowest layer, which every other module may use.

Every write goes to a temporary file in the same directory and is renamed into place, so a crash leaves either
the old file or the new one, never half of one. A full disk is a `DiskFull` error naming the file, never a traceback.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tunesmith.errors import Problem, TunesmithError, fail


class DiskFull(TunesmithError, OSError):
    """No space left on the device while writing: a user-facing error (the CLI prints it, no traceback) that is
    still an OSError for code that handles those. What was being replaced is untouched."""

    keep_run = True  # the pipeline keeps the run directory: free some space and re-run to resume it


def disk_full(path: str | Path, what: str, kept: str = "the previous file is untouched") -> DiskFull:
    err = DiskFull(
        f"Out of disk space {what}",
        [Problem(str(path), f"no space left on the device; {kept}", "free some space and run the command again")],
    )
    err.errno = errno.ENOSPC
    return err


OS_HINTS = {
    "FileNotFoundError": "check the path",
    "FileExistsError": "something is already there: choose another path, or remove it",
    "IsADirectoryError": "give a file here, not a directory",
    "NotADirectoryError": "a part of the path is a file, not a directory",
    "PermissionError": "check the permissions (ls -l), or use a path you may read and write",
}


def os_error(exc: OSError, what: str = "") -> TunesmithError:
    """An operating system's refusal (a missing file, a directory where a file goes, no permission, a refused
    connection) as the user-facing error it is: the path, the system's reason, and a hint. `DiskFull` stays."""
    if isinstance(exc, TunesmithError):
        return exc
    where = "" if exc.filename is None else str(exc.filename)
    if exc.filename2 is not None:
        where += f" -> {exc.filename2}"
    if isinstance(exc, ConnectionError):
        what, hint = what or "Cannot connect", "is the server running, and its address right?"
    else:
        what, hint = what or ("Cannot use a file" if where else "System error"), OS_HINTS.get(type(exc).__name__, "")
    message = exc.strerror.lower() if exc.strerror else str(exc)
    return TunesmithError(what, [Problem(where, message, hint or ("check the path" if where else ""))])


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


NEW_FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file here (read once, at import)


@contextmanager
def atomic_open(path: str | Path):
    """A text file handle whose contents replace `path` only when the block ends cleanly (temp file in the same
    directory, fsync, rename); on any error the temp file is removed and `path` is untouched. The file keeps the
    mode of the one it replaces, or gets a new file's (0666 less the umask), not mkstemp's private 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, stat.S_IMODE(path.stat().st_mode) if path.exists() else NEW_FILE_MODE)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC and not isinstance(exc, DiskFull):
            raise disk_full(path, "while writing it") from exc
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` through a temp file + rename (never a half-written file)."""
    with atomic_open(path) as fh:
        fh.write(text)
    return Path(path)


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


class JsonlWriter:
    """Stream rows to a JSONL file atomically (see `atomic_open`): `path` is replaced only on a clean exit.

    with JsonlWriter(run_dir / "kept.jsonl") as out:
        out.write({"messages": [...]})
    """

    def __init__(self, path: str | Path) -> None:
        self._file = atomic_open(path)

    def __enter__(self) -> JsonlWriter:
        self._fh = self._file.__enter__()
        return self

    def write(self, row: dict) -> None:
        self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")

    def __exit__(self, exc_type, exc, tb) -> bool | None:
        return self._file.__exit__(exc_type, exc, tb)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def data_sha256(path: str | Path) -> str:
    """Content hash of a data file, or of a directory (a saved data set): its files' names and contents."""
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{file.relative_to(path).as_posix()}\0{file_sha256(file)}\n".encode())
    return h.hexdigest()


def refuse_to_overwrite(inputs: Iterable[Path], *outs: Path | None) -> None:
    """Before any work: every output must be a file path that is none of the `inputs` (nor inside an input
    directory, a saved data set, nor another name of an input file). Every writer of records calls it: the `data`
    verbs and `convert_file`."""
    inputs = list(inputs)
    for out in (Path(o) for o in outs if o is not None):
        if out.is_dir():
            raise fail("Cannot write the output", str(out), "is a directory", "give a file path, e.g. out.jsonl")
        target = out.resolve()
        for f in map(Path, inputs):
            same = target == f.resolve() or f.resolve() in target.parents or (out.exists() and out.samefile(f))
            if same:
                raise fail(
                    "Refusing to overwrite the input",
                    str(out),
                    f"the output would replace the input {f}",
                    "write to a new file; inputs are never changed",
                )
