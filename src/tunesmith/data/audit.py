"""The dataset audit: every check over a stream of records, in one pass, in memory that does not grow with the
records' text (a few hundred bytes of ids and hashes per record).

    report = run_checks(records)                                  # a list, or any iterable of records
    report = run_checks(iter_records(files), keep=False, on_verdict=write)   # streaming, e.g. a million lines
    report.counts(), report.kept, report.rejected, report.stats

Per record: the record checks of `tunesmith.data.checks` (and the reply format and chat-template checks when asked
for); a record with an error-severity finding is rejected, the rest kept. Across records: duplicates and conflicts,
near-duplicates, system-prompt drift, mixed formats in one file, reply shape and length, coverage, and poisoning
triggers. Lines that could not be read arrive as `bad_line`/`bad_record` findings and are rejected in place.
Input files are never edited.
"""

from __future__ import annotations

import itertools
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from tunesmith.config import ColumnsConfig
from tunesmith.data.checks import RECORD_CHECKS, check_sensitive, check_stale_facts, template_findings
from tunesmith.data.consistency import ShapeStats, reply_format_findings, shape_of
from tunesmith.data.coverage import CoverageFeatures, CoverageStats, coverage_of
from tunesmith.data.dedup import DuplicateTracker, RecordKeys, hash64, minhash_signatures, record_keys, shingle_hashes
from tunesmith.data.findings import Code, Finding, Severity
from tunesmith.data.formats import iter_records, read_item, shown_path, to_record
from tunesmith.data.io import parse_line, raw_lines
from tunesmith.data.poison import TriggerStats
from tunesmith.data.records import Record
from tunesmith.data.tables import is_table, scan_rows
from tunesmith.schemas import validator_for

# Task types whose replies' prices and dates are the problem's givens, not facts about the world (no stale_fact).
GIVEN_NUMBERS = {"math"}


@dataclass
class CheckReport:
    """Findings of a check run, counts of what survives it, and (with keep=True) the records themselves."""

    findings: list[Finding] = field(default_factory=list)
    kept: list[Record] = field(default_factory=list)
    rejected: list[tuple[Any, list[Finding]]] = field(default_factory=list)
    n_kept: int = 0
    n_rejected: int = 0
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return self.n_kept + self.n_rejected

    def counts(self) -> dict[tuple[str, str], int]:
        return dict(Counter((f.code.value, f.severity.value) for f in self.findings))

    @property
    def has_errors(self) -> bool:
        return any(f.severity == Severity.ERROR for f in self.findings)

    def to_json(self) -> dict:
        return {
            "records": self.records,
            "kept": self.n_kept,
            "rejected": self.n_rejected,
            "counts": [{"code": c, "severity": s, "count": n} for (c, s), n in sorted(self.counts().items())],
            "stats": self.stats,
            "findings": [f.to_json() for f in self.findings],
        }


class Inspected(NamedTuple):
    """What one record contributes to the audit: its own findings and the few hashes and counts the dataset
    checks need. Computed by `Inspector.inspect` (in this process or a worker), absorbed by `Audit.absorb`."""

    source: str
    line: int
    findings: list[Finding]
    fmt: str
    system: int | None  # hash of the system prompt, exactly as written
    keys: RecordKeys
    label: str | None
    trigger_label: str | int | None  # the label, or without labels the hash of the normalized reply
    coverage: CoverageFeatures
    shape: tuple[bool, int, bool] | None
    turns: int
    tokens: int | None
    row: dict | None  # the record as JSON, when a worker must hand it back (keep / on_verdict)


class Inspector:
    """The per-record, stateless half of the audit: record checks (and reply format, chat template) and features."""

    def __init__(
        self,
        tokenizer=None,
        max_seq_len: int = 1024,
        system_prompt: str | None = None,
        json_task: bool = False,
        schema: dict | None = None,
        label_of: Callable[[Record], str | None] | None = None,
        sensitive: bool = True,
        stale_facts: bool = True,
    ) -> None:
        self.tokenizer, self.max_seq_len, self.system_prompt = tokenizer, max_seq_len, system_prompt
        # `sensitive=False` is the explicit opt-out of the PII / secret detectors (`data.pii_check: false`);
        # `stale_facts=False` skips the stale-fact check (a maths problem's prices are givens, not facts).
        skipped = {check_sensitive} if not sensitive else set()
        skipped |= {check_stale_facts} if not stale_facts else set()
        self.checks = [c for c in RECORD_CHECKS if c not in skipped]
        self.json_task, self.label_of = json_task, label_of
        self.vocabulary: dict[str, int] = {}  # every input word seen -> its id (to name a poisoning trigger)
        self.validator = None
        if schema:
            self.validator = validator_for(schema)

    def inspect(self, rec: Record, want_row: bool = False) -> Inspected:
        found = [f for check in self.checks for f in check(rec)]
        if self.json_task:
            found += reply_format_findings(rec, self.validator)
        rejected = any(f.severity == Severity.ERROR for f in found)
        tokens = array("I")
        if self.tokenizer is not None and not rejected:
            found += template_findings(rec, self.tokenizer, self.max_seq_len, self.system_prompt, tokens)
            rejected = any(f.severity == Severity.ERROR for f in found)
        first = rec.messages[0] if rec.messages else {}
        # Drift is any difference in the prompt a model is trained with, so the exact text is hashed.
        system = hash64(first["content"]) if first.get("role") == "system" else None
        keys = record_keys(rec, self.vocabulary)
        label = self.label_of(rec) if self.label_of else None
        # Without labels, a trigger's signature is one exact reply: the reply's hash stands in for a label.
        return Inspected(
            rec.source,
            rec.line,
            found,
            rec.format,
            system,
            keys,
            label,
            label if self.label_of else keys.reply_hash,
            coverage_of(rec),
            shape_of(rec),
            len(rec.messages),
            tokens[0] if tokens else None,
            rec.to_json() if want_row else None,
        )


class Audit:
    """Feed records (or bad-line findings) with `add`, or inspected records with `absorb`; then `finish` for the
    dataset-level findings. The options are described at `run_checks`."""

    def __init__(
        self,
        near_dup_threshold: float = 0.8,
        tokenizer=None,
        max_seq_len: int = 1024,
        system_prompt: str | None = None,
        json_task: bool = False,
        schema: dict | None = None,
        task_type: str | None = None,
        label_of: Callable[[Record], str | None] | None = None,
        keep: bool = True,
        on_verdict: Callable[[Any, list[Finding]], None] | None = None,
        sensitive: bool = True,
    ) -> None:
        stale_facts = task_type not in GIVEN_NUMBERS
        self.inspector = Inspector(
            tokenizer, max_seq_len, system_prompt, json_task, schema, label_of, sensitive, stale_facts
        )
        self.json_task, self.task_type, self.keep, self.on_verdict = json_task, task_type, keep, on_verdict
        self.report = CheckReport()
        # Where each record came from, as two small ints (source id, line) rather than a string per record.
        self.sources: dict[str, int] = {}
        self.source_names: list[str] = []
        self.source_of, self.line_of = array("I"), array("I")
        self.formats: dict[str, Counter] = {}
        self.format_of = array("B")
        self.systems: dict[int, int] = {}
        self.system_of = array("i")
        self.duplicates = DuplicateTracker(near_dup_threshold)
        self.vocabulary = self.inspector.vocabulary  # word -> id; workers send theirs with each chunk
        self.shapes = ShapeStats()
        self.coverage = CoverageStats()
        self.triggers = TriggerStats(categorical=label_of is not None)
        self.turns, self.reply_chars, self.tokens = Counter(), array("I"), array("I")

    @property
    def wants_records(self) -> bool:
        return self.keep or self.on_verdict is not None

    def where(self, idx: int) -> str:
        name = self.source_names[self.source_of[idx]]
        return f"{name}:{self.line_of[idx]}" if name else "<memory>"

    def add(self, item: Record | Finding) -> list[Finding]:
        """Check one record (or take a line that could not be read); returns its own findings."""
        if isinstance(item, Finding):
            return self.absorb(item)
        return self.absorb(self.inspector.inspect(item), item)

    def absorb(self, item: Inspected | Finding, record: Record | None = None) -> list[Finding]:
        """Count an inspected record into the dataset-level state; returns its own findings."""
        if isinstance(item, Finding):
            self.report.findings.append(item)
            self._verdict(item, [item])
            return [item]
        idx = len(self.line_of)
        if item.source not in self.sources:
            self.sources[item.source] = len(self.source_names)
            self.source_names.append(item.source)
        self.source_of.append(self.sources[item.source])
        self.line_of.append(item.line)
        found = item.findings
        self.duplicates.add(item.keys)
        self.formats.setdefault(item.source, Counter())[item.fmt] += 1
        self.format_of.append(FORMAT_IDS.get(item.fmt, 0))
        self.system_of.append(-1 if item.system is None else self.systems.setdefault(item.system, len(self.systems)))
        self.shapes.add(idx, item.shape)
        self.coverage.add(item.coverage, item.label)
        self.triggers.add(self.duplicates.words(idx), item.trigger_label)
        self.turns[item.turns] += 1
        self.reply_chars.append(item.shape[1] if item.shape else 0)
        if item.tokens is not None:
            self.tokens.append(item.tokens)
        self.report.findings.extend(found)
        if self.wants_records and record is None and item.row is not None:
            record = to_record(item.row, item.source, item.line)
        errors = [f for f in item.findings if f.severity == Severity.ERROR]
        self._verdict(record, errors)
        return found

    def _verdict(self, item: Any, errors: list[Finding]) -> None:
        if errors:
            self.report.n_rejected += 1
            if self.keep:
                self.report.rejected.append((item, errors))
        else:
            self.report.n_kept += 1
            if self.keep:
                self.report.kept.append(item)
        if self.on_verdict is not None:
            self.on_verdict(item, errors)

    def finish(self) -> CheckReport:
        """Add the dataset-level findings and statistics; returns the report."""
        out = self.report.findings
        out += self._system_prompt_drift()
        out += self._mixed_formats()
        out += self.duplicates.finish(self.where)
        out += self.shapes.findings(self.where, self.json_task, self.task_type)
        if self.task_type is not None:
            out += self.coverage.findings(self.task_type)
        out += self.triggers.findings(
            self.duplicates.words, self.where, self.vocabulary, self.duplicates.records_with, self.duplicates.cluster_of
        )
        self.report.stats = self._stats()
        return self.report

    def _system_prompt_drift(self) -> list[Finding]:
        counts = Counter(i for i in self.system_of if i >= 0)
        if len(counts) <= 1:
            return []
        common = counts.most_common(1)[0][0]
        return [
            Finding(
                Code.SYSTEM_PROMPT_DRIFT,
                Severity.WARNING,
                self.where(idx),
                "messages[0].content",
                f"system prompt differs from the most common one ({len(counts)} variants in the data)",
                "use one system prompt for one behaviour, or tag the variants deliberately",
            )
            for idx, sid in enumerate(self.system_of)
            if sid >= 0 and sid != common
        ]

    def _mixed_formats(self) -> list[Finding]:
        out = []
        for source, counts in self.formats.items():
            if len(counts) <= 1:
                continue
            usual, n_usual = counts.most_common(1)[0]
            sid, usual_id = self.sources[source], FORMAT_IDS.get(usual, 0)
            for idx, fmt in enumerate(self.format_of):
                if self.source_of[idx] == sid and fmt != usual_id:
                    out.append(
                        Finding(
                            Code.MIXED_FORMATS,
                            Severity.WARNING,
                            self.where(idx),
                            "",
                            f"{_article(FORMAT_NAMES[fmt])} {FORMAT_NAMES[fmt]} record in a file of {usual} records "
                            f"({n_usual} of {sum(counts.values())})",
                            "convert the file to one format (`tunesmith data convert`) so every record "
                            "means the same thing",
                        )
                    )
        return out

    def _stats(self) -> dict[str, Any]:
        import numpy as np

        def spread(values: array) -> dict[str, float] | None:
            if not len(values):
                return None
            arr = np.frombuffer(values, dtype=np.uint32)
            p50, p90, p99 = np.percentile(arr, [50, 90, 99])
            return {
                "min": int(arr.min()),
                "p50": float(p50),
                "p90": float(p90),
                "p99": float(p99),
                "max": int(arr.max()),
                "mean": float(arr.mean()),
            }

        return {
            "records": self.report.records,
            "read": len(self.line_of),
            "files": {s or "<memory>": dict(c) for s, c in self.formats.items()},
            "turns": dict(sorted(self.turns.items())),
            "system_prompts": len(self.systems),
            "reply_chars": spread(self.reply_chars),
            "tokens": spread(self.tokens),
            **self.coverage.table(),
        }


FORMAT_NAMES = ("", "messages", "sharegpt", "alpaca", "prompt_completion", "preference", "columns")
FORMAT_IDS = {name: i for i, name in enumerate(FORMAT_NAMES)}


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def rejected_row(item: Record | Finding, errors: list[Finding]) -> dict:
    """The rejected.jsonl row of a record (or of a line that could not be read) with its reasons."""
    if isinstance(item, Record):
        return {**item.to_json(), "reasons": [f.to_json() for f in errors]}
    source, _, line = item.where.rpartition(":")
    return {
        "meta": {"source": source, "line": int(line) if line.isdigit() else 0},
        "reasons": [f.to_json() for f in errors],
    }


def run_checks(records: Iterable[Record | Finding], progress=None, **options: Any) -> CheckReport:
    """Run every record and dataset check over `records` (a list or a stream, e.g. `iter_records(files)`).

    The keyword options are `Audit`'s. With a `tokenizer`, each record is also rendered with the model's chat
    template (length, truncation, loss mask, end-of-turn token); `max_seq_len` bounds it. `near_dup_threshold` is
    the near-duplicate similarity; `system_prompt` the task's. `json_task`/`schema` hold replies to the task's JSON
    format. With `task_type`, coverage is compared with the guidance (size, pushback, class balance by `label_of`,
    edge cases, realistic inputs), worked solutions under a task type other than math are pointed out, and a math
    task's replies are not checked for stale facts. `keep=False` keeps counts, not records (`on_verdict(item,
    errors)` sees each one); `progress(n)` is called every 1,000 items. `sensitive=False` skips the PII and secret
    detectors (an explicit opt-out).
    """
    audit = Audit(**options)
    for n, item in enumerate(records, start=1):
        audit.add(item)
        if progress is not None and n % 1000 == 0:
            progress(n)
    return audit.finish()


# The parallel path: the parent reads raw lines, forked workers parse and inspect them, the parent absorbs the
# results in file order, so indexes, findings and their order are exactly those of the in-process path.
_INSPECTOR: Inspector | None = None  # set in the parent before forking; workers inherit it
_SHIPPED = [0]  # how many of this worker's vocabulary entries it has already sent
CHUNK = 512


def _inspect_chunk(task: tuple) -> tuple[list[Inspected | Finding], dict[str, int]]:
    shown, fmt, columns, lines, want_rows, parsed = task
    out: list[Inspected | Finding] = []
    for number, raw, size in lines:
        row = raw if parsed else parse_line(number, raw, size)
        if row is None:
            continue
        item = read_item(row, shown, number, fmt, columns)
        if isinstance(item, Finding):
            out.append(item)
            continue
        out.append(_INSPECTOR.inspect(item, want_rows))
    inspected = [i for i, ins in enumerate(out) if isinstance(ins, Inspected)]
    if inspected:  # the chunk's MinHash signatures in one vectorized pass, here rather than in the parent
        sigs = minhash_signatures([shingle_hashes(out[i].keys.words) for i in inspected])
        for i, sig in zip(inspected, sigs):
            out[i] = out[i]._replace(keys=out[i].keys._replace(signature=sig.tobytes()))
    vocabulary = _INSPECTOR.vocabulary
    fresh = {w: vocabulary[w] for w in itertools.islice(vocabulary, _SHIPPED[0], None)}  # dicts keep order
    _SHIPPED[0] = len(vocabulary)
    return out, fresh


def _chunks(
    files: list[Path], fmt: str, base: Path | None, want_rows: bool, columns: ColumnsConfig | None
) -> Iterable[tuple]:
    """Tasks for the workers: JSONL files as raw lines (parsed in the workers), table files as parsed rows
    (decoded by Arrow in the parent), `CHUNK` at a time."""
    for path in files:
        shown, lines, parsed = shown_path(Path(path), base), [], is_table(Path(path))
        rows = ((number, row, 0) for number, row in scan_rows(path)) if parsed else raw_lines(path)
        for line in rows:
            lines.append(line)
            if len(lines) == CHUNK:
                yield shown, fmt, columns, lines, want_rows, parsed
                lines = []
        if lines:
            yield shown, fmt, columns, lines, want_rows, parsed


def default_workers() -> int:
    """Worker processes for `check_files`: one per core, none where processes cannot be forked."""
    import multiprocessing
    import os

    return (os.cpu_count() or 1) if "fork" in multiprocessing.get_all_start_methods() else 1


def check_files(
    files: list[Path],
    fmt: str = "auto",
    base: Path | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    columns: ColumnsConfig | None = None,
    **options: Any,
) -> CheckReport:
    """`run_checks` over data files, with the per-record work spread over `workers` forked processes.

    `columns` is the project's column mapping (`data.columns`), if any. Takes `run_checks`'
    keyword options; the result is the same for any number of workers.
    """
    import multiprocessing
    import os
    import threading

    global _INSPECTOR
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return run_checks(iter_records(files, fmt, base, columns), progress=progress, **options)
    audit = Audit(**options)
    _INSPECTOR = audit.inspector
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the Rust tokenizer's threads do not survive fork
    ahead = threading.BoundedSemaphore(4 * workers)  # chunks in flight: memory stays flat however big the file

    def feed() -> Iterable[tuple]:
        for chunk in _chunks(files, fmt, base, audit.wants_records, columns):
            ahead.acquire()
            yield chunk

    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for results, words in pool.imap(_inspect_chunk, feed()):
                ahead.release()
                audit.vocabulary.update(words)
                for item in results:
                    audit.absorb(item)
                if progress is not None:
                    progress(audit.report.records)
    finally:
        _INSPECTOR = None
    return audit.finish()
