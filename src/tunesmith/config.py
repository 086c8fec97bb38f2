"""`tunesmith.yaml` as pydantic models; every field is documented once, here.

    cfg, project = load_config("examples/support-triage", overrides=["train.lr=1e-4"])

A bad config raises one `TunesmithError` that lists every problem with its YAML path.
`tunesmith config schema` prints the JSON Schema of `Config` so editors can autocomplete the YAML.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tunesmith.errors import Problem, TunesmithError
from tunesmith.scorer_specs import scorer_problem

CONFIG_NAME = "tunesmith.yaml"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(Section):
    base: str = Field(
        "builtin:smollm2-135m-instruct",
        description="Base model: `builtin:smollm2-135m-instruct`, `shape:NAME` (a published shape, random "
        "weights), a local model directory, a `.gguf` file, or a hub id.",
    )
    trust_remote_code: bool = Field(
        False, description="Allow a model's own Python code to run while loading. Off unless you trust the model."
    )


class TaskConfig(Section):
    type: Literal["chat", "json", "classification"] = Field(
        "chat",
        description="What a reply is: free `chat` text, a `json` object, or a `classification` label.",
    )
    system_prompt: str | None = Field(
        None, description="System prompt added to every conversation that has none (training and eval alike)."
    )
    match_fields: list[str] = Field(
        default_factory=list,
        description="For `json` tasks: the fields that must equal the expected reply's for a case to count as "
        "correct (task accuracy). Empty means every field of the expected reply.",
    )
    json_schema: str | dict[str, Any] | None = Field(
        None,
        description="For `json` tasks: a JSON Schema (inline, or a file path relative to the project) "
        "that a reply must satisfy to count as format-valid.",
    )


class ColumnsConfig(Section):
    """`data.columns`: which field of a data row holds what (see `DataConfig.columns`)."""

    prompt: str | None = Field(
        None, description="Field holding the user's turn (a string, or a list of chat messages)."
    )
    reply: str | None = Field(None, description="Field holding the assistant's reply (a string or a number).")
    system: str | None = Field(None, description="Field holding a per-row system prompt (optional).")
    label: str | None = Field(
        None, description="Field holding a class label that becomes the reply (instead of `reply`), e.g. `intent`."
    )
    json_key: str | None = Field(
        None,
        description="With `label`: the reply is the JSON object {json_key: label}, "
        "like `tunesmith data convert --json-key`.",
    )
    chosen: str | None = Field(
        None,
        description="Preference rows: field holding the preferred reply (with "
        "`rejected`; without `prompt`, the shared start of both is the prompt).",
    )
    rejected: str | None = Field(None, description="Preference rows: field holding the dispreferred reply.")

    @property
    def given(self) -> bool:
        """Whether a mapping is set at all."""
        return any(getattr(self, name) is not None for name in type(self).model_fields)

    @model_validator(mode="after")
    def _one_reply(self) -> ColumnsConfig:
        if not self.given:
            return self
        replies = [name for name in ("reply", "label") if getattr(self, name)]
        pair = bool(self.chosen) + bool(self.rejected)
        if pair == 1:
            raise ValueError("`chosen` and `rejected` go together: name both fields of a preference pair")
        if len(replies) + bool(pair) != 1:
            raise ValueError("name exactly one reply: `reply`, `label`, or `chosen` with `rejected`")
        if not self.prompt and not pair:
            raise ValueError("name the `prompt` field (only a preference pair may leave it out)")
        if self.json_key and not self.label:
            raise ValueError("`json_key` applies to `label` only")
        return self


class DataConfig(Section):
    train: list[str] = Field(
        default_factory=lambda: ["data/*.jsonl"],
        description="Data files or glob patterns, relative to the project directory.",
    )
    format: Literal["auto", "messages", "sharegpt", "alpaca", "prompt_completion", "openai"] = Field(
        "auto", description="Record format of the data files; `auto` detects it per record."
    )
    heldout_fraction: float = Field(
        0.2,
        gt=0.0,
        lt=0.9,
        description="Share of the data split off as the held-out test set (never trained on, "
        "read once, at the end, for the gate). Unused when `data.test` names the test files.",
    )
    validation_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=0.5,
        description="Share of the training side split off as the validation set: every choice "
        "made while training (the checkpoint kept, early stopping, the recipe search) is made on it, never on the "
        "test set. 0 turns validation off. Unused when `data.validation` names the validation files.",
    )
    validation_max: int = Field(
        300,
        ge=1,
        description="At most this many validation records (generating on them at every evaluation "
        "during training costs time).",
    )
    validation: list[str] = Field(
        default_factory=list, description="Files (or globs) holding the validation set, when you keep one."
    )
    test: list[str] = Field(
        default_factory=list,
        description="Files (or globs) holding the held-out test set, e.g. a data set's own "
        "test split; then nothing is split off `data.train` for testing. Records that near-duplicate a test or "
        "validation record are taken out of training and reported as leakage.",
    )
    seed: int = Field(42, description="Seed of the held-out and validation split.")
    stratify_by: str | None = Field(
        "auto",
        description="Keep label shares equal in train and held-out: a JSON reply field, `label`, `auto` "
        "(the first match field of a json task, the label of a classification task), or null for none.",
    )
    max_seq_len: int = Field(1024, ge=16, description="Longest tokenized conversation used in training.")
    near_dup_threshold: float = Field(
        0.8,
        ge=0.3,
        le=1.0,
        description="Estimated Jaccard similarity of word 3-shingles (MinHash) at which two "
        "inputs count as near-duplicates: reported by the check, and kept on one side of the split.",
    )
    columns: ColumnsConfig = Field(
        default_factory=ColumnsConfig,
        description="Which fields of a row are the prompt, the reply (or label), "
        "the system prompt, the chosen and rejected replies, e.g. {prompt: question, reply: answer} or {prompt: "
        "text, label: intent, json_key: intent}. Set, every row of every data file (JSONL, JSON array, Parquet, "
        "Arrow, a saved `datasets` directory) is read through it; unset, rows are read by their format, and the "
        "common pairs (question/answer, input/output, query/response, prompt/response, text/label) are recognised.",
    )
    pii_check: bool = Field(
        True,
        description="Run the PII and secret detectors over the training data in the check stage: a secret "
        "(API key, private key) rejects its record, personal data is a warning. `false` opts out.",
    )


class GateConfig(Section):
    metric: str = Field(
        "task_accuracy",
        description="The metric the gate judges: `metric` (held-out suite), "
        "`suite.metric`, or a tag slice `suite#tag.metric`. For metrics where lower is better "
        "(hallucination_rate, token_limit_rate) the delta is taken as an improvement.",
    )
    min_delta: float = Field(
        0.0,
        description="The tuned model must beat the base by more than this (absolute). "
        "A negative value allows a bounded drop: -0.02 = may drop at most 2 points.",
    )
    require_significant: bool = Field(
        True,
        description="Also require the confidence interval of the delta to lie above `min_delta` "
        "(for a negative `min_delta`, a non-inferiority test).",
    )
    min_format_validity: float | None = Field(
        None, ge=0.0, le=1.0, description="Optional floor on the tuned model's format validity (0-1)."
    )
    min_value: float | None = Field(
        None,
        description="An absolute target: the tuned model's value of the metric must reach it too (e.g. 0.85 "
        "task accuracy). Beating the base is not enough when the base is useless; for lower-is-better metrics it "
        "is a ceiling.",
    )


class SuiteConfig(Section):
    path: str = Field(
        ...,
        description="Suite JSONL file, relative to the project (tunesmith's case format or "
        "IFEval's `key`/`prompt`/`instruction_id_list`/`kwargs`).",
    )
    scorers: list[dict[str, Any]] | None = Field(
        None,
        description="Scorers for every case of the suite that names none, e.g. "
        "[{type: regex, pattern: '^Ticket'}, {type: custom, function: 'my_scorers:polite'}]. Types: exact, label, "
        "json, json_schema, json_fields, regex, numeric, contains, not_contains, behavior, tool_call, "
        "instructions, custom.",
    )
    max_new_tokens: int | None = Field(None, ge=1, description="Generation limit for this suite's cases.")


class EndpointConfig(Section):
    base_url: str = Field(..., description="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1.")
    model: str = Field(..., description="Model name the endpoint serves.")
    api_key_env: str | None = Field(
        None, description="Environment variable holding the API key (never the key itself in the YAML)."
    )
    concurrency: int = Field(4, ge=1, le=256, description="Requests in flight at once.")
    max_retries: int = Field(
        3,
        ge=0,
        le=10,
        description="Retries (with exponential backoff) on 429, 5xx and "
        "connection errors before a case is recorded as failed.",
    )
    input_usd_per_mtok: float | None = Field(None, ge=0, description="Price per million prompt tokens.")
    output_usd_per_mtok: float | None = Field(None, ge=0, description="Price per million completion tokens.")


class EvalConfig(Section):
    suites: list[str | SuiteConfig] = Field(
        default_factory=list,
        description="Extra eval suites (relative to the project): red-team, out-of-domain, edge cases, "
        "instruction-following; a path, or {path, scorers, max_new_tokens}.",
    )
    general_probe: bool = Field(
        False,
        description="Also run tunesmith's built-in general instruction-following probe (150 IFEval-style "
        "prompts, 25 instruction types) as suite `general`: did fine-tuning break general instruction following?",
    )
    general_probe_limit: int | None = Field(None, ge=1, description="Use only the first N probe prompts.")
    general_max_new_tokens: int = Field(256, ge=1, description="Generation limit for the general probe.")
    max_new_tokens: int | None = Field(
        None,
        ge=1,
        description="Generation limit per case. Unset: derived from the longest reply in the training "
        "split (1.25x its tokens plus 8, at most 512), so a base model that rambles stops soon after the longest "
        "answer it could need.",
    )
    decoding: Literal["auto", "free", "constrained"] = Field(
        "auto",
        description="`constrained`: replies are held to the task's JSON Schema (json tasks; without a "
        "`task.json_schema`, one inferred from the training replies, label-like fields as enums) or label set "
        "(classification), and stop when the JSON object closes, through a structured-decoding library; the "
        "held-out suite is then also run with free decoding as `heldout_free`, so what the weights learned stays "
        "visible. `free`: unconstrained greedy decoding. `auto`: constrained for json and classification tasks.",
    )
    baselines: list[Literal["classifier", "few_shot"]] | Literal["auto"] = Field(
        "auto",
        description="The cheapest alternatives, evaluated on the same test cases as the tuned model: "
        "`classifier` (TF-IDF + logistic regression trained on the same training split, for label tasks) and "
        "`few_shot` (the base model prompted with the most similar training examples). A tuned model that loses "
        "to one is not shipped. `auto`: both for classification and label-like JSON tasks, none otherwise.",
    )
    few_shot_k: int = Field(
        8,
        ge=1,
        le=64,
        description="Examples in each few-shot prompt (the nearest training records by TF-IDF similarity).",
    )
    batch_size: int = Field(
        32, ge=1, description="Cases generated together (left-padded, greedy; longest prompts first)."
    )
    no_repeat_ngram_size: int | None = Field(
        None,
        ge=2,
        description="Greedy decoding never repeats an n-gram of this many tokens (breaks the loops small "
        "models fall into). Used for base and tuned alike, and written into exported generation configs.",
    )
    limit: int | None = Field(None, ge=1, description="Evaluate only the first N held-out cases (quick looks).")
    bootstrap_samples: int = Field(2000, ge=100, description="Resamples for the paired bootstrap intervals.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Confidence level of the intervals.")
    gate: GateConfig = Field(default_factory=GateConfig, description="Pass/fail rule on base vs tuned.")
    gates: list[GateConfig] = Field(
        default_factory=list,
        description="More rules, all of which must pass too, e.g. "
        "{metric: general.prompt_strict_accuracy, min_delta: -0.02, require_significant: false}.",
    )
    judge: EndpointConfig | None = Field(
        None, description="An LLM judge (OpenAI-compatible endpoint) for blind pairwise preference, both orders."
    )


class TrainConfig(Section):
    method: Literal["lora", "qlora", "full"] = Field(
        "lora",
        description="`lora`: a LoRA adapter on the frozen base; `qlora`: the same on a base quantized to "
        "4-bit NF4 with double quantization (bitsandbytes; runs on CPU too), for bases that do not fit in memory; "
        "`full`: every weight trains (the result is a whole model, not an adapter).",
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
    objective: Literal["sft", "dpo", "grpo", "reward"] = Field(
        "sft",
        description="`sft`: learn the replies (of preference pairs: the chosen ones). `dpo`: learn to prefer "
        "the chosen reply over the rejected one of each preference pair (the data must be pairs); the reference "
        "model is the base itself (the adapter switched off), so no second copy is loaded. `grpo`: sample several "
        "replies per prompt and reinforce those that score well on verifiable `rewards`. `reward`: train a reward "
        "model on preference pairs (`tunesmith train`), usable as a GRPO reward ({type: reward_model, path: ...}).",
    )
    rewards: list[dict[str, Any]] = Field(
        default_factory=list,
        description="GRPO rewards: scorer specs (the eval harness's types: exact, label, json, "
        "json_schema, json_fields, regex, numeric, contains, not_contains, behavior, tool_call, instructions, "
        "custom) with an optional `weight`, e.g. [{type: json_schema, weight: 0.5}, {type: json_fields}]. Each "
        "scores 1 or 0 against the record's own reply; empty = the task's defaults.",
    )
    grpo_generations: int = Field(4, ge=2, description="GRPO: replies sampled per prompt (the group).")
    grpo_max_completion_tokens: int = Field(64, ge=1, description="GRPO: longest sampled reply.")
    dpo_beta: float = Field(
        0.1, gt=0, description="DPO's beta: how far the tuned model may move from the reference (smaller = further)."
    )
    epochs: float | Literal["auto"] = Field(
        "auto",
        description="Passes over the training split, or `auto`: enough passes for small data sets to "
        "converge (about 6,000 examples seen, between 1 and 10 passes; see `auto_epochs`), with the validation "
        "metric deciding the checkpoint kept and early stopping deciding when to stop.",
    )
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (overrides epochs).")
    lr: float = Field(2e-4, gt=0, lt=1, description="Peak learning rate.")
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field("cosine", description="Learning-rate schedule.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps spent warming the learning rate up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    batch_size: int = Field(8, ge=1, description="Conversations per device per step.")
    grad_accum: int = Field(1, ge=1, description="Gradient accumulation steps.")
    lora_r: int = Field(16, ge=1, description="LoRA rank (8-16 is the usual range).")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha (scaling = alpha / r).")
    lora_dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Dropout on the LoRA path. Off by default (as in Unsloth): with one epoch it "
        "rarely helps, and on CPU it costs ~half of each step's forward time.",
    )
    target_modules: str | list[str] = Field("all-linear", description="Modules that get adapters.")
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
        "Unset: about three evaluations per epoch (at most one every 10 steps). Always once at the end.",
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
        "own replies to 200 built-in everyday prompts, made once per base model; a reply cut at its 64-token limit "
        "trains its text, not its end) or your own, e.g. the base model's replies to your general prompts "
        "(`tunesmith data distill general.jsonl --out data/general-self.jsonl`).",
    )
    general_share: float = Field(
        0.0,
        ge=0.0,
        lt=0.9,
        description="Share of the training examples drawn from `general_data` (seeded sample; 0.1 = one in ten).",
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


class ExportConfig(Section):
    formats: list[Literal["adapter", "merged", "gguf", "ollama"]] = Field(
        default_factory=list,
        description="Artifacts `tunesmith run` writes after training: the PEFT `adapter`, `merged` safetensors, "
        "`gguf` files (llama family), an `ollama` Modelfile with its GGUF.",
    )
    gguf_types: list[Literal["f16", "q8_0", "q4_0"]] = Field(
        default_factory=lambda: ["f16", "q8_0"], description="GGUF types written by the `gguf` format."
    )
    ollama_type: Literal["f16", "q8_0", "q4_0"] = Field("q8_0", description="The GGUF type the Modelfile uses.")
    parity: bool = Field(
        True,
        description="After exporting, `tunesmith run` evaluates the held-out split on each "
        "exported model (merged, every GGUF) and compares it with the checkpoint.",
    )
    parity_precision: Literal["fp32", "bf16", "auto"] = Field(
        "fp32",
        description="Precision of the parity evaluations (the checkpoint and every export alike). fp32 "
        "isolates what the export changed; bf16 evaluation by itself changes many greedy replies of a small model.",
    )
    parity_min_identical: float = Field(
        0.95,
        ge=0,
        le=1,
        description="Share of greedy replies identical to the checkpoint's that `merged` and `f16` exports must reach.",
    )
    parity_max_drop: float = Field(
        0.02,
        ge=0,
        le=1,
        description="How far task accuracy may fall below the "
        "checkpoint's on a quantized export (q8_0, q4_0) before parity fails.",
    )


SEARCH_PARAMS = (
    "lr",
    "epochs",
    "lora_r",
    "lora_alpha",
    "batch_size",
    "lora_dropout",
    "weight_decay",
    "general_share",
    "method",
    "warmup_ratio",
)


class TuneConfig(Section):
    budget_minutes: float = Field(
        30.0,
        gt=0,
        description="Wall time for the search's trials (`tunesmith tune --budget`); no trial starts "
        "when the time left is shorter than the trials so far took, and a running trial stops at the budget.",
    )
    max_trials: int | None = Field(None, ge=1, description="At most this many trials (the budget decides otherwise).")
    params: list[Literal[SEARCH_PARAMS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["lr", "epochs", "lora_r", "lora_alpha"],
        description="What the search varies, each over the range in `ranges` (or its default there): lr (log "
        "scale), epochs, lora_r, lora_alpha (as a multiple of r), batch_size, lora_dropout, weight_decay, "
        "general_share (a share of `train.general_data` mixed in against forgetting), method (lora or full), "
        "warmup_ratio.",
    )
    ranges: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="Ranges that replace the defaults: [low, high] for numbers, a list of "
        "choices otherwise, e.g. {lr: [1e-4, 3e-3], lora_r: [8, 16, 32, 64]}.",
    )
    pruner: Literal["hyperband", "successive_halving", "median", "none"] = Field(
        "hyperband",
        description="How a trial whose validation metric falls behind is stopped early (Optuna "
        "pruners, fed by the validation metric at every evaluation).",
    )
    storage: str | None = Field(
        None,
        description="Optuna storage URL, so several machines work on one study: `sqlite:///path.db`, "
        "`postgresql://…`, `mysql://…`, or `journal:///path.log` (a journal file, for a shared file system). "
        "Default: a SQLite file in the project's .tunesmith/tune/.",
    )
    seed: int = Field(42, description="Seed of the sampler (TPE).")


class BudgetConfig(Section):
    hourly_usd: float | None = Field(
        None, ge=0, description="Price per hour of the machine the stages run on; turns measured time into dollars."
    )
    max_train_minutes: float | None = Field(
        None, gt=0, description="Stop training at this wall time (the adapter so far is saved and marked so)."
    )


class Config(Section):
    """A tunesmith project: `tunesmith.yaml`."""

    model: ModelConfig = Field(default_factory=ModelConfig, description="The base model.")
    task: TaskConfig = Field(default_factory=TaskConfig, description="What the model must do.")
    data: DataConfig = Field(default_factory=DataConfig, description="Where the examples are and how to split them.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="How base and tuned are compared.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="How the model is trained.")
    export: ExportConfig = Field(default_factory=ExportConfig, description="What is written after training.")
    tune: TuneConfig = Field(
        default_factory=TuneConfig, description="The budgeted recipe search (`tunesmith tune`, `tunesmith run --tune`)."
    )
    budget: BudgetConfig = Field(default_factory=BudgetConfig, description="Prices and limits.")

    @field_validator("train")
    @classmethod
    def _adapter_options_need_an_adapter(cls, train: TrainConfig) -> TrainConfig:
        if train.method == "full" and (train.dora or train.rslora):
            raise ValueError("dora and rslora are LoRA variants; they do not apply to method: full")
        if train.rewards:
            for i, spec in enumerate(train.rewards):
                if spec.get("type") == "reward_model":
                    if not spec.get("path"):
                        raise ValueError(f"rewards[{i}]: a reward_model reward needs `path` (its reward_model/ dir)")
                    continue
                problem = scorer_problem({k: v for k, v in spec.items() if k != "weight"})
                if problem:
                    raise ValueError(f"rewards[{i}]: {problem[0]}")
        if train.method == "full" and train.objective == "dpo":
            raise ValueError("DPO here uses the base with the adapter switched off as its reference: use lora or qlora")
        return train

    @field_validator("task")
    @classmethod
    def _match_fields_need_json(cls, task: TaskConfig) -> TaskConfig:
        if task.match_fields and task.type != "json":
            raise ValueError("match_fields only applies to task.type: json")
        return task


def _parse_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` overrides (values parsed as YAML) to a raw config mapping."""
    problems = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            problems.append(Problem(f"--set {item}", "expected KEY=VALUE", "e.g. --set train.lr=1e-4"))
            continue
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                problems.append(Problem(f"--set {item}", f"`{part}` is not a section"))
                break
            node = child
        else:
            node[parts[-1]] = _parse_scalar(value)
    if problems:
        raise TunesmithError("Bad --set override", problems)
    return raw


def _known_fields(path: tuple) -> list[str]:
    model: type[BaseModel] = Config
    for part in path:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _path_part(part: Any) -> str:
    """One step of a YAML path as a person can read it: `[2]`, `train`, or a quoted key (`' '`, `'a.b'`)."""
    if isinstance(part, int):
        return f"[{part}]"
    text = str(part)
    if not text:  # `"": x` at the top: reported as the top level
        return ""
    return text if text.strip() == text and text.isprintable() and "." not in text else repr(text)


def _problems_from(err: ValidationError, source: str) -> list[Problem]:
    problems = []
    for item in err.errors():
        loc = tuple(item["loc"])
        dotted = ".".join(_path_part(p) for p in loc).replace(".[", "[")
        hint = ""
        if item["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), _known_fields(loc[:-1]), n=1)
            hint = f"did you mean `{close[0]}`?" if close else "remove it; `tunesmith config schema` lists the fields"
            message = "unknown field"
        else:
            message = item["msg"]
            if "input" in item and not isinstance(item["input"], dict):
                message += f" (got {item['input']!r})"
        problems.append(Problem(f"{source}: {dotted or '(top level)'}", message, hint))  # `"": x` has no path
    return problems


def _deepest_line(text: str) -> int:
    """The line where bracket (flow) nesting, or else indentation, is deepest: where YAML nests too deeply."""
    depth, best, line, best_line = 0, 0, 1, 1
    for ch in text:
        if ch == "\n":
            line += 1
        elif ch in "[{":
            depth += 1
            if depth > best:
                best, best_line = depth, line
        elif ch in "]}":
            depth = max(depth - 1, 0)
    if best >= 50:
        return best_line
    indents = [len(ln) - len(ln.lstrip(" -")) for ln in text.splitlines()] or [0]
    return indents.index(max(indents)) + 1


def _long_number_line(text: str) -> int:
    import re

    m = re.search(r"[0-9_]{4300,}", text)
    return text[: m.start()].count("\n") + 1 if m else 1


def load_config(path: str | Path, overrides: list[str] | None = None) -> tuple[Config, Path]:
    """Read `tunesmith.yaml` (a project dir or the file itself), apply overrides, validate everything at once.

    Returns the config and the project directory that relative paths are resolved against.
    """
    path = Path(path)
    file = path / CONFIG_NAME if path.is_dir() else path
    if not file.exists():
        where = str(file)
        if not path.exists():
            raise TunesmithError(
                "No such project", [Problem(str(path), "does not exist", f"create one with `tunesmith init {path}`")]
            )
        raise TunesmithError(
            "No tunesmith.yaml", [Problem(where, "file not found", f"create one with `tunesmith init {path}`")]
        )
    data = file.read_bytes()
    try:
        raw = yaml.safe_load(data.decode("utf-8")) or {}
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TunesmithError(
            "tunesmith.yaml is not UTF-8",
            [Problem(f"{file}:{line}", f"byte 0x{data[exc.start]:02x} is not UTF-8", "save the file as UTF-8")],
        ) from None
    except (RecursionError, ValueError) as exc:  # nesting deeper than Python's stack, an int of 4,300+ digits
        text = data.decode("utf-8")
        line = _deepest_line(text) if isinstance(exc, RecursionError) else _long_number_line(text)
        message = "nested too deeply" if isinstance(exc, RecursionError) else "a number too long to read"
        raise TunesmithError(
            "tunesmith.yaml cannot be read",
            [Problem(f"{file}:{line}", message, "a config is a few levels of sections and short values")],
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark else str(file)
        if mark is None and isinstance(getattr(exc, "position", None), int):  # a ReaderError: a character
            where = f"{file}:{data.decode('utf-8')[: exc.position].count(chr(10)) + 1}"
        raise TunesmithError(
            "tunesmith.yaml is not valid YAML",
            [Problem(where, str(getattr(exc, "problem", exc)), "check indentation and quoting on that line")],
        ) from None
    if not isinstance(raw, dict):
        raise TunesmithError(
            "Bad config",
            [
                Problem(
                    f"{file}: (top level)",
                    "the top level must be a mapping of sections",
                    "e.g. `model:` and `data:` at the start of a line",
                )
            ],
        )
    raw = apply_overrides(raw, overrides or [])
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as err:
        problems = _problems_from(err, str(file))
        raise TunesmithError(f"Bad config: {len(problems)} problem(s)", problems) from None
    return cfg, file.parent


def apply_updates(cfg: Config, updates: dict[str, Any], source: str = "options") -> Config:
    """`cfg` with typed updates applied, validated as a whole: `apply_updates(cfg, {"train": {"lora_r": 8}})`.

    What command-line flags use (a value keeps its Python type; nothing is parsed back from a string). For an API
    that takes `--set` strings only, `update_overrides` writes the same updates as strings that parse back exactly.
    """

    def merge(node: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
        for key, value in patch.items():
            node[key] = merge(dict(node.get(key) or {}), value) if isinstance(value, dict) else value
        return node

    try:
        return Config.model_validate(merge(cfg.model_dump(mode="json"), updates))
    except ValidationError as err:
        problems = _problems_from(err, source)
        raise TunesmithError(f"Bad config: {len(problems)} problem(s)", problems) from None


def update_overrides(updates: dict[str, Any], prefix: str = "") -> list[str]:
    """Typed updates as `section.key=value` overrides whose values parse back to the same type and value (each is
    JSON, which YAML reads exactly): {"train": {"dora": True, "method": "lora"}} -> ["train.dora=true",
    'train.method="lora"']. For the APIs that take `--set` strings (`train_project`, `tune_project`)."""
    import json

    out: list[str] = []
    for key, value in updates.items():
        if isinstance(value, dict):
            out += update_overrides(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")
    return out


def config_schema() -> dict[str, Any]:
    """JSON Schema of tunesmith.yaml."""
    return Config.model_json_schema()
