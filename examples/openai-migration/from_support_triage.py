"""Write hosted/train.jsonl and hosted/validation.jsonl: the files this example's team uploaded to OpenAI.

They are examples/support-triage's 460 tickets in OpenAI's chat fine-tuning format (a line is `{"messages":
[system, user, assistant]}`, nothing else), shuffled with a fixed seed: 60 for validation, 400 for training.

    python examples/openai-migration/from_support_triage.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
TICKETS = HERE.parent / "support-triage" / "data" / "tickets.jsonl"
VALIDATION = 60
SEED = 7


def write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {path.relative_to(HERE)}: {len(rows)} lines")


def main() -> None:
    lines = [json.loads(line) for line in TICKETS.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [{"messages": line["messages"]} for line in lines]  # OpenAI's format: the tickets' tags are dropped
    random.Random(SEED).shuffle(rows)
    write(HERE / "hosted" / "validation.jsonl", rows[:VALIDATION])
    write(HERE / "hosted" / "train.jsonl", rows[VALIDATION:])


if __name__ == "__main__":
    main()
