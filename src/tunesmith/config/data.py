"""`data:`: where the examples are, how their columns map, and how they are split and checked."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tunesmith.config.section import Section


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
