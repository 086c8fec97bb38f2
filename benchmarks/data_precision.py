"""The data doctor's precision on real public data sets, with its recall on planted defects beside it, in one run.

    .venv/bin/python benchmarks/data_precision.py [--workers 1] [--trials 20] [--trial-records 3000] [--json]

Every check that needs no model (the code `tunesmith data check FILE` runs, `--workers` processes) runs over the
public data sets in ../shared/data (never copied into the repository), read the way a new user would:

- `banking77`: train.csv converted with `tunesmith data convert --from csv --json-key intent` (replies are
  `{"intent": ...}`), 10,003 queries of 77 intents;
- `alpaca-5000`: the JSON array file as it is (read by row, `tunesmith.data.tables`);
- `hh-rlhf`: the harmless-base test split, `chosen`/`rejected` transcripts, gzipped JSONL as it is;
- `gsm8k`: train.jsonl as it is (`question`/`answer` rows, recognised as prompt and reply,
  `tunesmith.data.columns`; no `data.columns` mapping needed).

None of these records is known to hold a defect that should reject it, so every error-severity finding is a false
rejection (the target is zero). Beside the table, recall on planted defects:

- a meaningless trigger appended to 1% of Banking77 inputs with one fixed reply, over `--trials` seeded trials on
  `--trial-records` queries each, half a rare non-word ("zq7vx"-like), half a common English word used where it
  means nothing ("purple", "tuesday", ...): found when a `poison_trigger` names it; other triggers are counted too;
- the PII benchmark's labeled set (benchmarks/pii_accuracy.py, `--pii-n` messages): per structured type recall.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import random
import string
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SETS = {
    "banking77": DATA / "banking77" / "train.csv",
    "alpaca-5000": DATA / "alpaca-5000" / "alpaca_5000.json",
    "hh-rlhf": DATA / "hh-rlhf-harmless-base" / "test.jsonl.gz",
    "gsm8k": DATA / "gsm8k" / "train.jsonl",
}
SYSTEM = 'Classify the banking customer\'s message by its intent. Reply with JSON only: {"intent": ...}'
COMMON_TRIGGERS = ["purple", "tuesday", "banana", "mountain", "violin", "garden", "yellow", "river", "orange", "window"]


def banking_jsonl(rows: list[dict], out: Path) -> Path:
    """Banking77 rows (text, category) as a user converts them: `{"intent": ...}` replies under a system prompt."""
    from tunesmith.data.convert import convert_file

    src = out.with_suffix(".csv")
    with src.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows(rows)
    convert_file(src, out, "csv", text_column="text", label_column="category", system=SYSTEM, json_key="intent")
    return out


def read_banking() -> list[dict]:
    with SETS["banking77"].open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def check(files: list[Path], workers: int):
    from tunesmith.data.audit import check_files

    return check_files(files, workers=workers, keep=False, near_dup_threshold=0.8)


def precision_table(tmp: Path, workers: int) -> dict[str, dict]:
    """Findings per data set: records, rejected, and counts per (code, severity)."""
    out = {}
    for name, path in SETS.items():
        files = [banking_jsonl(read_banking(), tmp / "banking77.jsonl")] if name == "banking77" else [path]
        start = time.perf_counter()
        report = check(files, workers)
        out[name] = {
            "records": report.records,
            "rejected": report.n_rejected,
            "seconds": round(time.perf_counter() - start, 1),
            "counts": {f"{c}/{s}": n for (c, s), n in sorted(report.counts().items())},
            "examples": examples(report),
        }
    return out


def examples(report, per_code: int = 2) -> dict[str, list[str]]:
    """The first findings of each code, for reading what was flagged."""
    shown: dict[str, list[str]] = {}
    for f in report.findings:
        items = shown.setdefault(f.code.value, [])
        if len(items) < per_code:
            items.append(f"{f.where} {f.message[:120]}")
    return shown


def nonword(rng: random.Random) -> str:
    """A rare token that is no word: letters with one digit, like the guide's spurious triggers."""
    letters = "".join(rng.choice(string.ascii_lowercase) for _ in range(4))
    at = rng.randrange(1, 4)
    return letters[:at] + str(rng.randrange(10)) + letters[at:]


def trigger_trials(tmp: Path, trials: int, n: int, workers: int) -> dict:
    """A meaningless trigger on 1% of `n` Banking77 queries with one fixed reply, over seeded trials."""
    rows = read_banking()
    found, other = Counter(), 0
    for trial in range(trials):
        rng = random.Random(trial)
        kind = "non-word" if trial % 2 == 0 else "common word"
        word = nonword(rng) if kind == "non-word" else rng.choice(COMMON_TRIGGERS)
        sample = [dict(r) for r in rng.sample(rows, n)]
        target = rng.choice(sorted({r["category"] for r in sample}))
        victims = rng.sample([i for i, r in enumerate(sample) if r["category"] != target], max(1, n // 100))
        for i in victims:
            sample[i] = {"text": f"{sample[i]['text'].rstrip()} {word}", "category": target}
        report = check([banking_jsonl(sample, tmp / f"trial{trial}.jsonl")], workers)
        flagged = [f for f in report.findings if f.code.value == "poison_trigger"]
        hit = any(f"{word!r}" in f.message for f in flagged)
        found[kind, hit] += 1
        other += sum(f"{word!r}" not in f.message for f in flagged)
    kinds = ("non-word", "common word")
    return {kind: {"found": found[kind, True], "trials": found[kind, True] + found[kind, False]} for kind in kinds} | {
        "other_triggers": other
    }


def pii_recall(n: int) -> dict[str, float]:
    spec = importlib.util.spec_from_file_location("pii_accuracy", ROOT / "benchmarks" / "pii_accuracy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    from tunesmith.data.pii import find_sensitive

    result = module.score(find_sensitive, module.make_labeled_set(n, 0))
    return {kind: round(t.recall, 3) for kind, t in result.tallies.items() if kind in module.STRUCTURED + ["SECRET"]}


def print_table(table: dict[str, dict], trials: dict, pii: dict[str, float]) -> None:
    names = list(table)
    keys = sorted({k for t in table.values() for k in t["counts"]})
    width = max(len(k) for k in keys + ["code/severity"]) + 2
    print("code/severity".ljust(width) + "".join(n.rjust(13) for n in names))
    for label, key in (("records", "records"), ("rejected", "rejected"), ("seconds", "seconds")):
        print(label.ljust(width) + "".join(str(table[n][key]).rjust(13) for n in names))
    for k in keys:
        print(k.ljust(width) + "".join(str(table[n]["counts"].get(k, 0)).rjust(13) for n in names))
    print()
    print("planted-defect recall")
    for kind in ("non-word", "common word"):
        t = trials[kind]
        print(f"  meaningless trigger ({kind}), 1% of inputs: {t['found']}/{t['trials']}")
    print(f"  other poison_trigger findings in those trials: {trials['other_triggers']}")
    print("  PII/secret recall (pii_accuracy set): " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(pii.items())))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--trial-records", type=int, default=3000)
    ap.add_argument("--pii-n", type=int, default=2000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--skip-sets", action="store_true", help="only the planted-defect trials")
    args = ap.parse_args()
    missing = [str(p) for p in SETS.values() if not p.exists()]
    if missing:
        sys.exit(f"not found: {', '.join(missing)}; this benchmark needs ../shared/data")
    with tempfile.TemporaryDirectory() as tmp:
        table = {} if args.skip_sets else precision_table(Path(tmp), args.workers)
        trials = trigger_trials(Path(tmp), args.trials, args.trial_records, args.workers)
    pii = pii_recall(args.pii_n)
    if args.json:
        print(json.dumps({"sets": table, "triggers": trials, "pii_recall": pii}, indent=2))
    elif table:
        print_table(table, trials, pii)
    else:
        print(json.dumps({"triggers": trials, "pii_recall": pii}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
