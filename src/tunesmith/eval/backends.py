"""Generation backends. `TransformersBackend`: batched, left-padded, greedy, stopping at the end-of-turn token,
with a LoRA adapter applied on top of the base without merging.

    backend = TransformersBackend(resolve_model("builtin:smollm2-135m-instruct"), adapter="run/adapter")
    outputs = backend.generate(cases, max_new_tokens=64)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tunesmith.chat import render_prompt
from tunesmith.eval.suite import EvalCase
from tunesmith.models import ModelRef, load_model, load_tokenizer, resolve_precision


@dataclass
class Generation:
    output: str
    new_tokens: int
    hit_limit: bool
    latency_s: float  # the batch's wall time divided by its size


class TransformersBackend:
    """Local generation with transformers (+ peft for adapters)."""

    def __init__(self, model_ref: ModelRef, adapter: str | Path | None = None, precision: str = "auto") -> None:
        import torch

        self.tok = load_tokenizer(model_ref)
        self.tok.padding_side = "left"
        model = load_model(model_ref)
        if adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter))
        self.model = model.eval()
        self.precision = resolve_precision(precision)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(self.device)
        self.eot_id = self.tok.convert_tokens_to_ids(self.tok.eos_token)

    def generate(self, cases: list[EvalCase], max_new_tokens: int = 128, batch_size: int = 16,
                 label: str = "Generating", no_repeat_ngram_size: int | None = None) -> list[Generation]:
        """Greedy replies for every case, in case order; longest prompts first so batches pad little."""
        import torch
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        prompts = [render_prompt(self.tok, c.messages, c.tools) for c in cases]
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        results: list[Generation | None] = [None] * len(prompts)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn()) as progress:
            task = progress.add_task(label, total=len(prompts))
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                enc = self.tok([prompts[i] for i in idx], return_tensors="pt", padding=True,
                               add_special_tokens=False).to(self.device)
                began = time.perf_counter()
                with torch.inference_mode(), torch.autocast(self.device, dtype=torch.bfloat16,
                                                            enabled=self.precision == "bf16"):
                    out = self.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                              eos_token_id=self.eot_id, pad_token_id=self.tok.pad_token_id,
                                              no_repeat_ngram_size=no_repeat_ngram_size or 0)
                per_case = (time.perf_counter() - began) / len(idx)
                new = out[:, enc["input_ids"].shape[1]:]
                for row, i in enumerate(idx):
                    ids = new[row].tolist()
                    stopped = self.eot_id in ids
                    if stopped:
                        ids = ids[:ids.index(self.eot_id)]
                    else:
                        ids = [t for t in ids if t != self.tok.pad_token_id]
                    results[i] = Generation(self.tok.decode(ids, skip_special_tokens=True), len(ids),
                                            not stopped, per_case)
                progress.advance(task, len(idx))
        return results  # type: ignore[return-value]
