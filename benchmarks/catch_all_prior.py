"""Does a tuned model under-predict its catch-all label? Its finished run's test replies against a prior shift.

    .venv/bin/python benchmarks/catch_all_prior.py --project /tmp/ti4/default/oos [--label out_of_scope]

For a project whose `tunesmith run` finished (a label task: a JSON task's first match field, or a classification),
it loads the tuned model of that run, scores the catch-all reply (`{"intent": "out_of_scope"}`)
teacher-forced for every test case, and prints accuracy in and out of the catch-all label as the model answered
and as it would have answered had it chosen the catch-all whenever that reply's probability passed a threshold.
A threshold that gains out-of-scope accuracy at little in-scope cost says the model could tell but its prior for
the label was too low: what `train.oversample` corrects in the weights. Reads the run; trains nothing.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from tunesmith.chat import training_example
from tunesmith.config import load_config
from tunesmith.data.project import read_records, stratify_field
from tunesmith.data.records import Record
from tunesmith.data.split import reply_label
from tunesmith.eval.suite import cases_from_records, with_system_prompt
from tunesmith.models import load_model, load_tokenizer, resolve_model
from tunesmith.runs import load_summary

THRESHOLDS = (-1.0, -2.0, -3.0, -4.0, -5.0)  # natural log of the catch-all reply's probability


def run_stages(project: Path) -> dict[str, Path]:
    """The run directories of the project's last `tunesmith run` (its summary), by stage."""
    summary = load_summary(project)
    if summary is None:
        raise SystemExit(f"no finished `tunesmith run` in {project}: run it first")
    return {s["stage"]: Path(s["run"]) for s in summary["stages"]}


def reply_for(label: str, field: str) -> str:
    return label if field == "label" else json.dumps({field: label}, ensure_ascii=False)


def label_of(reply: str | dict | None, field: str) -> str | None:
    """The label of a reply (text, or an expected JSON object) as training reads it (`reply_label`)."""
    text = json.dumps(reply, ensure_ascii=False) if isinstance(reply, dict) else reply or ""
    return reply_label(Record(messages=[{"role": "assistant", "content": text}]), field)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", required=True, type=Path)
    ap.add_argument("--label", default="out_of_scope", help="the catch-all label")
    args = ap.parse_args()
    cfg, project = load_config(args.project)
    field = stratify_field(cfg)
    if field is None:
        raise SystemExit("not a label task: set task.match_fields (json) or task.type: classification")
    stages = run_stages(project)
    split, train, tuned = stages["split"], stages["train"], stages["eval-tuned"]
    cases = {c.id: c for c in cases_from_records(read_records(split / "heldout.jsonl"), cfg.task)}

    ref = resolve_model(cfg.model.base)
    tok = load_tokenizer(ref)
    model = load_model(ref, "fp32")
    if (train / "adapter").exists():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, train / "adapter")
    else:
        model = load_model(resolve_model(str(train / "model")), "fp32")
    model.eval()
    catch_all = reply_for(args.label, field)

    rows = []
    for line in (tuned / "results.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        if r.get("suite") != "heldout" or r["id"] not in cases:
            continue
        case = cases[r["id"]]
        messages = with_system_prompt(case.messages, cfg.task) + [{"role": "assistant", "content": catch_all}]
        ex = training_example(tok, messages, case.tools, cfg.data.max_seq_len)
        ids, labels = torch.tensor([ex.input_ids]), torch.tensor(ex.labels[1:])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
        keep = labels != -100
        score = logp[keep].gather(1, labels[keep][:, None]).sum().item()
        rows.append((label_of(r["expected"], field), label_of(r.get("output"), field), score))

    def accuracy(rule) -> tuple[float, float, float]:
        inside = [rule(p, s) == e for e, p, s in rows if e != args.label]
        outside = [rule(p, s) == e for e, p, s in rows if e == args.label]
        both = inside + outside
        return tuple(sum(x) / len(x) if x else math.nan for x in (inside, outside, both))

    print(f"{project}: {len(rows)} test cases, catch-all {catch_all}, tuned model of {train.name}")
    print("rule | in scope | out of scope | overall")
    print("as answered | {:.3f} | {:.3f} | {:.3f}".format(*accuracy(lambda p, s: p)))
    for t in THRESHOLDS:
        shifted = accuracy(lambda p, s, t=t: args.label if s > t else p)
        print(f"catch-all when p > e^{t:g} ({math.exp(t):.3f}) | " + " | ".join(f"{v:.3f}" for v in shifted))


if __name__ == "__main__":
    main()
