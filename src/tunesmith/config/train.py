"""`train:`: how the model is trained: method, objective, optimizer, batching, checkpoints, general data, and the
sub-sections of one method or objective: `lora:` (the adapter), `dpo:` and `grpo:`.

    train:
      method: lora
      lora: {r: 16, alpha: 32, rslora: true}
      objective: grpo
      grpo: {generations: 4, rewards: [{type: json_schema}]}

The flat keys of before the sub-sections (`lora_r`, `dpo_beta`, `grpo_generations`, `rewards`, ...) are still read at
their new place, with a warning (`tunesmith.config.moved`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from tunesmith.config.moved import nest_moved
from tunesmith.config.section import Section
from tunesmith.errors import Problem, TunesmithError

# `train.lora.layers`: the last N decoder layers, or the listed layer indices
LayerChoice = Annotated[int, Field(ge=1)] | Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]


class LoraOptions(Section):
    """`train.lora:` the adapter of a lora or qlora run."""

    r: int = Field(16, ge=1, description="LoRA rank (8-16 is the usual range).")
    alpha: int = Field(32, ge=1, description="LoRA alpha (scaling = alpha / r).")
    dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Dropout on the LoRA path. Off by default (as in Unsloth): with one epoch it "
        "rarely helps, and on CPU it costs ~half of each step's forward time.",
    )
    dora: bool = Field(
        False,
        description="DoRA (weight-decomposed LoRA): learns a magnitude per output as well; "
        "often closer to full fine-tuning at low rank, ~1.5-2x slower per step. lora/qlora only.",
    )
    rslora: bool = Field(
        False,
        description="rsLoRA: scale by alpha/sqrt(r) instead of alpha/r, which keeps "
        "higher ranks (64+) learning. lora/qlora only.",
    )
    target_modules: str | list[str] = Field("all-linear", description="Modules that get adapters.")
    layers: LayerChoice | None = Field(
        None,
        description="Which decoder layers get adapters: unset = all; N = the last N layers only (the layers "
        "nearest the output); a list = these layer indices (peft's `layers_to_transform`, Axolotl's "
        "`peft_layers_to_transform`). Below the lowest adapted layer nothing trains, so the backward pass stops "
        "there: fewer layers, cheaper steps.",
    )

    def layer_indices(self, n_layers: int) -> list[int] | None:
        """`layers` as peft's `layers_to_transform` for a model of `n_layers` decoder layers: None (every layer),
        the last N, or the listed indices; a layer the model does not have is an error naming the field."""
        if self.layers is None:
            return None
        last = isinstance(self.layers, int)
        wanted = list(range(max(n_layers - self.layers, 0), n_layers)) if last else sorted(set(self.layers))
        if (self.layers > n_layers) if last else any(i >= n_layers for i in wanted):
            raise TunesmithError(
                "train.lora.layers names layers the model does not have",
                [
                    Problem(
                        "train.lora.layers",
                        f"{self.layers} against the model's {n_layers} decoder layers (indices 0 to {n_layers - 1})",
                        f"give at most {n_layers}, or indices below {n_layers}; leave it unset for every layer",
                    )
                ],
            )
        return wanted


class DpoOptions(Section):
    """`train.dpo:` the settings of `objective: dpo`."""

    beta: float = Field(
        0.1, gt=0, description="DPO's beta: how far the tuned model may move from the reference (smaller = further)."
    )


class GrpoOptions(Section):
    """`train.grpo:` the settings of `objective: grpo`."""

    generations: int = Field(4, ge=2, description="GRPO: replies sampled per prompt (the group).")
    max_completion_tokens: int | Literal["auto"] = Field(
        "auto",
        description="GRPO: longest sampled reply, or `auto`: the evaluation's own limit, derived from the training "
        "replies (1.25x the longest one's tokens plus 8, at most 512), so a worked answer is not cut before it ends.",
    )
    rewards: list[dict[str, Any]] = Field(
        default_factory=list,
        description="GRPO rewards: scorer specs (the eval harness's types: exact, label, json, "
        "json_schema, json_fields, regex, numeric, contains, not_contains, behavior, tool_call, instructions, "
        "custom, and OpenAI's graders) with an optional `weight`, e.g. [{type: json_schema, weight: 0.5}, {type: "
        "json_fields}], each against the record's own reply: a grader with a score (text_similarity, score_model, "
        "python, multi) rewards that score, the others 1 for a pass and 0 otherwise; empty = the task's defaults.",
    )


class TrainConfig(Section):
    method: Literal["lora", "qlora", "full"] = Field(
        "lora",
        description="`lora`: a LoRA adapter on the frozen base; `qlora`: the same on a base quantized to "
        "4-bit NF4 with double quantization (bitsandbytes; runs on CPU too), for bases that do not fit in memory; "
        "`full`: every weight trains (the result is a whole model, not an adapter).",
    )
    lora: LoraOptions = Field(
        default_factory=LoraOptions,
        description="The adapter of a lora/qlora run: rank `r`, `alpha`, `dropout`, the `dora` and `rslora` "
        "variants, `target_modules` (formerly lora_r, lora_alpha, lora_dropout, dora, rslora, target_modules).",
    )
    objective: Literal["sft", "dpo", "grpo", "reward"] = Field(
        "sft",
        description="`sft`: learn the replies (of preference pairs: the chosen ones). `dpo`: learn to prefer "
        "the chosen reply over the rejected one of each preference pair (the data must be pairs); the reference "
        "model is the base itself (the adapter switched off), so no second copy is loaded. `grpo`: sample several "
        "replies per prompt and reinforce those that score well on verifiable `grpo.rewards`. `reward`: train a reward "
        "model on preference pairs (`tunesmith train`), usable as a GRPO reward ({type: reward_model, path: ...}).",
    )
    dpo: DpoOptions = Field(
        default_factory=DpoOptions, description="`objective: dpo`'s settings: `beta` (formerly dpo_beta)."
    )
    grpo: GrpoOptions = Field(
        default_factory=GrpoOptions,
        description="`objective: grpo`'s settings: `generations` per prompt, `max_completion_tokens`, `rewards` "
        "(formerly grpo_generations, grpo_max_completion_tokens, rewards).",
    )
    epochs: Annotated[float, Field(gt=0)] | Literal["auto"] = Field(
        "auto",
        description="Passes over the training split, or `auto`: enough passes for small data sets to "
        "converge (about 5,400 examples seen, or 70 per label of a label task where that is more, between 1 and "
        "10 passes; see `resolve_epochs`), with the validation "
        "metric deciding the checkpoint kept and early stopping deciding when to stop.",
    )
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (overrides epochs).")
    lr: float = Field(2e-4, gt=0, lt=1, description="Peak learning rate.")
    loraplus_lr_ratio: float | None = Field(
        None,
        ge=1,
        description="LoRA+ (Hayou et al. 2024): the adapters' B matrices learn at this many times `lr` (A at `lr`), "
        "which the paper found learns faster at the same cost (it suggests 16, with `lr` about half of plain "
        "LoRA's); Axolotl's and LLaMA-Factory's `loraplus_lr_ratio`, built by peft's `create_loraplus_optimizer`. "
        "lora/qlora only; unset is plain LoRA.",
    )
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field("cosine", description="Learning-rate schedule.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps spent warming the learning rate up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    batch_size: int = Field(8, ge=1, description="Conversations per device per step.")
    grad_accum: int = Field(1, ge=1, description="Gradient accumulation steps.")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="`auto` uses bf16 autocast where the hardware supports it (AMX CPUs, recent GPUs)."
    )
    batching: Literal["grouped", "padding_free", "packed", "random"] = Field(
        "grouped",
        description="SFT batches: `grouped` (examples of similar length batched together, little "
        "padding), `padding_free` (each batch one concatenated row, no padding; attention stays within each "
        "example), `packed` (examples packed best-fit into rows of data.max_seq_len, so a step holds more "
        "examples), `random` (TRL's default). `benchmarks/train_throughput.py` compares them on this machine.",
    )
    neftune_alpha: float = Field(
        0.0,
        ge=0,
        description="SFT: NEFTune, uniform noise added to the input embeddings while training, of size "
        "alpha / sqrt(sequence length x hidden size) (the paper's alpha: 5; transformers' `neftune_noise_alpha`); "
        "0 is off.",
    )
    prompt_loss: bool = Field(
        False,
        description="SFT: loss on the text of the user's turns too, not only on the replies (Axolotl's "
        "`train_on_inputs`, LLaMA-Factory's `train_on_prompt`; 'instruction modelling', Shi et al. 2024, which "
        "helped most with short replies and few examples). The system prompt and the chat template's own tokens "
        "never carry loss.",
    )
    shared_prefix: bool = Field(
        True,
        description="SFT on a CPU: the tokens every row of a batch begins with (a task's system prompt and the "
        "chat template around it) are decoded once a batch instead of once a row, the batch packed into one "
        "sequence without padding; the same loss and gradients. Batches of 4 rows or more (on Banking77, AMD EPYC: "
        "batch 4 1.32x the tokens/s of no sharing, batch 8 1.27-1.38x; `benchmarks/train_throughput.py`), which are "
        "then also grouped by system prompt.",
    )
    spread_general: bool = Field(
        True,
        description="SFT with `grouped` batching and general data mixed in: the batches of general rows are spread "
        "evenly through each pass (one in ten at a 0.1 share). Off: where length grouping puts them, in runs of "
        "consecutive general batches at the start of every 50 batches (after such a run the task's own training "
        "loss jumped on Banking77).",
    )
    gradient_checkpointing: bool = Field(False, description="Trade compute for activation memory.")
    attention: Literal["auto", "eager", "sdpa"] = Field(
        "auto",
        description="Attention implementation while training: `auto` takes the one measured faster on this "
        "kind of machine (on a CPU, eager attention for data.max_seq_len up to 512: PyTorch's CPU SDPA backward is "
        "slow on short rows; SDPA otherwise).",
    )
    eval_steps: int | None = Field(
        None,
        ge=1,
        description="SFT: every N optimizer steps, generate on the validation set with the eval decoding, "
        "score the replies with the task's scorers and measure the validation loss; the best checkpoint is kept. "
        "Unset: about two evaluations per epoch (at most one every 10 steps). Always once at the end.",
    )
    select_metric: str = Field(
        "auto",
        description="The validation metric that chooses the checkpoint, stops training early and ranks "
        "search trials: a metric of the held-out suite (e.g. task_accuracy, format_validity), or `auto` (the gate's "
        "metric when it is a held-out metric, else task_accuracy). `loss` uses the validation loss.",
    )
    patience: int | None = Field(
        3,
        ge=1,
        description="Stop after this many validation evaluations without improvement (null: never stop "
        "early; the best checkpoint is still the one kept).",
    )
    base_precision: Literal["fp32", "bf16"] = Field(
        "bf16",
        description="LoRA with bf16 precision: store the frozen base's linear weights in bf16 (autocast "
        "casts them to bf16 for every matmul anyway, so the loss is the same while weight memory halves; "
        "embeddings, norms and the adapter stay fp32) or keep them all in fp32. GRPO keeps fp32 (it also generates).",
    )
    save_steps: int = Field(50, ge=1, description="Checkpoint every N optimizer steps (a killed run resumes there).")
    logging_steps: int = Field(5, ge=1, description="Log loss, learning rate and grad norm every N steps.")
    seed: int = Field(42, description="Training seed.")
    general_data: list[str] = Field(
        default_factory=list,
        description="General instruction data (files or globs, relative to the project) mixed "
        "into training against forgetting, shown without the task's system prompt: `builtin:self` (the base model's "
        "own replies to built-in everyday prompts: as many of the 1,000 as the share asks, made once per base model "
        "and count; a reply cut at its 64-token limit "
        "trains its text, not its end) or your own, e.g. the base model's replies to your general prompts "
        "(`tunesmith data distill general.jsonl --out data/general-self.jsonl`).",
    )
    general_share: float = Field(
        0.0,
        ge=0.0,
        lt=0.9,
        description="Share of the training examples drawn from `general_data` (seeded sample; 0.1 = one in ten).",
    )
    general_kl: float = Field(
        0.0,
        ge=0.0,
        description="SFT with general data: the general rows train towards the base model's own next-token "
        "distribution at every reply token (the KL divergence from the base, whose logits are the model's with the "
        "adapter switched off, times this weight) instead of towards the one reply sampled from it: "
        "self-distillation on logits against forgetting. Needs an adapter (lora/qlora), whole-row batches (grouped "
        "or random) and one process; elsewhere the run says why and keeps cross-entropy. 0 is off.",
    )
    oversample: Literal["auto"] | dict[str, Annotated[int, Field(ge=1, le=100)]] = Field(
        "auto",
        description="Show the training records of some labels several times a pass: {label: times}, e.g. "
        "{out_of_scope: 4} (the label is the split's stratify field: a JSON task's first match field, a "
        "classification's reply). `auto`: a label task's catch-all label (out_of_scope, oos, other, none, unknown, "
        "fallback, ...) until it is about a quarter of the examples (at most 10 times): its few examples are all "
        "different, and a model trained on them as they come under-predicts it. {}: none. Validation and test "
        "records are never repeated.",
    )
    nproc: int = Field(
        1,
        ge=1,
        le=64,
        description="Training processes, launched by `accelerate launch` (DDP; gloo "
        "on CPU, NCCL on GPUs). `batch_size` is per process: the global batch is batch_size x nproc "
        "x grad_accum.",
    )
    accelerate_config: str | None = Field(
        None,
        description="An accelerate config file (relative to the project) for FSDP or DeepSpeed; passed to "
        "`accelerate launch --config_file` as it is.",
    )
    report_to: list[Literal["tensorboard", "mlflow", "wandb"]] = Field(
        default_factory=list,
        description="Optional trackers that mirror the training metrics (through "
        "transformers' report_to); metrics.jsonl is always written. Each needs its own package installed.",
    )

    @model_validator(mode="before")
    @classmethod
    def _read_moved_keys(cls, data: Any) -> Any:
        """The flat keys of before the sub-sections, read at their new place (with a warning)."""
        return nest_moved(data)
