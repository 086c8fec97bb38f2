"""The GPU path, measured: plain TRL SFTTrainer defaults vs tunesmith's settings on real model shapes, one GPU.

    python benchmarks/gpu.py                          # H200-class GPU: 1B and 8B shapes, LoRA/QLoRA, 512/2048 tokens
    python benchmarks/gpu.py --device cpu --tiny      # the same code path on a CPU, a tiny shape, 2 steps
    python benchmarks/gpu.py --json out.json --budget-s 450 --steps 5 --batch-size 8

Models are `shape:llama-3.2-1b` and `shape:llama-3.1-8b` (tunesmith.shapes): the published configs with seeded
random weights and the built-in tokenizer, so nothing is downloaded; speed and memory do not depend on the weights.
Nothing is installed: the script says which optional packages it found (liger-kernel, flash-attn, bitsandbytes, ...).

Each row trains in its own process (its peak memory is its own) on the same synthetic conversations, every row
filled to the sequence length (a quarter of it the assistant's reply, the trained part), with the same batch size,
learning rate and step count:
- TRL defaults: the model as TRL loads it from a path (fp32 weights under bf16 autocast), LoRA dropout 0.05,
  gradient checkpointing on (SFTConfig's default), random batches; QLoRA: the standard 4-bit NF4 load, same changes.
- tunesmith: its own recipe as `tunesmith train` runs it on this device (`tunesmith.train.sft.build_trainer`), with
  gradient checkpointing on only where the memory plan (tunesmith.cost.fit_on, this card's memory) needs it.
Printed per row: tokens/s (non-padding, the first step left out as warm-up), peak memory (CUDA:
torch.cuda.max_memory_allocated from the start of training; CPU: the process's peak RSS), MFU (model FLOPs per
token x tokens/s over the faster of the bf16 and fp32 matmul peaks measured here; model FLOPs: 4N for a frozen
base's forward and input-gradient backward + 6 per adapter parameter + causal attention 6 x layers x seq x d;
recomputation by checkpointing is not model FLOPs), the loss (the mean of the step losses over one pass, steps x
batch examples, the same for both sides; each side batches them in its own order), and the cost estimator's
prediction (tunesmith.cost, the CUDA-context overhead left out, as max_memory_allocated does not see it) beside the
measured peak, flagged `!` when off by more than 15%. Then the batched eval backend's output tokens/s on the 1B shape.

A time budget (`--budget-s`, default 450 s) skips rows that would start after it; skipped rows say so.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

GIB = 1024**3
TOLERANCE = 0.15
OPTIONAL = {
    "liger-kernel": "liger_kernel",
    "flash-attn": "flash_attn",
    "bitsandbytes": "bitsandbytes",
    "triton": "triton",
    "kernels": "kernels",
    "trl": "trl",
    "peft": "peft",
    "accelerate": "accelerate",
}
WORDS = [
    "order",
    "invoice",
    "refund",
    "camera",
    "offline",
    "billing",
    "shipping",
    "account",
    "password",
    "reset",
    "charge",
    "twice",
    "delivery",
    "late",
    "address",
    "change",
    "cancel",
    "subscription",
    "upgrade",
    "plan",
    "discount",
    "coupon",
    "warranty",
    "repair",
    "broken",
    "screen",
    "battery",
    "login",
    "error",
    "payment",
    "declined",
    "receipt",
    "tracking",
    "number",
    "package",
    "missing",
    "return",
    "label",
    "exchange",
    "size",
    "colour",
    "manager",
    "support",
    "ticket",
    "urgent",
    "priority",
    "normal",
    "low",
    "high",
    "customer",
    "agent",
    "reply",
    "thanks",
    "please",
    "help",
    "today",
    "tomorrow",
    "yesterday",
    "morning",
    "evening",
    "week",
    "month",
    "year",
    "the",
    "a",
    "an",
    "and",
    "or",
    "but",
    "with",
    "without",
    "for",
    "from",
    "to",
    "of",
    "in",
    "on",
    "at",
    "by",
    "is",
    "was",
    "were",
    "be",
    "been",
    "have",
    "has",
    "had",
    "do",
    "does",
    "did",
    "can",
    "could",
    "will",
    "would",
    "should",
    "may",
    "might",
    "must",
]


# --------------------------------------------------------------------------------------------------------- child


def conversations(tok, seq: int, n: int, seed: int = 0) -> list:
    """`n` conversations whose chat-rendered length is about `seq` tokens, a quarter of them the reply."""
    from tunesmith.data.records import Record

    rng = random.Random(seed)
    per_word = len(tok(" ".join(WORDS), add_special_tokens=False)["input_ids"]) / len(WORDS)
    overhead = len(
        tok.apply_chat_template(
            [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], tokenize=True
        )
    )
    budget = max(8, int(seq * 0.95) - overhead)  # a margin below max_seq_len, so no reply is truncated
    reply_words, prompt_words = max(1, int(budget / 4 / per_word)), max(1, int(budget * 3 / 4 / per_word))
    rows = []
    for i in range(n):
        user = " ".join(rng.choice(WORDS) for _ in range(prompt_words))
        reply = " ".join(rng.choice(WORDS) for _ in range(reply_words))
        rows.append(
            Record(
                messages=[{"role": "user", "content": f"ticket {i}: {user}"}, {"role": "assistant", "content": reply}],
                source="synthetic",
                line=i + 1,
            )
        )
    return rows


def train_row(spec: dict) -> dict:
    """One training row in this process: build the trainer as `tunesmith train` does (or as plain TRL does), run
    `steps` steps, time them and read the peak memory."""
    import torch
    from transformers import TrainerCallback

    from tunesmith.config import Config
    from tunesmith.models import load_model, load_tokenizer, resolve_model
    from tunesmith.train import sft

    cuda = torch.cuda.is_available()
    cfg = Config()
    cfg.data.max_seq_len = spec["seq"]
    t = cfg.train
    t.method, t.max_steps, t.batch_size, t.grad_accum = spec["method"], spec["steps"], spec["batch"], 1
    t.logging_steps, t.save_steps, t.seed = 1, 10**6, 42
    baseline = spec["side"] == "trl"
    if baseline:  # what plain TRL does where tunesmith differs
        t.lora.dropout, t.gradient_checkpointing, t.batching = 0.05, True, "random"
    elif cuda:  # gradient checkpointing from the memory plan (what issue 17 asks sft.py to do; see cost.fit_on)
        from tunesmith.cost import Recipe, fit_on, model_shape

        card = torch.cuda.get_device_properties(0).total_memory / GIB
        t.gradient_checkpointing = fit_on(
            model_shape(spec["model"]), Recipe.from_config(cfg), card
        ).recipe.gradient_checkpointing
    ref = resolve_model(spec["model"])
    tok = load_tokenizer(ref)
    records = conversations(tok, spec["seq"], spec["steps"] * spec["batch"])

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.marks: list[tuple[float, int]] = []

        def _mark(self, state) -> None:
            if cuda:
                torch.cuda.synchronize()
            self.marks.append((time.perf_counter(), state.num_input_tokens_seen))

        def on_train_begin(self, args, state, control, **kwargs):
            if cuda:  # the peak of training, not of loading (a fp32 load cast to bf16 peaks higher for a moment)
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            self._mark(state)

        def on_step_end(self, args, state, control, **kwargs):
            self._mark(state)

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as tmp, contextlib.ExitStack() as stack:
        if baseline:
            stack.enter_context(mock.patch.object(sft, "_labeled_head_class", lambda base, *_: base))  # TRL's own loss
            if spec["method"] == "lora":  # TRL loads a model given by path in fp32 (SFTTrainer's docstring)
                stack.enter_context(mock.patch.object(sft, "load_training_model", lambda c, r, p: load_model(r)))
            # QLoRA: the standard 4-bit NF4 load is tunesmith's too
        trainer = sft.build_trainer(
            cfg, ref, records, Path(tmp), save_strategy="no", eval_strategy="no", report_to="none"
        )[0]
        built = time.perf_counter() - began
        clock = Clock()
        trainer.add_callback(clock)
        trainer.train()
    marks = clock.marks
    first = 1 if len(marks) >= 3 else 0  # leave the warm-up step out when another remains
    (t0, n0), (t1, n1) = marks[first], marks[-1]
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    model = trainer.model
    result = {
        **spec,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "build_s": built,
        "steps_done": trainer.state.global_step,
        "measured_steps": len(marks) - 1 - first,
        "tokens": int(n1 - n0),
        "seconds": t1 - t0,
        "tokens_per_s": (n1 - n0) / (t1 - t0) if t1 > t0 else None,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        # Every row trains one pass over the same examples (steps x batch of them), in its own batch order (TRL's
        # random sampler, tunesmith's length grouping): the mean of the step losses compares the two sides.
        "mean_loss": sum(losses) / len(losses) if losses else None,
        "bf16": trainer.args.bf16,
        "gradient_checkpointing": trainer.args.gradient_checkpointing,
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "attention": getattr(getattr(model, "config", None), "_attn_implementation", None),
        "optim": str(trainer.args.optim),
        # the trainer class under tunesmith's guard (its mixins live in tunesmith.train.trainer)
        "trainer_class": next(
            c.__name__ for c in type(trainer).__mro__[1:] if c.__module__ != "tunesmith.train.trainer"
        ),
        "peak_gib": torch.cuda.max_memory_allocated() / GIB if cuda else None,
        "reserved_gib": torch.cuda.max_memory_reserved() / GIB if cuda else None,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB,
    }
    return result


def eval_row(spec: dict) -> dict:
    """The batched eval backend's output tokens/s (greedy, no stop: random weights rarely emit end-of-turn)."""
    import torch

    try:
        from tunesmith.generate.backends import (
            TransformersBackend,  # after the generate/ move
        )
    except ImportError:
        from tunesmith.generate.backends import TransformersBackend
    from tunesmith.eval.suite import EvalCase
    from tunesmith.models import resolve_model

    backend = TransformersBackend(resolve_model(spec["model"]), precision="auto")
    cases = [
        EvalCase(
            id=str(i),
            messages=[{"role": "user", "content": " ".join(random.Random(i).choice(WORDS) for _ in range(40))}],
        )
        for i in range(spec["prompts"])
    ]
    backend.generate(cases[:2], max_new_tokens=4, batch_size=2, label="warm-up")
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    began = time.perf_counter()
    gens = backend.generate(cases, max_new_tokens=spec["new_tokens"], batch_size=spec["batch"], label="batched")
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    wall = time.perf_counter() - began
    tokens = sum(g.new_tokens for g in gens)
    return {
        **spec,
        "tokens": tokens,
        "seconds": wall,
        "tokens_per_s": tokens / wall,
        "precision": backend.precision,
        "device": backend.device,
        "merged": backend.merged,
    }


def matmul_peak_tflops(device: str, n: int, repeats: int, dtype: str = "bfloat16") -> float:
    """This device's dense matmul rate in `dtype` on random n x n matrices: the best of three timed rounds (one
    round of a few CPU matmuls read a rate low enough for a training row to pass it)."""
    import torch

    a = torch.randn(n, n, dtype=getattr(torch, dtype), device=device)
    b = torch.randn(n, n, dtype=getattr(torch, dtype), device=device)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(3):
        if device == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        for _ in range(repeats):
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * n**3 * repeats / (time.perf_counter() - began) / 1e12)
    return best


# -------------------------------------------------------------------------------------------------------- parent


def found_packages() -> dict[str, str | None]:
    out = {}
    for dist, module in OPTIONAL.items():
        if importlib.util.find_spec(module) is None:
            out[dist] = None
            continue
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "found"
    return out


def model_flops_per_token(shape, method: str, seq: int, lora_r: int = 16) -> float:
    """Model FLOPs per trained token (see the module docstring): 4N frozen (LoRA/QLoRA) or 6N (full), 6 per adapter
    parameter, causal attention 6 x layers x seq x hidden (QK^T and AV, forward and backward)."""
    n_matmul = sum(i * o for _, i, o in shape.linears)
    base = (6.0 if method == "full" else 4.0) * n_matmul
    adapters = 6.0 * shape.lora_params(lora_r) if method != "full" else 0.0
    return base + adapters + 6.0 * shape.layers * seq * shape.hidden


def predicted_gib(shape, spec: dict) -> float:
    """The cost estimator's memory for this row's recipe, without its CUDA-context allowance."""
    from tunesmith.cost import Recipe, estimate_memory

    trl = spec["side"] == "trl"
    recipe = Recipe(
        method=spec["method"],
        batch_size=spec["batch"],
        seq_len=spec["seq"],
        lora_r=16,
        gradient_checkpointing=bool(spec.get("gradient_checkpointing", trl)),
        base_precision="fp32" if trl else "bf16",
    )
    est = estimate_memory(shape, recipe)
    return est.total - est.overhead


def run_child(spec: dict, device: str, timeout: float) -> dict:
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(spec)],
            capture_output=True,
            text=True,
            env=env,
            timeout=max(1.0, timeout),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout:.0f} s"}
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {**spec, "error": f"exit {proc.returncode}: " + " | ".join(tail)[-400:]}
    return json.loads(line[len("RESULT ") :])


def plan(args) -> tuple[list[dict], dict | None]:
    if args.tiny:
        shapes, seqs = ["llama-tiny"], [args.tiny_seq]
    else:
        shapes, seqs = ["llama-3.1-8b", "llama-3.2-1b"], [2048, 512]  # the targets' rows (8B) first
    methods = [m for m in args.methods.split(",") if m]
    rows = []
    for shape in shapes:
        for method in methods:
            for seq in seqs:
                for side in ("trl", "tunesmith"):
                    rows.append(
                        {
                            "kind": "train",
                            "model": f"shape:{shape}",
                            "shape": shape,
                            "method": method,
                            "seq": seq,
                            "side": side,
                            "steps": args.steps,
                            "batch": args.batch_size,
                        }
                    )
    evaluation = {
        "kind": "eval",
        "model": "shape:llama-tiny" if args.tiny else "shape:llama-3.2-1b",
        "prompts": 8 if args.tiny else 128,
        "new_tokens": 8 if args.tiny else 128,
        "batch": 8 if args.tiny else 64,
    }
    return rows, (evaluation if not args.no_eval else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None, help="default: cuda when available")
    parser.add_argument("--tiny", action="store_true", help="a tiny shape, short rows, 2 steps (the CPU check)")
    parser.add_argument("--steps", type=int, default=None, help="steps per row (default 5; --tiny: 2)")
    parser.add_argument("--batch-size", type=int, default=None, help="per-device batch (default 8; --tiny: 2)")
    parser.add_argument("--tiny-seq", type=int, default=128)
    parser.add_argument(
        "--methods", default=None, help="comma-separated: lora,qlora (default: qlora where bitsandbytes is installed)"
    )
    parser.add_argument("--budget-s", type=float, default=450.0, help="skip rows that would start after this")
    parser.add_argument("--no-eval", action="store_true")
    parser.add_argument("--json", type=Path, help="write every row's figures here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        result = train_row(spec) if spec["kind"] == "train" else eval_row(spec)
        print("RESULT " + json.dumps(result, default=str))
        return

    began = time.perf_counter()
    import torch

    from tunesmith.cost import model_shape

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device here (use --device cpu --tiny)")
    args.steps = args.steps or (2 if args.tiny else 5)
    args.batch_size = args.batch_size or (2 if args.tiny else 8)
    packages = found_packages()
    args.methods = args.methods or ("lora,qlora" if packages["bitsandbytes"] else "lora")
    print(f"device: {torch.cuda.get_device_name(0) if device == 'cuda' else 'cpu'}; torch {torch.__version__}")
    print("packages: " + ", ".join(f"{k} {v}" if v else f"{k} not found" for k, v in packages.items()))
    print("(nothing is installed by this script; optional kernels are used only where found)")
    # The MFU ceiling: the faster of bf16 and fp32 here (a CPU without native bf16 trains in fp32, and its
    # emulated bf16 matmuls are slower than that: a bf16 peak alone gave an MFU of 6.4 on such a host).
    n, repeats = (8192, 50) if device == "cuda" else (1024, 5)
    peaks = {dtype: matmul_peak_tflops(device, n, repeats, dtype) for dtype in ("bfloat16", "float32")}
    peak = max(peaks.values())
    print(
        f"measured matmul peak: {peak:.1f} TFLOP/s (bf16 {peaks['bfloat16']:.1f}, fp32 {peaks['float32']:.1f}; "
        f"{n}^3; the faster is the MFU ceiling)"
    )
    if device == "cuda":
        torch.cuda.empty_cache()

    rows, evaluation = plan(args)
    results = []
    for spec in rows + ([evaluation] if evaluation else []):
        left = args.budget_s - (time.perf_counter() - began)
        if left <= 0:
            results.append({**spec, "error": "not run: time budget spent"})
            continue
        results.append(run_child(spec, device, left))
        r = results[-1]
        print(
            f"  {spec.get('shape', spec['model'])} {spec.get('method', 'eval')} {spec.get('seq', '')} "
            f"{spec.get('side', '')}: " + (r["error"] if "error" in r else f"{r['tokens_per_s']:.0f} tokens/s"),
            flush=True,
        )

    shapes = {}
    print(
        f"\n{'shape':<14}{'method':<7}{'seq':>5} {'side':<10}{'tokens/s':>10}{'vs TRL':>8}{'peak GiB':>10}"
        f"{'vs TRL':>8}{'MFU':>7}{'loss':>9}{'Δ TRL':>8}{'est GiB':>9}{'est/peak':>9}"
    )
    by_key = {(r.get("shape"), r.get("method"), r.get("seq"), r.get("side")): r for r in results}
    for r in results:
        if r["kind"] != "train":
            continue
        label = f"{r['shape']:<14}{r['method']:<7}{r['seq']:>5} {r['side']:<10}"
        if "error" in r:
            print(label + r["error"])
            continue
        shape = shapes.setdefault(r["shape"], model_shape(r["model"]))
        base = by_key.get((r["shape"], r["method"], r["seq"], "trl"), {})
        peak_mem = r["peak_gib"] if r["peak_gib"] is not None else r["peak_rss_gib"]
        base_mem = base.get("peak_gib") if base.get("peak_gib") is not None else base.get("peak_rss_gib")
        mfu = model_flops_per_token(shape, r["method"], r["seq"]) * r["tokens_per_s"] / (peak * 1e12)
        est = predicted_gib(shape, r)
        r.update(mfu=mfu, estimate_gib=est, matmul_peak_tflops=peak)
        speed = r["tokens_per_s"] / base["tokens_per_s"] if base.get("tokens_per_s") else None
        mem = peak_mem / base_mem if base_mem else None
        gap = r["mean_loss"] - base["mean_loss"] if base.get("mean_loss") is not None else None
        if r["peak_gib"] is not None:
            ratio = est / r["peak_gib"]
            r["estimate_ratio"] = ratio
            estimate = f"{est:>9.2f}{ratio:>8.2f}x" + ("!" if abs(ratio - 1) > TOLERANCE else " ")
        else:
            estimate = f"{est:>9.2f}{'n/a':>9}"  # a CPU's RSS holds the interpreter and libraries: not comparable
        print(
            label
            + f"{r['tokens_per_s']:>10.0f}"
            + (f"{speed:>7.2f}x" if speed else f"{'':>8}")
            + f"{peak_mem:>10.2f}"
            + (f"{mem:>7.2f}x" if mem else f"{'':>8}")
            + f"{mfu:>7.1%}"
            + f"{r['mean_loss']:>9.4f}"
            + (f"{gap:>+8.4f}" if gap is not None else f"{'':>8}")
            + estimate
        )
    print(
        "(peak: torch.cuda.max_memory_allocated from the start of training; on a CPU the process's peak RSS. "
        "est: tunesmith.cost.estimate_memory without its CUDA-context allowance; ! = off by more than "
        f"{TOLERANCE:.0%}. loss: the mean step loss of one pass over the same examples, the same steps; "
        "Δ TRL: its difference from the TRL row.)"
    )
    for r in results:
        if r["kind"] == "eval":
            if "error" in r:
                print(f"\nbatched eval backend ({r['model']}): {r['error']}")
            else:
                print(
                    f"\nbatched eval backend ({r['model']}, {r['prompts']} prompts, batch {r['batch']}, "
                    f"{r['new_tokens']} new tokens, {r['precision']}): {r['tokens_per_s']:.0f} output tokens/s"
                )
    skipped = [r for r in results if "error" in r]
    print(
        f"\n{len(results) - len(skipped)} of {len(results)} rows measured in {time.perf_counter() - began:.0f} s"
        + (f"; {len(skipped)} not measured (see above)" if skipped else "")
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"device": device, "packages": packages, "matmul_peak_tflops": peak, "rows": results},
                indent=1,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
