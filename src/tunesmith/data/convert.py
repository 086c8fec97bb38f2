"""The `data convert` and `data check` verbs' file handling: any supported format in, `messages` JSONL out.

n = convert_file("tickets.csv", "data/tickets.jsonl", "csv", text_column="text", label_column="category")
n = convert_file("train.parquet", "data/gsm8k.jsonl", columns=ColumnsConfig(prompt="question", reply="answer"))
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from tunesmith.config import ColumnsConfig
from tunesmith.data.formats import FORMATS, load_records, read_labeled
from tunesmith.errors import Problem, TunesmithError, fail
from tunesmith.files import atomic_write_jsonl, refuse_to_overwrite

SOURCES = ("auto", *FORMATS, "csv", "labeled")


def convert_file(
    source: Path,
    out: Path,
    from_: str = "auto",
    *,
    text_column: str = "text",
    label_column: str = "label",
    system: str | None = None,
    json_key: str | None = None,
    columns: ColumnsConfig | None = None,
) -> int:
    """Convert `source` into `out` (written atomically; the source is never touched). Returns the record count.

    `columns` reads every row through a column mapping (as `data.columns` does), from any data file."""
    if from_ not in SOURCES:
        raise fail("Unknown --from", "--from", f"{from_!r} is not a known format", f"use one of {', '.join(SOURCES)}")
    refuse_to_overwrite([Path(source)], Path(out))
    mapped = columns is not None and columns.given
    labeled = not mapped and (from_ in ("csv", "labeled") or (from_ == "auto" and source.suffix.lower() == ".csv"))
    if mapped and source.suffix.lower() == ".csv":
        raise fail(
            "Column options on a CSV file",
            str(source),
            "a CSV file is read as labeled rows",
            "use --text-column and --label-column (and --json-key)",
        )
    if mapped:
        records = load_records([source], from_, columns=columns)
    elif labeled:  # puts the system prompt in itself
        records = read_labeled(source, text_column, label_column, system=system, json_key=json_key)
    else:
        records = load_records([source], from_)
    if system and not labeled:
        for rec in records:
            if rec.messages[0]["role"] != "system":
                rec.messages.insert(0, {"role": "system", "content": system})
    atomic_write_jsonl(out, (r.to_json() for r in records))
    return len(records)


def resolve_data_paths(paths: list[Path]) -> tuple[list[Path], str, Path | None, ColumnsConfig | None]:
    """Files to read: the given files (a saved `datasets` directory among them), or a project's data.train files
    (with its data.format and data.columns) for a project directory."""
    from tunesmith.data.tables import is_saved_dataset

    if len(paths) == 1 and paths[0].is_dir() and not is_saved_dataset(paths[0]):
        from tunesmith.config import load_config
        from tunesmith.data.project import data_files

        cfg, project = load_config(paths[0])
        return data_files(cfg, project), cfg.data.format, project, cfg.data.columns
    missing = [
        Problem(str(p), "no such file", "check the path") for p in paths if not (p.is_file() or is_saved_dataset(p))
    ]
    if missing:
        raise TunesmithError("Data file not found", missing)
    return list(paths), "auto", None, None


def columns_from_options(**fields: str | None) -> ColumnsConfig | None:
    """The column mapping `data convert` was given as options (`prompt="question"` from --prompt-column ...), or
    None when none names a prompt, reply, system or preference column (`--label-column` and `--json-key` alone
    are the CSV options); a mapping that does not hold together is a TunesmithError."""
    given = {role: name for role, name in fields.items() if name}
    if not given.keys() - {"label", "json_key"}:
        return None
    try:
        return ColumnsConfig(**given)
    except ValidationError as err:
        message = "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())
        options = ", ".join(
            f"--{role.replace('_', '-')}{'' if role == 'json_key' else '-column'} {name}"
            for role, name in given.items()
        )
        raise fail(
            "Bad column mapping",
            options,
            message,
            "a mapping names the prompt and one reply: "
            "--reply-column, --label-column, or --chosen-column with --rejected-column",
        ) from None


def count_lines(files: list[Path]) -> int | None:
    """Lines in the files (an upper bound on records, for a progress bar's ETA); None when one is compressed or a
    table (Parquet, Arrow, a JSON array)."""
    from tunesmith.data.tables import is_table

    if any(f.suffix == ".gz" or is_table(f) for f in files):
        return None
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                total += block.count(b"\n")
    return total


def audit_options(
    base: Path | None, model: str | None = None, near_dup_threshold: float = 0.8, max_seq_len: int = 1024
) -> dict:
    """The options `check_files` takes for `data check` / `data stats`: a project (`base`) is checked exactly as
    `tunesmith run` checks it; files with `model` are also rendered with its chat template and tokenizer."""
    if base is not None:
        from tunesmith.config import load_config
        from tunesmith.data.project import check_options, load_schema
        from tunesmith.models import resolve_model

        cfg, _ = load_config(base)
        ref = resolve_model(model or cfg.model.base, cfg.model.trust_remote_code)
        return check_options(cfg, ref, load_schema(cfg, base))
    if model:
        from tunesmith.models import load_tokenizer, resolve_model

        return {
            "near_dup_threshold": near_dup_threshold,
            "tokenizer": load_tokenizer(resolve_model(model)),
            "max_seq_len": max_seq_len,
        }
    return {"near_dup_threshold": near_dup_threshold}
