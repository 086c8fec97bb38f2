"""`data check` speed and memory on synthetic support conversations: tunesmith's streaming audit vs the
straightforward way (load every record into a list, datasketch's in-memory MinHashLSH), side by side in one run.

    .venv/bin/python benchmarks/data_check_throughput.py [--records 100000] [--baseline-records 20000]
    .venv/bin/python benchmarks/data_check_throughput.py --records 1000000 --skip-baseline   # the memory claim

Each side runs in its own process on the same file, so peak RSS (ru_maxrss) is its own. tunesmith runs every
check that needs no model (schema, keys, tool calls, PII and secrets, stale facts, JSON replies against a schema,
exact / near / conflicting duplicates, system-prompt drift, mixed formats, shape and length, coverage, poisoning);
`--model` adds the chat-template check with that model's tokenizer on a slice of `--template-records`.
The baseline runs the same per-record checks plus datasketch MinHashLSH near-duplicates on `--baseline-records`.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SYSTEM = (
    'You are Lumen Home\'s support router. Reply with JSON only: {"queue": billing|technical|account|'
    'shipping|sales|escalation|refuse|needs_info, "priority": low|normal|high|urgent, "reason": one line}'
)
TOPICS = {
    "billing": [
        "I was charged twice for {item}",
        "my invoice for {item} shows the wrong amount",
        "can I get a refund for {item}",
        "why did my subscription price go up",
    ],
    "technical": [
        "my {item} keeps going offline",
        "the app crashes when I open {item} settings",
        "{item} won't pair with the hub after the update",
        "firmware update failed on my {item}",
    ],
    "shipping": [
        "where is my order {order}",
        "tracking for {order} has not moved in days",
        "the {item} arrived damaged",
        "can I change the delivery address for {order}",
    ],
    "account": [
        "I can't log in to my account",
        "how do I add my partner to the account",
        "reset my password please",
        "delete my account and my data",
    ],
    "sales": [
        "do you have a bundle with {item}",
        "is {item} compatible with my heat pump",
        "what is the difference between {item} models",
        "any discount for buying three {item}s",
    ],
}
ITEMS = ["doorbell", "thermostat", "camera", "smart plug", "motion sensor", "hub", "light strip", "smoke alarm"]
OPENERS = ["", "hi, ", "hello! ", "hey team, ", "urgent: ", "good morning. "]
CLOSERS = ["", " thanks", " please help", " asap!!", " cheers", ". order placed last week."]
CONTEXT = [
    "it started {when}",
    "I already tried {fix}",
    "this is the {nth} time I write about it",
    "we have {count} of them in the {room}",
    "my {relative} set it up {when}",
    "the light is {color} now",
    "support told me to try {fix} but nothing changed",
    "I bought it at {shop} {when}",
    "the app shows error {code}",
    "my account is under {name}",
    "we moved to {city} {when}",
    "it worked fine until {when}",
    "the {room} one is fine but the {room2} one is not",
    "I'm on firmware {version}",
    "it happens about {count} times a day",
    "{name} from your team said {promise}",
    "honestly this is getting {mood}",
    "the receipt number is {receipt}",
    "I'm away until {day}",
    "the wifi is {wifi}",
]
FILLS = {
    "when": [
        "yesterday",
        "last week",
        "after the update",
        "this morning",
        "two days ago",
        "in March",
        "since Sunday",
        "after the power cut",
        "right after setup",
        "over the weekend",
    ],
    "fix": [
        "restarting it",
        "a factory reset",
        "re-pairing",
        "another outlet",
        "the beta app",
        "new batteries",
        "moving the hub",
        "a different phone",
        "reinstalling the app",
        "turning off the VPN",
    ],
    "nth": ["second", "third", "fourth", "fifth"],
    "count": ["two", "three", "four", "six", "ten"],
    "room": ["hallway", "kitchen", "garage", "bedroom", "office", "garden", "attic", "nursery"],
    "room2": ["porch", "basement", "living room", "studio"],
    "relative": ["son", "daughter", "neighbour", "partner", "landlord", "electrician", "flatmate"],
    "color": ["red", "blinking blue", "orange", "off", "solid white", "flashing green"],
    "shop": ["your store", "a retailer", "the website", "an outlet shop", "the airport shop"],
    "code": ["E{n}", "0x{n}", "HUB-{n}", "timeout {n}"],
    "version": ["2.{n}", "3.1.{n}", "4.0.{n}"],
    "name": ["Ana", "Li Wei", "Omar", "Priya", "Jonas", "Maria", "Kwame", "Sofia", "Tom", "Yuki", "Ivan"],
    "city": ["Leeds", "Austin", "Porto", "Lyon", "Osaka", "Denver", "Gdansk", "Cork", "Pune", "Perth"],
    "promise": ["it would be fixed", "a replacement was coming", "someone would call", "I'd get a credit"],
    "mood": ["ridiculous", "annoying", "expensive", "worrying", "old"],
    "receipt": ["R-{n}", "#{n}"],
    "day": ["Monday", "Friday", "the 14th", "next month"],
    "wifi": ["2.4 GHz only", "mesh", "fine", "slow"],
}
PII = [" my email is {name}{n}@mailbox.io", " call me on +44 20 7946 {n:04d}", " card 4111 1111 1111 1111"]


def conversation(rng: random.Random, i: int) -> dict:
    """One synthetic routing conversation; a few carry PII, a price, a tag, or an extra turn."""
    queue = rng.choice(list(TOPICS))
    text = rng.choice(TOPICS[queue]).format(item=rng.choice(ITEMS), order=f"LH-{rng.randrange(10**6):06d}")
    fills = {k: rng.choice(v).format(n=rng.randrange(10, 99999)) for k, v in FILLS.items()}
    context = [c.format(**fills) for c in rng.sample(CONTEXT, rng.randint(1, 3))]
    rng.shuffle(context)
    user = rng.choice(OPENERS) + ". ".join([text, *context]) + rng.choice(CLOSERS) + f" (ref {i})"
    if rng.random() < 0.03:
        user += rng.choice(PII).format(name=rng.choice(["ann", "li", "omar"]), n=rng.randrange(10000))
    reason = f"{text[:40]}" + (" ($19.99 plan)" if rng.random() < 0.05 else "")
    reply = json.dumps({"queue": queue, "priority": rng.choice(["low", "normal", "high"]), "reason": reason})
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
    if rng.random() < 0.1:
        messages += [
            {"role": "assistant", "content": '{"queue": "needs_info", "priority": "low", "reason": "?"}'},
            {"role": "user", "content": "it is the " + rng.choice(ITEMS)},
        ]
    row = {"messages": messages + [{"role": "assistant", "content": reply}]}
    if rng.random() < 0.2:
        row["tags"] = [rng.choice(["typo", "angry", "edge_case", "multi_issue"])]
    return row


def write_data(path: Path, n: int, seed: int = 0) -> None:
    """`n` conversations, about 2% exact duplicates and 2% near-duplicates of earlier ones."""
    rng = random.Random(seed)
    recent: list[dict] = []
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            roll = rng.random()
            if recent and roll < 0.02:
                row = rng.choice(recent)
            elif recent and roll < 0.04:
                row = json.loads(json.dumps(rng.choice(recent)))
                row["messages"][1]["content"] += " thank you"
            else:
                row = conversation(rng, i)
            recent = (recent + [row])[-500:]
            fh.write(json.dumps(row) + "\n")


SCHEMA = {
    "type": "object",
    "required": ["queue", "priority", "reason"],
    "properties": {
        "queue": {"type": "string"},
        "priority": {"enum": ["low", "normal", "high", "urgent"]},
        "reason": {"type": "string"},
    },
}


def run_tunesmith(path: Path, limit: int | None, model: str | None, workers: int) -> dict:
    from tunesmith.data.audit import check_files
    from tunesmith.data.split import ReplyLabel

    options = {}
    if model:
        from tunesmith.models import load_tokenizer, resolve_model

        options = {"tokenizer": load_tokenizer(resolve_model(model)), "max_seq_len": 512}
    if limit:  # the first `limit` records, as their own file
        sliced = path.with_name(f"first-{limit}.jsonl")
        with open(path, encoding="utf-8") as src, open(sliced, "w", encoding="utf-8") as dst:
            dst.writelines(line for _, line in zip(range(limit), src))
        path = sliced
    began = time.perf_counter()
    report = check_files(
        [path],
        workers=workers,
        keep=False,
        json_task=True,
        schema=SCHEMA,
        task_type="json",
        label_of=ReplyLabel("queue"),
        **options,
    )
    wall = time.perf_counter() - began
    return {"records": report.records, "wall_s": wall, "findings": len(report.findings)}


def run_baseline(path: Path, limit: int) -> dict:
    """The straightforward way: every record in a list, per-record checks, datasketch's MinHashLSH."""
    import itertools

    import jsonschema
    from datasketch import MinHash, MinHashLSH

    from tunesmith.data.checks import RECORD_CHECKS
    from tunesmith.data.dedup import input_text, normalize
    from tunesmith.data.formats import load_records

    began = time.perf_counter()
    records = load_records([path])[:limit] if limit else load_records([path])
    validator = jsonschema.Draft202012Validator(SCHEMA)
    findings = [f for r in records for check in RECORD_CHECKS for f in check(r)]
    for r in records:  # reply JSON against the schema, the usual way
        try:
            findings += list(validator.iter_errors(json.loads(r.reply or "")))
        except json.JSONDecodeError as exc:
            findings.append(exc)
    lsh, near = MinHashLSH(threshold=0.8, num_perm=128), 0
    for i, rec in enumerate(records):
        words = normalize(input_text(rec)).split()
        m = MinHash(num_perm=128)
        m.update_batch([" ".join(words[k : k + 3]).encode() for k in range(max(1, len(words) - 2))])
        near += bool(lsh.query(m))
        lsh.insert(i, m)
    wall = time.perf_counter() - began
    del itertools
    return {"records": len(records), "wall_s": wall, "findings": len(findings) + near}


def child(args: argparse.Namespace) -> None:
    if args.side == "baseline":
        out = run_baseline(args.data, args.limit)
    else:
        out = run_tunesmith(args.data, args.limit, args.model, args.workers)
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["worker_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest worker
    print(json.dumps(out))


def measure(side: str, data: Path, limit: int | None, model: str | None = None, workers: int = 1) -> dict:
    cmd = [sys.executable, __file__, "--child", side, "--data", str(data)]
    cmd += ["--limit", str(limit)] if limit else []
    cmd += ["--model", model] if model else []
    cmd += ["--workers", str(workers)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--baseline-records", type=int, default=20_000)
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--model", default=None, help="e.g. builtin:smollm2-135m-instruct: adds the template check")
    ap.add_argument("--template-records", type=int, default=5_000)
    ap.add_argument("--child", choices=["tunesmith", "baseline"], dest="side")
    ap.add_argument("--data", type=Path)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None, help="tunesmith's worker processes (default: one a core)")
    args = ap.parse_args()
    if args.workers is None:
        from tunesmith.data.audit import default_workers

        args.workers = default_workers()
    if args.side:
        return child(args)

    from rich.console import Console
    from rich.table import Table

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "conversations.jsonl"
        write_data(data, args.records)
        w = args.workers
        rows = [(f"tunesmith ({w} workers)", measure("tunesmith", data, None, workers=w))]
        if not args.skip_baseline:
            rows.append(
                (
                    f"tunesmith ({w} workers), baseline's slice",
                    measure("tunesmith", data, args.baseline_records, workers=w),
                )
            )
            rows.append(
                (
                    "tunesmith (1 process), baseline's slice",
                    measure("tunesmith", data, args.baseline_records, workers=1),
                )
            )
            rows.append(("baseline (list + MinHashLSH)", measure("baseline", data, args.baseline_records)))
        if args.model:
            rows.append(
                (
                    f"tunesmith + chat template ({args.model})",
                    measure("tunesmith", data, args.template_records, args.model, workers=w),
                )
            )
    table = Table(title=f"data check on {args.records:,} synthetic conversations")
    for col in ("run", "records", "wall s", "records/s", "peak RSS MB", "worker RSS MB", "findings"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for name, r in rows:
        table.add_row(
            name,
            f"{r['records']:,}",
            f"{r['wall_s']:.1f}",
            f"{r['records'] / r['wall_s']:,.0f}",
            f"{r['max_rss_mb']:,.0f}",
            f"{r['worker_rss_mb']:,.0f}" if r["worker_rss_mb"] else "-",
            f"{r['findings']:,}",
        )
    Console(width=150).print(table)
    if not args.skip_baseline:
        ours, base = rows[1][1], rows[3][1]
        print(
            f"on the same {base['records']:,} records: "
            f"{(ours['records'] / ours['wall_s']) / (base['records'] / base['wall_s']):.2f}x "
            f"the baseline's records/s, {ours['max_rss_mb'] / base['max_rss_mb']:.2f}x its peak RSS"
        )


if __name__ == "__main__":
    main()
