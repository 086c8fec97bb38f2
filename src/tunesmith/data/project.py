"""A project's data as its config names it: the data and general-data files, the general-data mix, the stratify
field and the check options, and reading the records a split wrote.

    files = data_files(cfg, project)                        # data.train, sorted; a pattern matching nothing fails
    records = mix_general(read_records(split_dir / "train.jsonl"), general_files(cfg, project), cfg)

Shared by the pipeline's stages (`tunesmith.pipeline`), `tunesmith cost`, `tunesmith advise` and `tunesmith data`.
"""

from __future__ import annotations

import glob
import json
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from tunesmith.config import Config
from tunesmith.data.distill import SELF
from tunesmith.data.formats import load_records
from tunesmith.data.split import ReplyLabel
from tunesmith.data.tables import is_saved_dataset
from tunesmith.errors import Problem, TunesmithError, fail
from tunesmith.schemas import schema_problem


def data_files(cfg: Config, project: Path, which: str = "train") -> list[Path]:
    """The data files named by `data.<which>` (train, validation or test; globs allowed), sorted; a pattern
    matching nothing, or only directories, is an error, and so is a `data.train` naming no file at all. A saved
    `datasets` directory counts as one file."""
    files, problems = [], []
    for i, pattern in enumerate(getattr(cfg.data, which)):
        matched = sorted(Path(p) for p in glob.glob(str(project / pattern)))
        usable = [m for m in matched if m.is_file() or is_saved_dataset(m)]
        if matched and not usable and all(m.is_dir() for m in matched):
            what = "is a directory" if len(matched) == 1 else "matches only directories"
            hint = f"did you mean {pattern.rstrip('/')}/*.jsonl?"
            problems.append(Problem(f"data.{which}[{i}]", f"{pattern!r} {what}, not data files", hint))
        elif not usable:
            problems.append(
                Problem(
                    f"data.{which}[{i}]",
                    f"{pattern!r} matches no file under {project}",
                    "check the path; it is relative to the project directory",
                )
            )
        files.extend(usable)
    if which == "train" and not files and not problems:
        problems.append(Problem("data.train", "names no data file", "e.g. train: [data/*.jsonl]"))
    if problems:
        raise TunesmithError("Missing data", problems)
    return files


def stratify_field(cfg: Config) -> str | None:
    """The field the split stratifies by: `data.stratify_by`, or for `auto` a JSON task's first match field, a
    classification's label, else none."""
    s = cfg.data.stratify_by
    if s != "auto":
        return s
    if cfg.task.type == "json" and cfg.task.match_fields:
        return cfg.task.match_fields[0]
    return "label" if cfg.task.type == "classification" else None


def check_options(cfg: Config, model_ref, schema: dict | None) -> dict[str, Any]:
    """`run_checks` keyword arguments for a project: its model's tokenizer and length limit, system prompt, reply
    format and schema, task type and labels. Shared by `tunesmith run` and `tunesmith data check PROJECT`."""
    from tunesmith.models import load_tokenizer

    field = stratify_field(cfg)
    return {
        "near_dup_threshold": cfg.data.near_dup_threshold,
        "tokenizer": load_tokenizer(model_ref),
        "max_seq_len": cfg.data.max_seq_len,
        "system_prompt": cfg.task.system_prompt,
        "json_task": cfg.task.type == "json",
        "schema": schema,
        "task_type": cfg.task.type,
        "label_of": ReplyLabel(field),
        "sensitive": cfg.data.pii_check,
    }


def read_records(path: Path) -> list:
    """The records of one file the pipeline wrote (a split's `train.jsonl`, a check's `kept.jsonl`)."""
    return load_records([path])


def validation_records(split_dir: Path) -> list:
    """A split run's validation records ([] when the split set none aside, as for DPO and GRPO)."""
    path = split_dir / "validation.jsonl"
    return read_records(path) if path.exists() and path.stat().st_size else []


def general_files(cfg: Config, project: Path) -> list[Path]:
    """The files of `train.general_data` (globs allowed); a pattern matching nothing is an error."""
    if not cfg.train.general_share:
        return []
    files, problems = [], []
    for i, pattern in enumerate(cfg.train.general_data):
        if pattern == SELF:  # made by the pipeline's self_general_stage
            continue
        matched = sorted(Path(p) for p in glob.glob(str(project / pattern)) if Path(p).is_file())
        if not matched:
            problems.append(
                Problem(f"train.general_data[{i}]", f"{pattern!r} matches no file", "relative to the project directory")
            )
        files += matched
    if not files and not problems and SELF not in cfg.train.general_data:
        problems.append(
            Problem(
                "train.general_share",
                "a share is set but train.general_data names no file",
                "e.g. general_data: [data/general-self.jsonl]",
            )
        )
    if problems:
        raise TunesmithError("Missing general data", problems)
    return files


# Labels that name a catch-all class (compared lower-cased, with spaces and dashes as underscores): its few
# training examples are all different, so a model trained on them as they come under-predicts it.
CATCH_ALL_LABELS = frozenset(
    {"out_of_scope", "oos", "out_of_domain", "other", "none", "unknown", "no_intent", "fallback", "irrelevant"}
)
CATCH_ALL_SHARE = 0.25  # `oversample: auto` repeats a catch-all label until it is about this share of the examples
MAX_AUTO_FACTOR = 10  # ... at most this many times


def oversample_factors(records: list, cfg: Config) -> dict[str, int]:
    """`train.oversample` resolved on the split's training records: label -> how many times each of its records is
    shown (only factors above 1). `auto`: a label task's one catch-all label (`CATCH_ALL_LABELS`) repeated until it
    makes about `CATCH_ALL_SHARE` of the examples (at most `MAX_AUTO_FACTOR` times) in SFT; nothing otherwise. A label
    named but absent from the records is an error naming the labels there are."""
    setting, field = cfg.train.oversample, stratify_field(cfg)
    if setting == "auto" and (field is None or cfg.train.objective != "sft"):
        return {}
    counts = Counter(ReplyLabel(field)(r) for r in records) if field else Counter()
    if setting == "auto":
        catch_all = [label for label in counts if label is not None and _normalized(label) in CATCH_ALL_LABELS]
        if len(catch_all) != 1:
            return {}
        label, n = catch_all[0], counts[catch_all[0]]
        factor = round(CATCH_ALL_SHARE * (len(records) - n) / ((1 - CATCH_ALL_SHARE) * n))
        return {label: min(MAX_AUTO_FACTOR, factor)} if factor > 1 else {}
    missing = sorted(set(setting) - set(counts))
    if missing:
        known = sorted(str(x) for x in counts if x is not None)
        raise fail(
            "Unknown label to oversample",
            f"train.oversample.{missing[0]}",
            f"no training record has the label {missing[0]!r}",
            f"labels are read from the field {field!r}: e.g. {', '.join(known[:8]) or 'none'}"
            if field
            else "oversampling needs a label: a json task's match_fields, a classification task, or data.stratify_by",
        )
    return {label: k for label, k in setting.items() if k > 1}


def _normalized(label: str) -> str:
    return label.strip().lower().replace("-", "_").replace(" ", "_")


def oversample(records: list, cfg: Config, factors: dict[str, int] | None = None) -> list:
    """`records` with those of each label in `factors` (default: `oversample_factors`) repeated that many times,
    each copy right after its record (the trainer shuffles)."""
    factors = oversample_factors(records, cfg) if factors is None else factors
    if not factors:
        return records
    label_of = ReplyLabel(stratify_field(cfg))
    return [r for r in records for _ in range(factors.get(label_of(r), 1))]


def mix_general(records: list, files: list[Path], cfg: Config, extra: list | None = None) -> list:
    """`records` plus a seeded sample of general records (of `files`, and `extra` records) making up
    `train.general_share` of the result."""
    if not cfg.train.general_share or not (files or extra):
        return records
    pool = load_records(files) + (extra or [])
    want = general_wanted(len(records), cfg)
    rng = random.Random(cfg.train.seed)
    picked = rng.sample(pool, min(want, len(pool)))
    return records + [replace(r, provenance={**r.provenance, "general": True}) for r in picked]


def general_wanted(n_records: int, cfg: Config) -> int:
    """How many general records make up `train.general_share` of a mix with `n_records` task records."""
    share = cfg.train.general_share
    return round(share * n_records / (1 - share)) if share else 0


SHORT = 0.9  # general data under 90% of what the share asks is named; 1,000 where 1,011 are asked is not


def general_shortfall(n_records: int, added: int, cfg: Config) -> str | None:
    """A note when the general data held well under what `train.general_share` asks of this many task records (the
    200 built-in everyday prompts of earlier versions were 2% of a mix with 9,095 task records, not 10%), else
    None."""
    wanted = general_wanted(n_records, cfg)
    if not added or added >= SHORT * wanted:
        return None
    return (
        f"general data: {added} examples, {added / (n_records + added):.1%} of the mix where train.general_share "
        f"asks {cfg.train.general_share:.0%} ({wanted}); the general data holds no more. A long run forgets more "
        "with less: add general prompts (train.general_data) or lower the passes"
    )


def load_schema(cfg: Config, project: Path) -> dict | None:
    """The task's JSON Schema (inline or from a file relative to the project), checked to be a valid schema."""
    schema = cfg.task.json_schema
    where = "task.json_schema"
    if isinstance(schema, str):
        path = project / schema
        where = str(path)
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except OSError:
            raise fail(
                "JSON Schema not found",
                where,
                "cannot read the file",
                "task.json_schema is relative to the project directory",
            ) from None
        except json.JSONDecodeError as exc:
            raise fail("JSON Schema is not JSON", f"{where}:{exc.lineno}", exc.msg, "fix the file") from None
    problem = schema_problem(schema) if schema is not None else None
    if problem:
        raise fail("Invalid JSON Schema", where, problem, "see json-schema.org for the syntax")
    return schema
