"""Stages 1-2, what every verb starts from: `check` sets bad records aside, `split` makes the leakage-free train /
validation / test sets; `prepare` resolves a project's model and schema and runs (or reuses) both.

    p = prepare(cfg, project, with_suites=True)      # p.st_split.run_dir / "train.jsonl", "validation.jsonl", ...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape

from tunesmith.config import Config
from tunesmith.config.metrics import check_metrics
from tunesmith.data.project import check_options, data_files, read_records, stratify_field
from tunesmith.errors import Problem, TunesmithError
from tunesmith.files import JsonlWriter, atomic_write_json, atomic_write_jsonl, data_sha256
from tunesmith.pipeline.machinery import Pipeline, Stage, console, sections


def data_stages(cfg: Config, project: Path, pipe: Pipeline, model_ref, schema: dict | None) -> Stage:
    """Stages 1-2, check and split (cached like every stage); returns the split stage."""
    return split_stage(cfg, project, pipe, check_stage(cfg, project, pipe, model_ref, schema))


def check_stage(cfg: Config, project: Path, pipe: Pipeline, model_ref, schema: dict | None) -> Stage:
    """1. check: bad records are set aside with their reasons (`rejected.jsonl`), never edited in place; the good
    ones are `kept.jsonl`. An unreadable line fails the stage."""
    from tunesmith.data.audit import rejected_row, run_checks
    from tunesmith.data.checks import Code
    from tunesmith.data.formats import iter_records

    files = data_files(cfg, project)

    def check(run_dir: Path) -> dict[str, Any]:
        with JsonlWriter(run_dir / "kept.jsonl") as kept, JsonlWriter(run_dir / "rejected.jsonl") as rejected:

            def verdict(item, errors) -> None:
                if errors:
                    rejected.write(rejected_row(item, errors))
                else:
                    kept.write(item.to_json())

            report = run_checks(
                iter_records(files, cfg.data.format, project, cfg.data.columns),
                keep=False,
                on_verdict=verdict,
                **check_options(cfg, model_ref, schema),
            )
        unreadable = [f for f in report.findings if f.code in (Code.BAD_LINE, Code.BAD_RECORD)]
        if unreadable:  # a broken file, not a bad example: training on what could be parsed would hide it
            raise TunesmithError.capped(
                f"{len(unreadable)} line(s) cannot be read",
                [Problem(f.where + (f" [{f.field}]" if f.field else ""), f.message, f.hint) for f in unreadable],
            )
        atomic_write_json(run_dir / "report.json", report.to_json())
        if not report.n_kept:
            raise TunesmithError(
                "No usable records",
                [
                    Problem(
                        str(files[0]) if files else "data.train",
                        "every record was rejected",
                        "see report.json in the check run directory",
                    )
                ],
            )
        return {
            "records": report.records,
            "kept": report.n_kept,
            "rejected": report.n_rejected,
            "findings": len(report.findings),
        }

    hashes = {str(f.relative_to(project)): data_sha256(f) for f in files}
    return pipe.stage(
        "check", sections(cfg, "data", "task"), {"files": hashes, "model": model_ref.identity, "schema": schema}, check
    )


def split_stage(cfg: Config, project: Path, pipe: Pipeline, st_check: Stage) -> Stage:
    """2. split: leakage-free, seeded, stratified train / validation / test sets (`data.test` and
    `data.validation` files, when given, are those sets). Only SFT chooses its checkpoint on validation; the other
    objectives train on what SFT would set aside."""
    from tunesmith.data.dedup import near_duplicate_clusters
    from tunesmith.data.formats import load_records
    from tunesmith.data.split import leakage, reply_label, three_way_split

    given = {which: data_files(cfg, project, which) for which in ("test", "validation")}
    split_data = cfg.data if cfg.train.objective == "sft" else cfg.data.model_copy(update={"validation_fraction": 0.0})

    def split(run_dir: Path) -> dict[str, Any]:
        kept = read_records(st_check.run_dir / "kept.jsonl")
        fld = stratify_field(cfg)
        clusters = near_duplicate_clusters(kept, cfg.data.near_dup_threshold)
        own = {
            which: load_records(files, cfg.data.format, project, cfg.data.columns) if files else None
            for which, files in given.items()
        }
        parts = three_way_split(kept, split_data, lambda r: reply_label(r, fld), clusters, **own)
        leaks = leakage(parts.train, parts.test + parts.validation, cfg.data.near_dup_threshold)
        print_leakage(parts.findings)
        for name, records in (("train", parts.train), ("validation", parts.validation), ("heldout", parts.test)):
            atomic_write_jsonl(run_dir / f"{name}.jsonl", (r.to_json() for r in records))
        atomic_write_json(run_dir / "split.json", {"findings": [f.to_json() for f in parts.findings]})
        return {
            "train": len(parts.train),
            "validation": len(parts.validation),
            "heldout": len(parts.test),
            "stratified_by": fld,
            "grouped_with_a_twin": len(kept) - len(set(clusters)),
            "leaks": len(leaks),
            "dropped_as_leakage": len(parts.findings),
            "sources": {which: [str(f.relative_to(project)) for f in files] for which, files in given.items()},
        }

    hashes_given = {
        which: {str(f.relative_to(project)): data_sha256(f) for f in files} for which, files in given.items() if files
    }
    return pipe.stage(
        "split", {"data": split_data.model_dump(mode="json")}, {"check": st_check.key, **hashes_given}, split
    )


def print_leakage(findings: list) -> None:
    """The first ten cases the split dropped as leakage (all of them are in split.json)."""
    for finding in findings[:10]:
        console.print(f"[yellow]leakage:[/yellow] {escape(finding.where)} {escape(finding.message)}")
    if len(findings) > 10:
        console.print(f"[yellow]leakage:[/yellow] … and {len(findings) - 10} more (split.json)")


@dataclass
class Prepared:
    """A project with its data checked and split: what `run`, `train` and `eval run` all start from."""

    cfg: Config
    project: Path
    pipe: Pipeline
    model_ref: Any
    schema: dict | None
    st_split: Stage
    suites: tuple[dict, dict] | None  # `project_suites`, when the caller evaluates


def prepare(cfg: Config, project: Path, with_suites: bool) -> Prepared:
    """Fail on a gate that cannot be measured and on missing data (and suites) before any work; resolve the base
    model; run (or reuse) the check and split stages."""
    from tunesmith.data.project import load_schema
    from tunesmith.eval.suite import project_suites
    from tunesmith.models import resolve_model

    check_metrics(cfg, measured=True)
    data_files(cfg, project)
    suites = project_suites(cfg, project) if with_suites else None
    pipe = Pipeline(project)
    model_ref = resolve_model(cfg.model.base, cfg.model.trust_remote_code)
    schema = load_schema(cfg, project)
    return Prepared(cfg, project, pipe, model_ref, schema, data_stages(cfg, project, pipe, model_ref, schema), suites)
