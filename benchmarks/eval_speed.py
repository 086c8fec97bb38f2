"""Base-model evaluation of a label task: before (free decoding to 128 tokens) and now (the derived limit, decoding
constrained to the reply schema, plus the same cases decoded freely), side by side in one run.

    .venv/bin/python benchmarks/eval_speed.py [--cases 600] [--work /tmp/tunesmith-evalspeed] [--adapter DIR]

The project is benchmarks/intent_quality.py's `banking77` variant (600 test queries, 77 intents). Each setting
evaluates the built-in base model on the test cases in a fresh process, without the generation cache, and
prints wall time, output tokens, task accuracy and valid JSON, with the speed-up as a ratio. The base model
never answers in the task's JSON when it decodes freely, so "the same scores" here means the same free-decoding
scores with a fraction of the tokens; constrained decoding changes what it is able to answer.

With `--adapter` (a LoRA adapter trained on this task, e.g. a `run`'s `.tunesmith/runs/*-train-*/adapter`), the
tuned model is evaluated the same way twice: each suite decoded on its own (before), and the constrained suite
taking every free reply its grammar accepts whole (now: `Backend.settled`), with how many replies differ.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

SETTINGS = {  # name -> (description, overrides)
    "before": ("free decoding, max_new_tokens 128 (before)", ["eval.decoding=free", "eval.max_new_tokens=128"]),
    "limit": ("free decoding, derived limit", ["eval.decoding=free"]),
    "now": ("constrained + free, derived limit (default)", []),
}
TUNED = {  # the same for a tuned adapter
    "tuned-twice": "tuned: constrained and free each decoded (before)",
    "tuned-now": "tuned: constrained takes the free replies (now)",
}


def child(project: Path, name: str, cases: int, adapter: Path | None = None) -> dict:
    from tunesmith.config import load_config
    from tunesmith.eval.evaluate import evaluate
    from tunesmith.generate.backends import TransformersBackend
    from tunesmith.pipeline import eval_plan, prepare

    overrides = SETTINGS.get(name, ("", []))[1] + [f"eval.limit={cases}", "eval.general_probe=false", "eval.gates=[]"]
    p = prepare(*load_config(project, overrides), with_suites=True)
    plan = eval_plan(p.cfg, p.project, p.st_split, p.model_ref, p.schema, p.suites)
    backend = TransformersBackend(p.model_ref, adapter=adapter, precision=p.cfg.train.precision)
    if name == "tuned-twice":
        backend.settled = lambda free, constraint: False
    out = Path(f"/tmp/tunesmith-evalspeed-{name}")
    out.mkdir(exist_ok=True)
    began = time.perf_counter()
    metrics = evaluate(
        backend,
        {k: v for k, v in plan.suites.items() if k.startswith("heldout")},
        p.cfg,
        out,
        p.schema,
        name,
        None,
        plan.limits,
        plan.decodings,
    )
    wall = time.perf_counter() - began
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {
        "wall_s": wall,
        "outputs": [r["output"] for r in rows if r["suite"] == "heldout"],
        "limit": plan.decodings["heldout"].max_new_tokens,
        "suites": {
            k: {m: v.get(m) for m in ("task_accuracy", "format_validity", "new_tokens")}
            for k, v in metrics.items()
            if "#" not in k
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=600)
    ap.add_argument("--work", type=Path, default=Path("/tmp/tunesmith-evalspeed"))
    ap.add_argument("--adapter", type=Path, help="a tuned adapter of this task: also time the tuned model")
    ap.add_argument("--tuned-only", action="store_true", help="with --adapter: skip the base model's settings")
    ap.add_argument("--child")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from _child import child_result, print_result
    from intent_quality import write_project

    args.work.mkdir(parents=True, exist_ok=True)
    project = write_project(args.work, "banking77")
    if args.child:
        print_result(child(project, args.child, args.cases, args.adapter))
        return
    common = ["--cases", str(args.cases), "--work", str(args.work)]
    if not args.tuned_only:
        results = {name: child_result(__file__, "--child", name, *common) for name in SETTINGS}
        before = results["before"]["wall_s"]
        print(f"\nbase model ({args.cases} Banking77 test cases)")
        print(f"{'setting':<46}{'limit':>6}{'wall s':>9}{'speed-up':>10}  suite: task accuracy / valid JSON / tokens")
        for name, r in results.items():
            suites = "; ".join(
                f"{k} {v['task_accuracy']:.3f} / {v['format_validity']:.3f} / {v['new_tokens']:.1f}"
                for k, v in r["suites"].items()
            )
            print(f"{SETTINGS[name][0]:<46}{r['limit']:>6}{r['wall_s']:>9.1f}{before / r['wall_s']:>9.2f}x  {suites}")
    if args.adapter:
        print_tuned({n: child_result(__file__, "--child", n, *common, "--adapter", str(args.adapter)) for n in TUNED})


def print_tuned(results: dict) -> None:
    before, now = results["tuned-twice"], results["tuned-now"]
    differ = sum(a != b for a, b in zip(before["outputs"], now["outputs"]))
    print(f"\ntuned model (the adapter): {differ} of {len(now['outputs'])} constrained replies differ between them")
    print(f"{'setting':<52}{'wall s':>9}{'speed-up':>10}  suite: task accuracy / valid JSON")
    for name, r in results.items():
        suites = "; ".join(f"{k} {v['task_accuracy']:.3f} / {v['format_validity']:.3f}" for k, v in r["suites"].items())
        print(f"{TUNED[name]:<52}{r['wall_s']:>9.1f}{before['wall_s'] / r['wall_s']:>9.2f}x  {suites}")


if __name__ == "__main__":
    main()
