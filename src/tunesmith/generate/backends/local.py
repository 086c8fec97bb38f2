"""`TransformersBackend`: local, batched, left-padded generation with transformers, stopping at the end-of-turn
token, with a LoRA adapter applied on top of the base (merged in memory only when that gives the same replies)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tunesmith.chat import render_prompt
from tunesmith.generate.backends.protocol import Backend, GenerateRequest, Generation, PromptLike
from tunesmith.generate.backends.wire import progress_bar
from tunesmith.generate.decoding import Constraint, logits_processor, settles
from tunesmith.models import (
    ModelRef,
    bf16_inference_weights,
    check_adapter_dir,
    dir_identity,
    load_model,
    load_tokenizer,
    resolve_precision,
)

MERGE_CHECK_MAX_PARAMS = 2_000_000_000  # beyond this, an adapter stays unmerged (the check would copy its weights)


class TransformersBackend(Backend):
    """Local generation with transformers (+ peft for adapters).

    An adapter is merged into the weights in memory when that is measured to give the same replies: the first
    batch that other batches follow is generated both ways, and the merged model (as fast as the base; the
    unmerged LoRA path runs 7 small extra matmuls per layer at every step) is kept only when every reply is
    identical (`merge="auto"`; `True` merges, `False` never). `merged` says what was decided."""

    def __init__(
        self,
        model_ref: ModelRef,
        adapter: str | Path | None = None,
        precision: str = "auto",
        merge: bool | str = "auto",
    ) -> None:
        import torch

        self.tok = load_tokenizer(model_ref)
        self.tok.padding_side = "left"
        model = load_model(model_ref)
        if adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(check_adapter_dir(adapter)))
        self.model = model.eval()
        self.precision = resolve_precision(precision)
        if self.precision == "bf16":
            bf16_inference_weights(self.model)  # the same products autocast computes, without recasting weights
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(self.device)
        self.eot_id = self.tok.convert_tokens_to_ids(self.tok.eos_token)
        adapter_id = dir_identity(Path(adapter)) if adapter is not None else None
        self.fingerprint = json.dumps(
            {"model": model_ref.identity, "adapter": adapter_id, "precision": self.precision, "device": self.device}
        )
        self.merge, self.merged = (merge if adapter is not None else False), False
        # a base model's replies to prompts that ship with tunesmith are every project's (a tuned one's are not)
        self.shares_shipped = adapter is None
        if self.merge is True:
            self.model.merge_adapter()
            self.merged = True

    @classmethod
    def from_model(cls, model, tok, fingerprint: str, precision: str = "auto") -> TransformersBackend:
        """A backend over a model already in memory (e.g. the one being trained, for its validation replies).
        Left padding is set on a copy of the tokenizer, so the caller's stays as it was."""
        import copy

        self = cls.__new__(cls)
        self.tok = copy.copy(tok)
        self.tok.padding_side = "left"
        self.model, self.precision = model, resolve_precision(precision)
        self.device = next(model.parameters()).device.type
        self.eot_id = self.tok.convert_tokens_to_ids(self.tok.eos_token)
        self.fingerprint = fingerprint
        self.merge = self.merged = False  # a model being trained is never merged into
        return self

    def prompt_key(self, case: PromptLike) -> str:
        return render_prompt(self.tok, case.messages, case.tools)

    def settled(self, free: Generation, constraint: Constraint) -> bool:
        """A free reply that ended on the end-of-turn token is the constrained one when the grammar takes it whole
        (`tunesmith.generate.decoding.settles`) and it re-encodes to as many tokens as were generated (no special
        token was dropped from its text)."""
        if free.error is not None or free.hit_limit:
            return False
        tokens = len(self.tok(free.output, add_special_tokens=False)["input_ids"])
        return tokens == free.new_tokens and settles(self.tok, constraint, free.output)

    def answer(self, cases: list[PromptLike], request: GenerateRequest) -> list[Generation]:
        """Greedy replies for every case, in case order; longest prompts first so batches pad little.
        `on_result(i, generation)` is called as each batch finishes. With `constraint`, every reply is held to it
        (and n-grams are blocked inside the grammar, see `tunesmith.generate.decoding.logits_processor`)."""

        prompts = [render_prompt(self.tok, c.messages, c.tools) for c in cases]
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        results: list[Generation | None] = [None] * len(prompts)
        progress, task = progress_bar(request.label, len(prompts))
        made, spent = 0, 0.0
        with progress:
            for start in range(0, len(order), request.batch_size):
                idx = order[start : start + request.batch_size]
                enc = self.tok(
                    [prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False
                ).to(self.device)
                began = time.perf_counter()
                out = self._generate(
                    enc,
                    request.max_new_tokens,
                    self._decoding(len(idx), request.no_repeat_ngram_size, request.constraint),
                )
                # the first batch with more to follow decides whether the merged weights answer the same (the
                # check generates it twice: a call of one batch, e.g. 30 probe prompts, would gain nothing from it)
                if self.merge == "auto" and start + request.batch_size < len(order):
                    out = self._try_merge(
                        enc,
                        request.max_new_tokens,
                        out,
                        lambda idx=idx: self._decoding(len(idx), request.no_repeat_ngram_size, request.constraint),
                    )
                wall = time.perf_counter() - began
                new = out[:, enc["input_ids"].shape[1] :]
                for row, i in enumerate(idx):
                    ids = new[row].tolist()
                    stopped = self.eot_id in ids
                    ids = ids[: ids.index(self.eot_id)] if stopped else [t for t in ids if t != self.tok.pad_token_id]
                    results[i] = Generation(
                        self.tok.decode(ids, skip_special_tokens=True), len(ids), not stopped, wall / len(idx)
                    )
                    made += len(ids)
                    request.done(i, results[i])
                spent += wall
                progress.update(task, advance=len(idx), rate=f"{made / spent:.0f} tok/s" if spent else "")
        return results  # type: ignore[return-value]

    def _generate(self, enc, max_new_tokens: int, decoding: dict):
        import torch

        with (
            torch.inference_mode(),
            torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.precision == "bf16"),
        ):
            # use_cache explicitly: a model being trained has it switched off in its config by the Trainer, and
            # without the KV cache every step recomputes every position
            return self.model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                use_cache=True,
                eos_token_id=self.eot_id,
                pad_token_id=self.tok.pad_token_id,
                **decoding,
            )

    def _try_merge(self, enc, max_new_tokens: int, unmerged_out, decoding):
        """Merge the adapter and generate the same batch again: keep the merged weights when every token is the
        same, else restore the exact base weights and keep generating through the adapter. Returns the batch's
        output. Models over MERGE_CHECK_MAX_PARAMS are not tried (the check keeps a copy of the adapted weights)."""
        self.merge = False
        layers = [m for m in self.model.modules() if hasattr(m, "base_layer") and hasattr(m, "lora_A")]
        if not layers or sum(p.numel() for p in self.model.parameters()) > MERGE_CHECK_MAX_PARAMS:
            return unmerged_out
        saved = [m.base_layer.weight.detach().clone() for m in layers]
        self.model.merge_adapter()
        merged_out = self._generate(enc, max_new_tokens, decoding())
        self.merged = merged_out.shape == unmerged_out.shape and bool((merged_out == unmerged_out).all())
        if not self.merged:  # unmerging would round differently: put the very weights back
            self.model.unmerge_adapter()
            for m, weight in zip(layers, saved):
                m.base_layer.weight.data.copy_(weight)
        return unmerged_out

    def _decoding(self, rows: int, no_repeat_ngram_size: int | None, constraint: Constraint | None) -> dict:
        """`generate`'s n-gram blocking and, with a constraint, its logits processor (which then blocks n-grams
        itself, within the grammar)."""
        if constraint is None:
            return {"no_repeat_ngram_size": no_repeat_ngram_size or 0}
        return {
            "no_repeat_ngram_size": 0,
            "logits_processor": [logits_processor(self.tok, constraint, rows, no_repeat_ngram_size)],
        }
