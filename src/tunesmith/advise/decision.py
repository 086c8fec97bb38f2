"""The guide's decision rules applied to the answers: the reasons they give, the recommendation those reasons make,
the examples the task needs, and the method and model size that fit the user's GPU (`advise`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tunesmith.advise.answers import (
    BEHAVIOR_NEEDS,
    EXAMPLES_NEEDED,
    GUIDE,
    MIN_EXAMPLES,
    NARROW_TASK_MAX_SIZE,
    NEEDS,
    STALE_FACT_SHARE,
    SWEET_SPOT_GIB,
    TARGET_ACCURACY,
    TASKS,
    VOLUMES,
    Answers,
)
from tunesmith.cost import DEFAULT_GPUS, NAMED_SIZES, Gpu, Recipe, find_gpu, fit_on, named_shape


@dataclass(frozen=True)
class Reason:
    points_to: str  # prompting, rag, fine-tune
    text: str
    source: str


@dataclass
class Advice:
    recommendation: str
    reasons: list[Reason]
    task: str
    examples_needed: tuple[int, int | None]
    examples_have: int | None
    gpu: str
    gpu_memory_gib: float
    method: str | None  # what fits the GPU at the largest suitable size (if you fine-tune)
    model_size: str | None
    fit_change: str | None
    project_model: dict[str, Any] | None
    next_steps: list[str]
    notes: list[str]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["examples_needed"] = list(self.examples_needed)
        return out


def _task_of(a: Answers) -> str:
    if a.task:
        return a.task
    needs = set(a.needs)
    if "reasoning" in needs:
        return "reasoning"
    if "classification" in needs:
        return "classification"
    if needs & {"format", "tools"}:
        return "structured"
    return "style"


def _reasons(a: Answers) -> list[Reason]:
    """Every reason the answers give, in the order they are shown: what the model must get right, the facts that
    belong in retrieval, the evidence for fine-tuning, and what says prompting is enough for now."""
    return [*_need_reasons(a), *_rag_reasons(a), *_fine_tune_reasons(a), *_prompting_reasons(a)]


def _need_reasons(a: Answers) -> list[Reason]:
    """One fine-tuning reason per behavior the model must get right."""
    return [
        Reason(
            "fine-tune",
            BEHAVIOR_NEEDS[n] + ": fine-tune for behavior, format, style, classification and repeated task patterns",
            GUIDE,
        )
        for n in BEHAVIOR_NEEDS
        if n in a.needs
    ]


def _rag_reasons(a: Answers) -> list[Reason]:
    """Facts that change, citations, and training replies that state changeable facts: retrieval."""
    out = []
    if a.facts_change or "facts" in a.needs:
        out.append(
            Reason(
                "rag",
                "Facts that change (pricing pages, policy docs, knowledge bases) belong in "
                "retrieval: fine-tuning is not a knowledge injection mechanism",
                GUIDE,
            )
        )
    if a.citations:
        out.append(
            Reason("rag", "Compliance rules requiring citations from current, auditable sources need retrieval", GUIDE)
        )
    if a.stale_fact_share is not None and a.stale_fact_share >= STALE_FACT_SHARE:
        out.append(
            Reason(
                "rag",
                f"{a.stale_fact_share:.0%} of the training replies state facts that change "
                "(prices, dates, versions, URLs, policy numbers): a model trained on them repeats "
                "yesterday's facts",
                "data doctor (stale_fact)",
            )
        )
    return out


def _fine_tune_reasons(a: Answers) -> list[Reason]:
    """A base that drifts out of format, a tuned model that passed the gate, high volume: training pays."""
    out = []
    if a.base_format_validity is not None and a.base_format_validity < TARGET_ACCURACY:
        out.append(
            Reason(
                "fine-tune",
                f"The prompted base returns valid format only {a.base_format_validity:.0%} "
                "of the time: it keeps drifting out of format",
                "eval of the base model",
            )
        )
    if a.tuned_gate_passed:
        out.append(
            Reason("fine-tune", "The tuned model beat the base on the held-out set (the gate passed)", "tunesmith run")
        )
    if a.volume == "high":
        out.append(
            Reason(
                "fine-tune",
                "High volume: a fine-tuned small model can replace a massive system "
                "prompt (shorter prompts for high-volume workloads)",
                GUIDE,
            )
        )
    return out


def _prompting_reasons(a: Answers) -> list[Reason]:
    """Low volume, still experimenting, too few examples, a base already good enough: training does not pay yet."""
    out = []
    if a.volume in ("one-off", "low"):
        out.append(
            Reason(
                "prompting",
                "Low-volume or one-off work: in-context learning is faster than training "
                "(use prompting for low-volume workflows)",
                GUIDE,
            )
        )
    if a.experimenting:
        out.append(Reason("prompting", "Still experimenting: prompting is for fast experiments", GUIDE))
    if a.examples is not None and a.examples < MIN_EXAMPLES:
        out.append(
            Reason(
                "prompting",
                f"{a.examples} examples: fine-tuning needs high-quality examples, and "
                f"{MIN_EXAMPLES}-200 excellent ones is where narrow format or style starts to improve",
                GUIDE,
            )
        )
    if a.base_accuracy is not None and a.base_accuracy >= TARGET_ACCURACY:
        out.append(
            Reason(
                "prompting",
                f"The prompted base already reaches {a.base_accuracy:.0%} task accuracy; "
                f"fine-tuning is for pushing past {TARGET_ACCURACY:.0%}, and that last stretch is the "
                "most expensive",
                "eval of the base model",
            )
        )
    return out


def _decide(reasons: list[Reason]) -> str:
    kinds = {r.points_to for r in reasons}
    if "prompting" in kinds:  # training does not pay yet; facts still want retrieval
        return "rag" if "rag" in kinds else "prompting"
    if "fine-tune" in kinds:
        return "fine-tune+rag" if "rag" in kinds else "fine-tune"
    return "rag" if "rag" in kinds else "prompting"


def gpu_of(a: Answers) -> tuple[Gpu, list[str]]:
    """The user's card: named, or a memory size, else the guide's 24 GB sweet spot (said so in the notes)."""
    if a.gpu:
        gpu = (
            find_gpu({g.name: g for g in DEFAULT_GPUS}, a.gpu)
            if a.gpu_memory_gib is None
            else Gpu(a.gpu, a.gpu_memory_gib, 0.0, None)
        )
        return gpu, []
    if a.gpu_memory_gib:
        return Gpu("your GPU", a.gpu_memory_gib, 0.0, None), []
    return Gpu("an assumed GPU", SWEET_SPOT_GIB, 0.0, None), [
        f"No GPU given: assumed {SWEET_SPOT_GIB:g} GiB, the guide's sweet spot for training (--gpu or --vram to "
        "change it)"
    ]


def size_and_method(memory_gib: float, recipe: Recipe) -> tuple[str | None, str | None, str | None]:
    """(size, method, change) for the largest named size up to NARROW_TASK_MAX_SIZE that trains on this card: LoRA
    when the bf16 base fits at the planned micro-batch (no quantization gap), else QLoRA (the guide's pick for
    "larger models on constrained hardware"), with the change the fit needs."""
    sizes = list(NAMED_SIZES)[: list(NAMED_SIZES).index(NARROW_TASK_MAX_SIZE) + 1]
    for size in reversed(sizes):
        shape = named_shape(size)
        lora = fit_on(shape, recipe, memory_gib, "lora")
        if lora.fits and lora.recipe.batch_size == recipe.batch_size:
            return size, "lora", lora.change
        qlora = fit_on(shape, recipe, memory_gib, "qlora")
        if qlora.fits:
            return size, "qlora", qlora.change
    return None, None, None


def advise(a: Answers) -> Advice:
    """The recommendation with its reasons, the examples needed vs had, and the method and model size that fit."""
    _check(a)
    reasons = _reasons(a)
    rec = _decide(reasons)
    notes = list(a.evidence)
    if not reasons:
        reasons.append(
            Reason(
                "prompting",
                "Nothing points to training yet: prompting gets you to 80%; fine-tune "
                "when the model keeps ignoring a pattern across hundreds of examples",
                GUIDE,
            )
        )
    task = _task_of(a)
    needed = EXAMPLES_NEEDED[task]
    gpu, gpu_notes = gpu_of(a)
    notes += gpu_notes
    size, method, change = size_and_method(gpu.memory_gib, a.recipe)
    return Advice(
        rec,
        reasons,
        task,
        needed,
        a.examples,
        gpu.name,
        gpu.memory_gib,
        method,
        size,
        change,
        _project_fit(a, gpu),
        _next_steps(rec, a, needed),
        notes,
    )


def _check(a: Answers) -> None:
    """A TunesmithError naming every need, volume or task type the rules do not know."""
    bad = [n for n in a.needs if n not in NEEDS]
    if bad or (a.volume is not None and a.volume not in VOLUMES) or (a.task is not None and a.task not in TASKS):
        from tunesmith.errors import Problem, TunesmithError

        problems = [Problem(f"need {n}", "unknown", f"one of {', '.join(NEEDS)}") for n in bad]
        if a.volume is not None and a.volume not in VOLUMES:
            problems.append(Problem(f"volume {a.volume}", "unknown", f"one of {', '.join(VOLUMES)}"))
        if a.task is not None and a.task not in TASKS:
            problems.append(Problem(f"task {a.task}", "unknown", f"one of {', '.join(TASKS)}"))
        raise TunesmithError("Bad answers", problems)


def _project_fit(a: Answers, gpu: Gpu) -> dict[str, Any] | None:
    """Whether the project's own model trains on the card with its recipe (None without a project model)."""
    if a.model_shape is None:
        return None
    fit = fit_on(a.model_shape, a.recipe, gpu.memory_gib)
    return {
        "model": a.model_shape.name,
        "size": a.model_shape.label,
        "method": a.recipe.method,
        "fits": fit.fits,
        "change": fit.change,
        "total_gib": fit.estimate.total,
    }


def _next_steps(rec: str, a: Answers, needed: tuple[int, int | None]) -> list[str]:
    low, high = needed
    steps = []
    if rec.startswith("fine-tune"):
        if a.examples is None or a.examples < low:
            steps.append(
                f"Grow the data to {low}+ examples"
                + (f" (have {a.examples})" if a.examples is not None else "")
                + ": real ones first, then `tunesmith data "
                "synth` and score a 5-10% sample (`tunesmith review sample`)"
            )
        steps.append(
            "Write the evaluation first and hold out 20% (tunesmith's split does); compare against the "
            "base: `tunesmith run PROJECT`"
        )
        steps.append("See the time and dollars before training: `tunesmith cost PROJECT`")
    if a.stale_fact_records and "rag" not in rec:
        steps.append(
            f"{a.stale_fact_records} training replies state facts that change: remove them or fetch them "
            "at answer time (`tunesmith data check` lists them as stale_fact); a model trained on them "
            "repeats yesterday's facts"
        )
    if "rag" in rec:
        steps.append(
            "Keep changing facts out of the training replies (`tunesmith data check` flags them as "
            "stale_fact) and retrieve them at answer time, with citations"
        )
    if rec == "prompting":
        steps.append(
            "Iterate on the prompt and collect real examples; revisit fine-tuning when the prompt keeps "
            "growing or outputs stay inconsistent"
            + (f" and you have {low}+ examples" if (a.examples or 0) < low else "")
        )
    return steps
