"""Write hosted/replies.jsonl: stand-in replies for the hosted fine-tune, one per prompt of hosted/train.jsonl and
hosted/validation.jsonl, as a team would have exported its hosted model's replies (`{"prompt", "output"}` per
line, the format `tunesmith eval score` reads).

The hosted model cannot be asked from here, so a real model answers instead, through tunesmith's API: the
built-in SmolLM2-135M-Instruct prompted few-shot (`FewShotBackend` over a `TransformersBackend`: the 4 most
similar tickets and their replies before each prompt), greedy, its replies held to a JSON Schema inferred from the
training replies (as a hosted model with structured outputs is). No ticket is ever shown its own reply: the
training file is cut in two halves and each half's prompts get their examples from the other half; validation
prompts get theirs from the whole training file.

    PYTHONPATH=src python examples/openai-migration/record_hosted.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tunesmith.config import TaskConfig
from tunesmith.data.formats import load_records
from tunesmith.eval.baselines import FewShotBackend
from tunesmith.eval.suite import cases_from_records
from tunesmith.generate.backends import TransformersBackend
from tunesmith.generate.decoding import task_constraint
from tunesmith.models import resolve_model

HERE = Path(__file__).resolve().parent
HOSTED = HERE / "hosted"
MODEL = "builtin:smollm2-135m-instruct"
MAX_NEW_TOKENS = 64
SHOTS = 4  # examples before each prompt (8, the few-shot baseline's default, doubles the time on a 2-core CPU)


def main() -> None:
    start = time.perf_counter()
    train = load_records([HOSTED / "train.jsonl"])
    validation = load_records([HOSTED / "validation.jsonl"])
    half = len(train) // 2
    # (prompts to answer, records shown as examples): never a ticket's own reply
    jobs = [(train[:half], train[half:]), (train[half:], train[:half]), (validation, train)]
    model = TransformersBackend(resolve_model(MODEL))
    constraint = task_constraint("json", None, [r.reply for r in train], [])
    task = TaskConfig(type="json")
    lines = []
    for asked, shown in jobs:
        cases = cases_from_records(asked, task)
        backend = FewShotBackend(model, shown, k=SHOTS)
        replies = backend.generate(cases, max_new_tokens=MAX_NEW_TOKENS, constraint=constraint, label="hosted")
        lines += [{"prompt": c.messages[-1]["content"], "output": g.output} for c, g in zip(cases, replies)]
    out = HOSTED / "replies.jsonl"
    out.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    print(f"wrote {out.relative_to(HERE)}: {len(lines)} replies in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
