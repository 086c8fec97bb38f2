"""What is known about the task (`Answers`), in the vocabulary the rules speak (needs, volumes, task types), and the
guide's thresholds: every one a named constant with its source, the practice guide
(shared/reference/fine-tuning-guide-2026.txt) or, where the guide gives no number, tunesmith's own reading, said so."""

from __future__ import annotations

from dataclasses import dataclass, field

from tunesmith.cost import ModelShape, Recipe
from tunesmith.data.coverage import GUIDANCE

RECOMMENDATIONS = ("prompting", "rag", "fine-tune", "fine-tune+rag")
# What the model must get right. The guide: "fine-tune for behavior, format, style, classification, and repeated
# task patterns. Use RAG for changing knowledge."
BEHAVIOR_NEEDS = {
    "format": "A consistent output format (structured replies)",
    "style": "A domain style (tone and terminology)",
    "classification": "Classification and routing",
    "tools": "Tool-calling behavior and function-calling schemas",
    "behavior": "Reply behavior: when to escalate, refuse or ask",
    # Guide: "If you have problems with verifiable answers (math, code, logic), GRPO is worth trying."
    "reasoning": "Step-by-step reasoning to a verifiable answer (maths, code, logic)",
}
KNOWLEDGE_NEEDS = {"facts": "Use RAG for changing knowledge"}
NEEDS = (*BEHAVIOR_NEEDS, *KNOWLEDGE_NEEDS)
VOLUMES = ("one-off", "low", "high")
# Starting dataset sizes (guide, "How Much Data Do You Need?"): tone and style 50-200, classification 200-1,000,
# structured support replies 200-1,000 (the same numbers the data doctor's low_data finding uses), complex domain
# workflow 1,000+ plus expert review; worked maths solutions are complex domain behavior (500-2,000).
EXAMPLES_NEEDED: dict[str, tuple[int, int | None]] = {
    "style": GUIDANCE["chat"],
    "classification": GUIDANCE["classification"],
    "structured": GUIDANCE["json"],
    "reasoning": GUIDANCE["math"],
    "complex": (1000, None),
}
TASKS = tuple(EXAMPLES_NEEDED)
# Guide: "For narrow formatting or style, 50-200 excellent examples can show improvement": below the smallest
# starting set, there is nothing to fine-tune on yet.
MIN_EXAMPLES = EXAMPLES_NEEDED["style"][0]
# Guide: "prompting gets you to 80% ... consider fine-tuning to push past 95%".
TARGET_ACCURACY = 0.95
# The guide gives no share; tunesmith's reading: once one reply in twenty states a price, date, version, URL or
# policy number (the data doctor's stale_fact finding), the facts are part of the task and belong in retrieval.
STALE_FACT_SHARE = 0.05
# Guide: "For comfortable training with reasonable batch sizes, 16-24GB (RTX 4090 or A5000) is the sweet spot":
# the card assumed when none is named or found.
SWEET_SPOT_GIB = 24.0
# Guide: "Tune a smaller model when the task is narrow. A fine-tuned 7B model often outperforms a prompted 70B
# model": the largest size suggested for a task (the 7-8B class).
NARROW_TASK_MAX_SIZE = "8B"
GUIDE = "fine-tuning guide 2026"


@dataclass
class Answers:
    """What is known about the task: from flags, the questionnaire, or a project. None = not known."""

    needs: list[str] = field(default_factory=list)  # among NEEDS
    facts_change: bool | None = None
    citations: bool | None = None
    volume: str | None = None  # one-off, low, high
    experimenting: bool | None = None
    task: str | None = None  # style, classification, structured, reasoning, complex (how many examples it needs)
    examples: int | None = None
    stale_fact_share: float | None = None
    stale_fact_records: int | None = None
    base_accuracy: float | None = None
    base_format_validity: float | None = None
    tuned_gate_passed: bool | None = None
    gpu: str | None = None
    gpu_memory_gib: float | None = None
    model_shape: ModelShape | None = None  # the project's own model, to check it fits
    recipe: Recipe = field(default_factory=Recipe)
    evidence: list[str] = field(default_factory=list)  # where the answers came from
