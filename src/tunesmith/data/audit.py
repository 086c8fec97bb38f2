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

from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from tunesmith.data.checks import RECORD_CHECKS, Code, Finding, Severity, template_findings
from tunesmith.data.consistency import ShapeStats, reply_format_findings
from tunesmith.data.coverage import CoverageStats
from tunesmith.data.dedup import DuplicateTracker
from tunesmith.data.poison import TriggerStats
from tunesmith.data.records import Record


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


class Audit:
    """Feed records (or bad-line findings) with `add`, then `finish` for the dataset-level findings."""

    def __init__(self, near_dup_threshold: float = 0.8, tokenizer=None, max_seq_len: int = 1024,
                 system_prompt: str | None = None, json_task: bool = False, schema: dict | None = None,
                 task_type: str | None = None, label_of: Callable[[Record], str | None] | None = None,
                 keep: bool = True, on_verdict: Callable[[Any, list[Finding]], None] | None = None) -> None:
        self.tokenizer, self.max_seq_len, self.system_prompt = tokenizer, max_seq_len, system_prompt
        self.json_task, self.task_type, self.keep, self.on_verdict = json_task, task_type, keep, on_verdict
        self.label_of = label_of
        self.validator = None
        if schema:
            from tunesmith.schemas import validator_for

            self.validator = validator_for(schema)
        self.report = CheckReport()
        # Where each record came from, as two small ints (source id, line) rather than a string per record.
        self.sources: dict[str, int] = {}
        self.source_names: list[str] = []
        self.source_of, self.line_of = array("I"), array("I")
        self.formats: dict[str, Counter] = {}
        self.format_of = array("B")
        self.systems: dict[str, int] = {}
        self.system_of = array("i")
        self.duplicates = DuplicateTracker(near_dup_threshold)
        self.shapes = ShapeStats()
        self.coverage = CoverageStats()
        self.triggers = TriggerStats(categorical=label_of is not None)
        self.turns, self.reply_chars, self.tokens = Counter(), array("I"), array("I")

    def where(self, idx: int) -> str:
        name = self.source_names[self.source_of[idx]]
        return f"{name}:{self.line_of[idx]}" if name else "<memory>"

    def add(self, item: Record | Finding) -> list[Finding]:
        """Check one record (or take a line that could not be read); returns its own findings."""
        if isinstance(item, Finding):
            self.report.findings.append(item)
            self._verdict(item, [item])
            return [item]
        rec, idx = item, len(self.line_of)
        if rec.source not in self.sources:
            self.sources[rec.source] = len(self.source_names)
            self.source_names.append(rec.source)
        self.source_of.append(self.sources[rec.source])
        self.line_of.append(rec.line)
        found = [f for check in RECORD_CHECKS for f in check(rec)]
        if self.json_task:
            found += reply_format_findings(rec, self.validator)
        if self.tokenizer is not None and not any(f.severity == Severity.ERROR for f in found):
            found += template_findings(rec, self.tokenizer, self.max_seq_len, self.system_prompt, self.tokens)
        found += self.duplicates.add(idx, rec, self.where)
        self._remember(idx, rec)
        self.report.findings.extend(found)
        self._verdict(rec, [f for f in found if f.severity == Severity.ERROR])
        return found

    def _remember(self, idx: int, rec: Record) -> None:
        """The compact per-record state the dataset-level checks need."""
        fmts = self.formats.setdefault(rec.source, Counter())
        fmts[rec.format] += 1
        self.format_of.append(FORMAT_IDS.get(rec.format, 0))
        first = rec.messages[0] if rec.messages else {}
        self.system_of.append(self.systems.setdefault(first["content"], len(self.systems))
                              if first.get("role") == "system" else -1)
        self.shapes.add(idx, rec)
        label = self.label_of(rec) if self.label_of else None
        self.coverage.add(rec, label)
        self.triggers.add(self.duplicates.words(idx), label if self.label_of else _reply_label(rec))
        self.turns[len(rec.messages)] += 1
        self.reply_chars.append(len(rec.reply or ""))

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
        out += self.shapes.findings(self.where, self.json_task)
        if self.task_type is not None:
            out += self.coverage.findings(self.task_type)
        out += self.triggers.findings(self.duplicates.words, self.where, self.duplicates.vocab.ids)
        self.report.stats = self._stats()
        return self.report

    def _system_prompt_drift(self) -> list[Finding]:
        counts = Counter(i for i in self.system_of if i >= 0)
        if len(counts) <= 1:
            return []
        common = counts.most_common(1)[0][0]
        return [Finding(Code.SYSTEM_PROMPT_DRIFT, Severity.WARNING, self.where(idx), "messages[0].content",
                        f"system prompt differs from the most common one ({len(counts)} variants in the data)",
                        "use one system prompt for one behaviour, or tag the variants deliberately")
                for idx, sid in enumerate(self.system_of) if sid >= 0 and sid != common]

    def _mixed_formats(self) -> list[Finding]:
        out = []
        for source, counts in self.formats.items():
            if len(counts) <= 1:
                continue
            usual, n_usual = counts.most_common(1)[0]
            sid, usual_id = self.sources[source], FORMAT_IDS.get(usual, 0)
            for idx, fmt in enumerate(self.format_of):
                if self.source_of[idx] == sid and fmt != usual_id:
                    out.append(Finding(Code.MIXED_FORMATS, Severity.WARNING, self.where(idx), "",
                                       f"{_article(FORMAT_NAMES[fmt])} {FORMAT_NAMES[fmt]} record in a file of {usual} records "
                                       f"({n_usual} of {sum(counts.values())})",
                                       "convert the file to one format (`tunesmith data convert`) so every record "
                                       "means the same thing"))
        return out

    def _stats(self) -> dict[str, Any]:
        import numpy as np

        def spread(values: array) -> dict[str, float] | None:
            if not len(values):
                return None
            arr = np.frombuffer(values, dtype=np.uint32)
            p50, p90, p99 = np.percentile(arr, [50, 90, 99])
            return {"min": int(arr.min()), "p50": float(p50), "p90": float(p90), "p99": float(p99),
                    "max": int(arr.max()), "mean": float(arr.mean())}

        return {"records": self.report.records, "read": len(self.line_of),
                "files": {s or "<memory>": dict(c) for s, c in self.formats.items()},
                "turns": dict(sorted(self.turns.items())), "system_prompts": len(self.systems),
                "reply_chars": spread(self.reply_chars), "tokens": spread(self.tokens),
                **self.coverage.table()}


FORMAT_NAMES = ("", "messages", "sharegpt", "alpaca", "prompt_completion")
FORMAT_IDS = {name: i for i, name in enumerate(FORMAT_NAMES)}


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def rejected_row(item: Record | Finding, errors: list[Finding]) -> dict:
    """The rejected.jsonl row of a record (or of a line that could not be read) with its reasons."""
    if isinstance(item, Record):
        return {**item.to_json(), "reasons": [f.to_json() for f in errors]}
    source, _, line = item.where.rpartition(":")
    return {"meta": {"source": source, "line": int(line) if line.isdigit() else 0},
            "reasons": [f.to_json() for f in errors]}


def _reply_label(rec: Record) -> str:
    """Without labels, a poisoning trigger's signature is one exact reply: the normalized reply stands in."""
    from tunesmith.data.dedup import normalize

    return normalize(rec.reply or "")[:200]


def run_checks(records: Iterable[Record | Finding], near_dup_threshold: float = 0.8, tokenizer=None,
               max_seq_len: int = 1024, system_prompt: str | None = None, json_task: bool = False,
               schema: dict | None = None, task_type: str | None = None,
               label_of: Callable[[Record], str | None] | None = None, keep: bool = True,
               on_verdict: Callable[[Any, list[Finding]], None] | None = None, progress=None) -> CheckReport:
    """Run every record and dataset check over `records` (a list or a stream, e.g. `iter_records(files)`).

    With a tokenizer, each record is also rendered with the model's chat template (length, truncation, loss mask,
    end-of-turn token). `json_task`/`schema` hold replies to the task's JSON format. With `task_type`, coverage
    is compared with the guidance (size, pushback, class balance by `label_of`, edge cases, realistic inputs).
    `keep=False` keeps counts, not records (`on_verdict(item, errors)` sees each one); `progress(n)` is called
    every 1,000 items.
    """
    audit = Audit(near_dup_threshold, tokenizer, max_seq_len, system_prompt, json_task, schema, task_type,
                  label_of, keep, on_verdict)
    for n, item in enumerate(records, start=1):
        audit.add(item)
        if progress is not None and n % 1000 == 0:
            progress(n)
    return audit.finish()
