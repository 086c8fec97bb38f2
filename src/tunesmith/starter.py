"""`tunesmith init DIR`: a commented starter project a person can read and edit."""

from __future__ import annotations

import json
from pathlib import Path

from tunesmith.errors import fail
from tunesmith.files import atomic_write_text

STARTER_YAML = """\
# tunesmith project. Every field is optional; `tunesmith config schema` lists them all with their docs.
model:
  # builtin:smollm2-135m-instruct, a local model directory, a .gguf file, or a hub id (org/name).
  base: builtin:smollm2-135m-instruct

task:
  # chat (free text), json (a JSON object per reply), classification (a label per reply) or math (worked
  # solutions ending in a number, e.g. GSM8K's `#### 72`: scored on that number).
  type: json
  # JSON fields that must match the expected reply for a case to count as correct.
  match_fields: [label]

data:
  # Conversations (ChatML `messages`, ShareGPT, Alpaca or prompt/completion JSONL), relative to this file.
  train: [data/*.jsonl]
  heldout_fraction: 0.2      # kept aside as the test set, read once at the end for the gate
  validation_fraction: 0.1   # of the rest: every choice made while training (checkpoint, recipe search) uses it
  # test: [data/test.jsonl]  # your own test file instead (e.g. a data set's official test split)
  max_seq_len: 512

eval:
  # Extra suites written before training: red-team, out-of-domain, edge cases, as JSONL cases
  # ({"messages": [...], "expected": ..., "behavior": refuse|escalate|clarify|abstain, "kind": ..., "tags": [...]})
  # or in IFEval's format. A suite can name its scorers: {path: eval/ood.jsonl, scorers: [{type: behavior}]}.
  suites: []
  general_probe: true        # did training break general instruction following? (150 built-in IFEval-style prompts)
  general_probe_limit: 120   # the other 30 check forgetting in `tunesmith tune` (50 were too few to gate on)
  # decoding: auto         # json/classification replies held to the schema or label set (constrained), and
                            # also reported decoded freely as `heldout_free`; max_new_tokens derives from the data
  # baselines: auto         # label tasks: a TF-IDF classifier and few-shot prompting, on the same test cases
  # baselines: [auto, {name: hosted, base_url: https://api.openai.com/v1, model: "ft:...", api_key_env: OPENAI_API_KEY}]
  #                         # ...and a hosted model (or its recorded replies: {name: hosted, responses: replies.jsonl})
  gate:
    metric: task_accuracy   # the tuned model must beat the base on this, with the interval above zero
    min_delta: 0.0
    min_value: {target}         # the value you need to ship (e.g. 0.85): beating a useless base is not enough
  gates:                    # more rules that must hold too
    - {metric: general.prompt_strict_accuracy, min_delta: -0.05, require_significant: false}

train:
  method: lora       # lora, qlora (4-bit base) or full
  lora:              # the adapter of lora/qlora (also alpha, dropout, target_modules, layers); dora / rslora: true
    r: 16            # for the LoRA variants
  objective: sft     # sft, dpo (preference pairs), grpo (with grpo: {rewards: [...]}), reward (a reward model)
  epochs: auto       # small data sets get more passes; the validation set picks the checkpoint and stops early
  lr: 1.0e-3         # the built-in 135M model: 1e-3 learned Banking77 intents far faster than 2e-4 (the usual
                     # advice for 7B-class models); `tunesmith tune` searches it on your own validation set
  batch_size: 8      # batch 16 at lr 1.5e-3: 1.2x faster here, but 0.815 on Banking77 test queries (batch 8: 0.838)
  general_data: [builtin:self]  # the base model's own replies to built-in everyday prompts, mixed in against
  general_share: 0.1            # forgetting (without them the Banking77 model answered everything with an intent),
  general_kl: 3.0               # trained towards the base's own next-token distribution, not one sampled reply
                                # (Banking77: the general probe lost nothing instead of 5 points; 0 = sampled replies)
  # oversample: auto  # a catch-all label (out_of_scope, other, none, ...) shown until it is about a quarter of the
                      # examples, at most 10 times; {label: times} to choose, {} for none

budget:
  hourly_usd: null   # price per hour of your machine, to put a dollar figure on training and eval
"""

EXAMPLE = {
    "messages": [
        {"role": "system", "content": 'Classify the message. Reply with JSON only: {"label": ...}'},
        {"role": "user", "content": "My card was charged twice this month."},
        {"role": "assistant", "content": '{"label": "billing"}'},
    ]
}


def starter_sections(target: float | None = None) -> dict:
    """The starter's tunesmith.yaml as a mapping of sections (what `write_starter` writes, without its comments):
    for projects made another way (`tunesmith import openai-job`) that start from the same defaults."""
    import yaml

    return yaml.safe_load(_starter_yaml(target))


def _starter_yaml(target: float | None) -> str:
    return STARTER_YAML.replace("{target}", "null" if target is None else str(target))


def write_starter(directory: str | Path, force: bool = False, target: float | None = None) -> list[Path]:
    """Create tunesmith.yaml, data/example.jsonl and eval/ in `directory`; refuse to overwrite unless forced.
    `target` is the gate's absolute target (`eval.gate.min_value`)."""
    root = Path(directory)
    cfg = root / "tunesmith.yaml"
    if cfg.exists() and not force:
        raise fail("Project exists", str(cfg), "already exists", "use --force to overwrite it")
    written = [atomic_write_text(cfg, _starter_yaml(target))]
    data = root / "data" / "example.jsonl"
    if not data.exists():
        written.append(atomic_write_text(data, json.dumps(EXAMPLE) + "\n"))
    (root / "eval").mkdir(parents=True, exist_ok=True)
    return written
