"""SFT through TRL: config -> model -> adapter -> data -> train -> save -> record.

    result = train_sft(cfg, model_ref, records, run_dir)

The machinery every recipe shares (trainer arguments, the guarded trainer, resume, saving) is
`tunesmith.train.trainer`; this module is the SFT recipe: the tokenized data with its loss mask, the SFT trainer
(with a cheaper loss on CPU), and validation-chosen checkpoints.

Methods (`train.method`): LoRA (optionally DoRA and/or rsLoRA), QLoRA (the frozen base quantized to 4-bit NF4 with
double quantization by bitsandbytes; the adapter trains in the compute precision), and full fine-tuning. An adapter
run writes `adapter/`; a full run writes `model/` (safetensors, tokenizer, generation config).

Loss is on assistant tokens and their end-of-turn token only, for every assistant turn, whatever the chat
template (see `tunesmith.chat`). The data reaches TRL already tokenized with `labels`, so TRL uses the mask as is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tunesmith.chat import TemplateError, training_example
from tunesmith.config import Config
from tunesmith.data.records import Record
from tunesmith.errors import Problem, TunesmithError
from tunesmith.eval.suite import with_system_prompt
from tunesmith.models import ModelRef, load_tokenizer, resolve_precision
from tunesmith.train.kinds import (
    KIND_BATCHING,
    KIND_COLUMN,
    SpreadGeneral,
    general_kl,
    spreads_general,
    with_kinds,
)
from tunesmith.train.result import TrainResult
from tunesmith.train.selection import ValidationPlan, ValidationSelector
from tunesmith.train.trainer import (
    common_args,
    describe,
    final_eval_loss,
    has_cuda,
    load_training_model,
    lora_config,
    make_trainer,
    resolve_eval_steps,
    run_training,
    save_trained,
    task_labels,
)


def build_dataset(tok, records: list[Record], cfg: Config):
    """Tokenize conversations with their loss mask; report how much truncation drops."""
    from datasets import Dataset

    rows, problems, dropped, truncated, replies = [], [], 0, 0, 0
    kinds = cfg.train.batching in KIND_BATCHING and any(rec.provenance.get("general") for rec in records)
    for rec in records:
        try:
            # General records (train.general_data) are shown as the general probe asks: without the task's prompt.
            messages = rec.messages if rec.provenance.get("general") else with_system_prompt(rec.messages, cfg.task)
            ex = training_example(
                tok,
                messages,
                rec.tools,
                cfg.data.max_seq_len,
                finished=not rec.provenance.get("unfinished"),
                prompt_loss=cfg.train.prompt_loss,
            )
        except TemplateError as exc:
            problems.append(Problem(rec.where, str(exc), "use a model whose chat template renders turn by turn"))
            continue
        truncated += ex.dropped_assistant_tokens > 0
        replies += ex.assistant_tokens
        if ex.assistant_tokens == 0:
            dropped += 1
            continue
        row = {"input_ids": ex.input_ids, "labels": ex.labels}
        if kinds:  # which rows are general data: the training loss logged per kind, general batches spread
            row[KIND_COLUMN] = bool(rec.provenance.get("general"))
        rows.append(row)
    if problems:
        raise TunesmithError("Cannot render training data with the chat template", problems[:10])
    if not rows:
        raise TunesmithError(
            "No trainable examples",
            [Problem("data", "every example has an empty loss mask", "raise data.max_seq_len or check the replies")],
        )
    stats = {
        "examples": len(rows),
        "dropped_empty_mask": dropped,
        "truncated": truncated,
        "tokens": sum(len(r["input_ids"]) for r in rows),
        "assistant_tokens": replies,
        # the replies' tokens, and with train.prompt_loss the user turns' too
        "loss_tokens": sum(sum(x != -100 for x in r["labels"]) for r in rows),
    }
    return Dataset.from_list(rows), stats


def build_trainer(
    cfg: Config,
    model_ref: ModelRef,
    records: list[Record],
    run_dir: Path,
    eval_records: list[Record] | None = None,
    **overrides: Any,
):
    """(trainer, tokenizer, data stats, time budget): everything `train_sft` runs, ready to `train()`.
    `eval_records` (the validation split) give the validation loss at every evaluation; `overrides` replace
    SFTConfig arguments (the invariant checks use them)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from trl import SFTConfig, SFTTrainer

    t = cfg.train
    precision = resolve_precision(t.precision)
    tok = load_tokenizer(model_ref)
    model = load_training_model(cfg, model_ref, precision)
    dataset, data_stats = build_dataset(tok, records, cfg)
    eval_dataset = build_dataset(tok, eval_records, cfg)[0] if eval_records else None

    settings = dict(
        **common_args(cfg, run_dir, precision, len(records), task_labels(cfg, records)),
        max_length=None,  # already truncated (and its cost reported) by build_dataset
        include_num_input_tokens_seen="non_padding",
        # The validation loss (and, with a ValidationSelector, the generated answers) every eval_steps steps.
        eval_strategy="steps" if eval_dataset is not None else "no",
        eval_steps=resolve_eval_steps(cfg, len(records)),
        per_device_eval_batch_size=max(t.batch_size, 32),  # forward only: bigger batches, fewer steps
        prediction_loss_only=True,  # the validation loss through the labeled-positions head, no logits kept
        neftune_noise_alpha=t.neftune_alpha or None,  # transformers' hook on the input embeddings, training only
    )
    args = SFTConfig(**{**settings, **batching_args(t.batching, cfg.data.max_seq_len), **overrides})
    trainer, budget = make_trainer(
        _trainer_class(SFTTrainer, cfg),
        cfg,
        run_dir,
        describe(cfg),
        model=model,
        args=args,
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        processing_class=tok,
        peft_config=lora_config(cfg, model),
    )
    return trainer, tok, data_stats, budget


def batching_args(batching: str, max_seq_len: int) -> dict[str, Any]:
    """SFTConfig arguments for `train.batching`. With padding-free and packed batches there is no attention mask;
    transformers derives a block-diagonal one from the position ids, so no example attends to another."""
    return {
        # Batches of similar length waste little compute on padding (a 2-3x difference on CPU).
        "grouped": {"train_sampling_strategy": "group_by_length"},
        "random": {"train_sampling_strategy": "random"},
        "padding_free": {"padding_free": True},
        "packed": {"packing": True, "packing_strategy": "bfd", "max_length": max_seq_len},
    }[batching]


def train_sft(
    cfg: Config, model_ref: ModelRef, records: list[Record], run_dir: Path, validation: ValidationPlan | None = None
) -> TrainResult:
    """Train on `records` with the configured method; write `adapter/` (or `model/`) and `metrics.jsonl` into
    `run_dir`. With a `validation` plan, every evaluation generates and scores the validation replies, the best
    checkpoint is the one saved, and training stops early after `train.patience` evaluations without improvement
    (see `tunesmith.train.selection`)."""
    t = cfg.train
    trainer, tok, data_stats, budget = build_trainer(
        cfg, model_ref, records, run_dir, validation.records if validation else None
    )
    selector = None
    if validation is not None and validation.cases:
        selector = ValidationSelector(validation, run_dir, t.patience)
        trainer.add_callback(selector)
    precision = "bf16" if trainer.args.bf16 else "fp32"
    facts = run_training(trainer, run_dir, budget)
    eval_loss = final_eval_loss(trainer)
    chosen = selector.restore_best(trainer.model) if selector is not None else False
    kind = save_trained(trainer, tok, run_dir, t.method)
    return TrainResult.from_json(
        {
            "method": t.method,
            "objective": t.objective,
            "precision": precision,
            **facts,
            "eval_loss": eval_loss,
            "tokens_seen": trainer.state.num_input_tokens_seen,
            "data": data_stats,
            "dora": t.lora.dora,
            "rslora": t.lora.rslora,
            "recipe": describe(cfg),
            kind: kind,
            "planned_epochs": trainer.args.num_train_epochs,
            "planned_steps": trainer.state.max_steps,
            "lr": t.lr,
            "lora_r": t.lora.r,
            **({"general_kl": general_kl(cfg)} if t.general_kl else {}),
            **({"selection": {**selector.summary(), "restored_best": chosen}} if selector is not None else {}),
            "device": device_choices(trainer, cfg),
        }
    )


def device_choices(trainer, cfg: Config) -> dict[str, Any]:
    """What this run chose for its device, so two runs on different machines can be told apart in `result.json`:
    the device, the attention kernel, the loss path, the optimizer, checkpointing, batching, the base's precision."""
    import torch

    model = trainer.model.get_base_model() if hasattr(trainer.model, "get_base_model") else trainer.model
    # the loss path as build_trainer chose it: read off the trainer, not decided a second time
    labeled = any(c.__name__ == "LabeledHeadSFTTrainer" for c in type(trainer).__mro__)
    return {
        "device": torch.cuda.get_device_name(0) if has_cuda() else "cpu",
        "attention": getattr(model.config, "_attn_implementation", None),
        "loss": "labeled positions only (tunesmith's CPU loss)" if labeled else "TRL's LM-head loss",
        "optimizer": getattr(trainer.args.optim, "value", str(trainer.args.optim)),
        "gradient_checkpointing": bool(trainer.args.gradient_checkpointing),
        "batching": cfg.train.batching,
        "base_precision": cfg.train.base_precision if cfg.train.method == "lora" else None,
    }


def _trainer_class(base, cfg: Config):
    """The SFT trainer class for this device and config: on a CPU, and wherever `train.general_kl` asks its term,
    the labeled-positions loss (`_labeled_head_class`); with general data in length-grouped batches and
    `train.spread_general`, the general batches spread through each pass (`spreads_general`)."""
    kl = general_kl(cfg)
    trainer = _labeled_head_class(base, cfg.train.shared_prefix, kl) if not has_cuda() or kl else base
    return _spread_general_class(trainer) if spreads_general(cfg) else trainer


def _spread_general_class(base):
    """`base` whose length-grouped training order has its batches of general rows spread evenly through each pass
    (`tunesmith.train.kinds`); other orders, and data without general rows, are left as they are."""

    class SpreadGeneralTrainer(base):
        def _get_train_sampler(self, train_dataset=None):
            sampler = super()._get_train_sampler(train_dataset)
            columns = getattr(self.train_dataset, "column_names", None) or []
            if self.args.train_sampling_strategy != "group_by_length" or KIND_COLUMN not in columns:
                return sampler
            batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
            return SpreadGeneral(sampler, self.train_dataset[KIND_COLUMN], batch)

    return SpreadGeneralTrainer


def _labeled_head_class(base, shared_prefix: bool = True, general_kl: float = 0.0):
    """SFTTrainer whose loss runs the LM head on the labeled positions only.

    TRL's fused LM head tiles the vocabulary projection in Python when Triton is absent; on CPU that makes a step
    ~1.4x slower than transformers' own loss (4 steps of the demo on SmolLM2-135M, 2 cores: 47.6 s vs 33.0 s). The
    plain loss, in turn, projects every position onto the whole vocabulary and keeps those logits (and their
    gradient) in fp32, although only the assistant tokens carry loss. Here the decoder runs as usual and the head
    projects just the positions whose next token is labeled: the same token-mean cross-entropy, with the head's
    compute and the logits' memory cut to the labeled share of the batch. TRL's entropy/token-accuracy logs are
    skipped. A model wrapped for multi-process training (DDP) takes the plain path, since its forward must run.
    A prefix every row of a batch shares (the task's system prompt) is decoded once a batch
    (`tunesmith.train.shared_prefix`), and the validation loss takes this path too.
    """
    import torch
    import torch.nn.functional as F
    from transformers import Trainer

    from tunesmith.train.shared_prefix import MIN_ROWS, grouped_lengths, shared_prefix_hidden

    class LabeledHeadSFTTrainer(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.kind_losses: dict[str, list[float]] = {}  # kind -> [loss sum, tokens] since the last log
            if KIND_COLUMN in (getattr(self.train_dataset, "column_names", None) or []):
                self.data_collator = with_kinds(self.data_collator)

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if KIND_COLUMN not in self._signature_columns:  # kept through the trainer's column pruning
                self._signature_columns = [*self._signature_columns, KIND_COLUMN]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            kinds = inputs.pop(KIND_COLUMN, None)
            inputs["use_cache"] = False
            # The validation loss asks for outputs too; with prediction_loss_only none are kept, so it takes the
            # cheap path as well.
            loss_only = not return_outputs or (not model.training and self.args.prediction_loss_only)
            parts = _decoder_and_head(model) if loss_only else None
            if parts is None:
                return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)
            decoder, head = parts
            labels = inputs["labels"]
            target = labels[:, 1:]
            keep = target != -100
            # accelerate puts bf16 autocast around model.forward only; the decoder and head called here need it too
            with self.accelerator.autocast():
                # a system prompt every row shares, decoded once a batch (train.shared_prefix)
                hidden = shared_prefix_hidden(decoder, inputs) if shared_prefix else None
                if hidden is None:
                    hidden = decoder(**{k: v for k, v in inputs.items() if k != "labels"}).last_hidden_state
                logits = head(hidden[:, :-1][keep])
            targets = target[keep]
            general = kinds[keep.nonzero(as_tuple=True)[0]] if kinds is not None and model.training else None
            if general is not None and general_kl and general.any():
                # the general tokens' loss is their weighted KL from the base; cross-entropy only on the task's
                # (over the whole vocabulary at 512 positions, a general batch's unused one cost ~0.18 s)
                kl = self._base_kl(model, decoder, head, inputs, keep, kinds, logits[general])
                task = F.cross_entropy(logits[~general].float(), targets[~general], reduction="none")
                token_losses = kl.new_zeros(len(targets)).masked_scatter(~general, task)
                token_losses = token_losses.masked_scatter(general, general_kl * kl)
            else:
                token_losses = F.cross_entropy(logits.float(), targets, reduction="none")
            if general is not None:  # one flag a labeled token
                self._count_kinds(token_losses.detach(), general)
            loss = token_losses.sum()
            # Normalized by the tokens of the whole accumulated batch (what transformers does with
            # num_items_in_batch), so batch 8 x 1 equals batch 1 x 8.
            count = num_items_in_batch if num_items_in_batch is not None else keep.sum()
            if torch.is_tensor(count):
                count = count.to(loss.device)
            loss = loss / count
            return (loss, {}) if return_outputs else loss

        def _base_kl(self, model, decoder, head, inputs, keep, rows, logits):
            """KL(base || model) of the next-token distributions at the labeled positions of `rows` (the general
            ones), `logits` the model's there; the base is this model with its adapter off."""
            sub = {k: v[rows] for k, v in inputs.items() if torch.is_tensor(v)}
            with torch.no_grad(), model.disable_adapter(), self.accelerator.autocast():
                hidden = shared_prefix_hidden(decoder, sub) if shared_prefix else None  # as the model's own rows
                if hidden is None:
                    plain = {k: v for k, v in sub.items() if k != "labels"}
                    hidden = decoder(**plain, use_cache=False).last_hidden_state
                base_logits = head(hidden[:, :-1][keep[rows]])
            return F.kl_div(
                F.log_softmax(logits.float(), -1),
                F.log_softmax(base_logits.float(), -1),
                log_target=True,
                reduction="none",
            ).sum(-1)

        def _count_kinds(self, token_losses, general) -> None:
            """Add a batch's token losses to the sums of task and general rows (`general`: one flag a token)."""
            for name, chosen in (("task", ~general), ("general", general)):
                if chosen.any():
                    sums = self.kind_losses.setdefault(name, [0.0, 0])
                    sums[0] += float(token_losses[chosen].sum())
                    sums[1] += int(chosen.sum())

        def log(self, logs, *args, **kwargs):
            """A training log also carries the token-mean loss of task and general rows since the last one."""
            if "loss" in logs and self.kind_losses:
                logs = {**logs, **{f"loss_{k}": total / n for k, (total, n) in self.kind_losses.items()}}
                self.kind_losses = {}
            super().log(logs, *args, **kwargs)

        def _get_train_sampler(self, train_dataset=None):
            """Length-grouped batches that also keep rows of one system prompt together (shared_prefix)."""
            from transformers.trainer_pt_utils import LengthGroupedSampler

            batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
            grouped = self.args.train_sampling_strategy == "group_by_length" and shared_prefix
            grouped = grouped and self.args.train_batch_size >= MIN_ROWS  # smaller batches share nothing
            lengths = grouped_lengths(list(self.train_dataset["input_ids"])) if grouped else None
            if lengths is None:
                return super()._get_train_sampler(train_dataset)
            return LengthGroupedSampler(batch, lengths=lengths)

    return LabeledHeadSFTTrainer


def _decoder_and_head(model):
    """(decoder, LM head) of a causal LM, under a PEFT wrapper too; None when the model is wrapped for multiple
    processes or does not expose them."""
    import torch

    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return None
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        decoder, head = inner.get_decoder(), inner.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    return (decoder, head) if decoder is not None and head is not None else None
