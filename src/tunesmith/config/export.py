"""`export:`: the artifacts written after training and the parity checks on them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunesmith.config.section import Section


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
    gguf_pre_tokenizer: str | None = Field(
        None,
        description="llama.cpp's name for the base model's pre-tokenizer (e.g. llama-bpe, qwen2), for a tokenizer "
        "tunesmith cannot name by the hash llama.cpp's converter uses; unset, an unknown one is refused rather than "
        "written as `default`, which splits text otherwise than training did.",
    )
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
