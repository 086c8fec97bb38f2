"""`eval:`: how base and tuned are compared: suites, decoding, baselines, statistics, the gates and the judge.

    eval:
      baselines:
        - classifier                                   # the built-in cheap alternatives, as before
        - {name: hosted, base_url: https://api.openai.com/v1, model: "ft:gpt-4o-mini:acme::x",
           api_key_env: OPENAI_API_KEY, input_usd_per_mtok: 0.3, output_usd_per_mtok: 1.2}
        - {name: hosted-export, responses: hosted-replies.jsonl}    # recorded replies, no API call
      gates: [{metric: task_accuracy, min_delta: -0.02, vs: hosted}]  # non-inferior to the hosted model

The named baselines (an endpoint, recorded replies) run on the held-out cases: `tunesmith.eval.named_baselines`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from tunesmith.config.section import Section, union_tag

BUILTIN_BASELINES = ("classifier", "few_shot")
RESERVED_NAMES = ("base", "tuned", "auto", *BUILTIN_BASELINES)  # what a named baseline may not be called


class GateConfig(Section):
    metric: str = Field(
        "task_accuracy",
        description="The metric the gate judges: `metric` (held-out suite), "
        "`suite.metric`, or a tag slice `suite#tag.metric`. For metrics where lower is better "
        "(hallucination_rate, token_limit_rate) the delta is taken as an improvement.",
    )
    min_delta: float = Field(
        0.0,
        ge=-1.0,
        lt=1.0,
        description="The tuned model must beat the base by more than this (absolute, a share: 0.02 is 2 points). "
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
        ge=0.0,
        le=1.0,
        description="An absolute target (a share from 0 to 1): the tuned model's value of the metric must reach it "
        "too (e.g. 0.85 task accuracy). Beating the base is not enough when the base is useless; for lower-is-better "
        "metrics it is a ceiling.",
    )
    vs: str | None = Field(
        None,
        description="Compare the tuned model with this baseline (a name in `eval.baselines`, e.g. `hosted`) "
        "instead of the base, on the held-out cases: {metric: task_accuracy, min_delta: -0.02, vs: hosted} = "
        "non-inferior to the hosted model within 2 points. `tunesmith eval compare` leaves such gates out.",
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


BASELINE_NAME = Field(
    ...,
    pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
    max_length=64,
    description="The baseline's name in tables, the verdict and `vs:` (letters, digits, `_`, `.`, `-`).",
)


class EndpointBaseline(EndpointConfig):
    """A model behind an OpenAI-compatible endpoint (a hosted fine-tune), asked the held-out cases."""

    name: str = BASELINE_NAME


class RecordedBaseline(Section):
    """A model's recorded replies to the held-out cases (`id` and `output` per line, or IFEval's `prompt` and
    `response`), scored without calling it."""

    name: str = BASELINE_NAME
    responses: str = Field(..., description="Responses JSONL, relative to the project (as `tunesmith eval score`).")
    input_usd_per_mtok: float | None = Field(
        None, ge=0, description="Price per million prompt tokens (counted with the base model's tokenizer)."
    )
    output_usd_per_mtok: float | None = Field(
        None, ge=0, description="Price per million reply tokens (counted with the base model's tokenizer)."
    )


def _baseline_kind(value: Any) -> str:
    """Which kind of `eval.baselines` entry `value` is: a built-in name, an endpoint, or recorded replies."""
    if isinstance(value, (str, RecordedBaseline)) or (isinstance(value, dict) and "responses" in value):
        return union_tag("name" if isinstance(value, str) else "recorded")
    return union_tag("endpoint")


BaselineEntry = Annotated[
    Annotated[Literal["auto", "classifier", "few_shot"], Tag(union_tag("name"))]
    | Annotated[EndpointBaseline, Tag(union_tag("endpoint"))]
    | Annotated[RecordedBaseline, Tag(union_tag("recorded"))],
    Discriminator(_baseline_kind),
]
Baselines = Annotated[
    Annotated[Literal["auto"], Tag(union_tag("auto"))] | Annotated[list[BaselineEntry], Tag(union_tag("list"))],
    Discriminator(lambda v: union_tag("auto" if isinstance(v, str) else "list")),
]


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
    baselines: Baselines = Field(
        "auto",
        description="The alternatives, evaluated on the same test cases as the tuned model: `classifier` "
        "(TF-IDF + logistic regression trained on the same training split, for label tasks), `few_shot` (the base "
        "model prompted with the most similar training examples), an endpoint ({name, base_url, model, "
        "api_key_env, input_usd_per_mtok, output_usd_per_mtok}: e.g. a hosted fine-tune, asked with the same "
        "decoding) or recorded replies ({name, responses: file.jsonl}). A tuned model that loses to one is not "
        "shipped (unless a `vs:` gate names it). `auto`: classifier and few_shot for classification and "
        "label-like JSON tasks, none otherwise (also as a list entry: [auto, {name: hosted, ...}]).",
    )
    few_shot_k: int = Field(
        8,
        ge=1,
        le=64,
        description="Examples in each few-shot prompt (the nearest training records by TF-IDF similarity).",
    )
    few_shot_stop: bool = Field(
        True,
        description="Few-shot prompting is asked the held-out cases in rounds (a quarter, at least 100, then "
        "half, then all, in a seeded random order) and stops after a round where it is clearly below the "
        "classifier on the cases asked so far (the gate's metric, interval and McNemar at ten times the "
        "confidence: 0.995 for 0.95). Its comparisons are then on those cases. It is the slowest evaluation "
        "(prompts of k examples); false: always all cases.",
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

    @field_validator("baselines")
    @classmethod
    def _unique_names(cls, baselines: Any) -> Any:
        if baselines == "auto":
            return baselines
        seen: set[str] = set()
        for entry in baselines:
            if isinstance(entry, str):
                continue
            if entry.name in RESERVED_NAMES:
                raise ValueError(
                    f"a baseline may not be called {entry.name!r} (taken: {', '.join(RESERVED_NAMES)}); rename it"
                )
            if entry.name in seen:
                raise ValueError(f"two baselines are called {entry.name!r}: each name must be unique")
            seen.add(entry.name)
        return baselines

    @model_validator(mode="after")
    def _gates_name_baselines(self) -> EvalConfig:
        known = baseline_names(self)
        for where, g in [("gate", self.gate), *((f"gates[{i}]", g) for i, g in enumerate(self.gates))]:
            if g.vs is None:
                continue
            if g.vs not in known:
                listed = ", ".join(known) or "none (eval.baselines is empty)"
                raise ValueError(f"{where}.vs: {g.vs!r} is not a baseline; the baselines: {listed}")
            if g.metric.rpartition(".")[0] not in ("", "heldout"):
                raise ValueError(
                    f"{where}.vs: baselines are measured on the held-out cases only, not {g.metric!r} "
                    "(write the metric without a suite, e.g. task_accuracy)"
                )
        return self


def baseline_names(ev: EvalConfig) -> list[str]:
    """The names `eval.baselines` may run: the built-in ones it lists (both for `auto`) and the named ones."""
    entries = ["auto"] if ev.baselines == "auto" else ev.baselines
    names: list[str] = []
    for entry in entries:
        names += list(BUILTIN_BASELINES) if entry == "auto" else [entry if isinstance(entry, str) else entry.name]
    return list(dict.fromkeys(names))


def wants_constraint(cfg) -> bool:
    """Whether `eval.decoding` constrains this task's replies (`cfg`: the whole config, for the task's type)."""
    mode = cfg.eval.decoding
    return mode == "constrained" or (mode == "auto" and cfg.task.type in ("json", "classification"))
