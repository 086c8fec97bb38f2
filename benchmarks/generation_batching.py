"""Batched generation vs a one-prompt-at-a-time `generate` loop, on the built-in model, in one run.

    .venv/bin/python benchmarks/generation_batching.py [--prompts 64] [--max-new-tokens 64] [--batch-sizes 16 32 64]

Same 64 prompts (the support-triage example's user messages with its system prompt, rendered with the model's
chat template), same model, precision, greedy decoding, `no_repeat_ngram_size` and end-of-turn stop. The baseline
calls `model.generate` once per prompt; tunesmith's `TransformersBackend` sorts prompts by length and generates
left-padded batches. Output tokens/s counts only real reply tokens (never padding). Prints tokens/s, the speed-up
ratio, and how many greedy outputs are identical to the baseline's (bf16 batches can flip a near-tie).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tunesmith.chat import render_prompt
from tunesmith.config import load_config
from tunesmith.eval.suite import EvalCase, with_system_prompt
from tunesmith.generate.backends import TransformersBackend
from tunesmith.models import resolve_model


def load_cases(project: Path, n: int) -> list[EvalCase]:
    cfg, proj = load_config(project)
    cases = []
    for path in sorted((proj / "data").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            msgs = json.loads(line)["messages"]
            prompt = [m for m in msgs if m["role"] != "assistant"][:2]
            cases.append(EvalCase(id=str(len(cases)), messages=with_system_prompt(prompt, cfg.task)))
            if len(cases) == n:
                return cases
    return cases


def one_at_a_time(
    backend: TransformersBackend, cases: list[EvalCase], max_new_tokens: int, no_repeat: int | None
) -> tuple[list[str], int, float]:
    """The baseline: a plain loop over `model.generate`, one prompt per call."""
    import torch

    outputs, tokens = [], 0
    began = time.perf_counter()
    for case in cases:
        enc = backend.tok(
            [render_prompt(backend.tok, case.messages)], return_tensors="pt", add_special_tokens=False
        ).to(backend.device)
        with (
            torch.inference_mode(),
            torch.autocast(backend.device, dtype=torch.bfloat16, enabled=backend.precision == "bf16"),
        ):
            out = backend.model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=backend.eot_id,
                pad_token_id=backend.tok.pad_token_id,
                no_repeat_ngram_size=no_repeat or 0,
            )
        ids = out[0, enc["input_ids"].shape[1] :].tolist()
        ids = ids[: ids.index(backend.eot_id)] if backend.eot_id in ids else ids
        tokens += len(ids)
        outputs.append(backend.tok.decode(ids, skip_special_tokens=True))
    return outputs, tokens, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path("examples/support-triage"))
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        default=None,
        help="default: the project's train.precision (bf16 on AMX CPUs)",
    )
    args = parser.parse_args()

    cfg, _ = load_config(args.project)
    cases = load_cases(args.project, args.prompts)
    backend = TransformersBackend(resolve_model(cfg.model.base), precision=args.precision or cfg.train.precision)
    no_repeat = cfg.eval.no_repeat_ngram_size
    backend.generate(cases[:4], max_new_tokens=4, batch_size=4, label="warm-up")

    base_out, base_tokens, base_s = one_at_a_time(backend, cases, args.max_new_tokens, no_repeat)
    base_rate = base_tokens / base_s
    rows = [("one prompt at a time (baseline)", base_tokens, base_s, base_rate, 1.0, len(cases))]
    for bs in args.batch_sizes:
        began = time.perf_counter()
        gens = backend.generate(
            cases,
            max_new_tokens=args.max_new_tokens,
            batch_size=bs,
            label=f"batch {bs}",
            no_repeat_ngram_size=no_repeat,
        )
        wall = time.perf_counter() - began
        tokens = sum(g.new_tokens for g in gens)
        same = sum(g.output == b for g, b in zip(gens, base_out))
        rows.append((f"tunesmith batched, batch {bs}", tokens, wall, tokens / wall, tokens / wall / base_rate, same))

    print(
        f"\n{len(cases)} prompts, max_new_tokens {args.max_new_tokens}, {backend.precision}, {backend.device}, "
        f"model {cfg.model.base}"
    )
    print(f"{'setting':<34}{'tokens':>8}{'wall s':>9}{'tokens/s':>10}{'ratio':>8}{'same output':>13}")
    for name, tokens, wall, rate, ratio, same in rows:
        print(f"{name:<34}{tokens:>8}{wall:>9.1f}{rate:>10.1f}{ratio:>7.2f}x{same:>9}/{len(cases)}")


if __name__ == "__main__":
    main()
