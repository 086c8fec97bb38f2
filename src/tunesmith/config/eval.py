"""`eval:`: how base and tuned are compared: suites, decoding, baselines, statistics, the gates and the judge."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tunesmith.config.section import Section


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
        "instructions, custom, and OpenAI's graders string_check, text_similarity, score_model, label_model (these "
        "two ask `eval.judge`), python, multi.",
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
        None,
        description="An LLM judge (OpenAI-compatible endpoint) for blind pairwise preference, both orders; "
        "OpenAI's score_model and label_model graders (scorers and GRPO rewards) ask it too.",
    )
