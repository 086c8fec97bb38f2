"""Prompting, RAG, fine-tuning, or fine-tuning plus RAG? The guide's decision rules, applied to a user's answers.

    advice = advise(Answers(needs=["format"], examples=300, gpu="RTX 4090"))
    advice = advise(answers_from_project("examples/support-triage"))    # the data doctor's stats and eval results
    advice.recommendation, advice.reasons, advice.method, advice.model_size, advice.examples_needed

`advise` is a pure function of the answers (it reads no file); `answers_from_project` fills them from a project:
the task type, the data doctor's counts (usable examples, replies that state changeable facts, tool calls,
escalations and refusals) and, after an evaluation, how the prompted base did. Every threshold below is a named
constant with its source: the practice guide (shared/reference/fine-tuning-guide-2026.txt) or, where the guide gives
no number, tunesmith's own reading, said so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.cost import DEFAULT_GPUS, NAMED_SIZES, Gpu, ModelShape, Recipe, find_gpu, fit_on, named_shape
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
}
KNOWLEDGE_NEEDS = {"facts": "Use RAG for changing knowledge"}
NEEDS = (*BEHAVIOR_NEEDS, *KNOWLEDGE_NEEDS)
VOLUMES = ("one-off", "low", "high")
# Starting dataset sizes (guide, "How Much Data Do You Need?"): tone and style 50-200, classification 200-1,000,
# structured support replies 200-1,000 (the same numbers the data doctor's low_data finding uses), complex domain
# workflow 1,000+ plus expert review.
EXAMPLES_NEEDED: dict[str, tuple[int, int | None]] = {
    "style": GUIDANCE["chat"],
    "classification": GUIDANCE["classification"],
    "structured": GUIDANCE["json"],
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
    task: str | None = None  # style, classification, structured, complex (how many examples it needs)
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
    if "classification" in needs:
        return "classification"
    if needs & {"format", "tools"}:
        return "structured"
    return "style"


def _reasons(a: Answers) -> list[Reason]:
    out = [
        Reason(
            "fine-tune",
            BEHAVIOR_NEEDS[n] + ": fine-tune for behavior, format, style, classification and repeated task patterns",
            GUIDE,
        )
        for n in BEHAVIOR_NEEDS
        if n in a.needs
    ]
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
    bad = [n for n in a.needs if n not in NEEDS]
    if bad or (a.volume is not None and a.volume not in VOLUMES) or (a.task is not None and a.task not in TASKS):
        from tunesmith.errors import Problem, TunesmithError

        problems = [Problem(f"need {n}", "unknown", f"one of {', '.join(NEEDS)}") for n in bad]
        if a.volume is not None and a.volume not in VOLUMES:
            problems.append(Problem(f"volume {a.volume}", "unknown", f"one of {', '.join(VOLUMES)}"))
        if a.task is not None and a.task not in TASKS:
            problems.append(Problem(f"task {a.task}", "unknown", f"one of {', '.join(TASKS)}"))
        raise TunesmithError("Bad answers", problems)
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
    project_model = None
    if a.model_shape is not None:
        fit = fit_on(a.model_shape, a.recipe, gpu.memory_gib)
        project_model = {
            "model": a.model_shape.name,
            "size": a.model_shape.label,
            "method": a.recipe.method,
            "fits": fit.fits,
            "change": fit.change,
            "total_gib": fit.estimate.total,
        }
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
        project_model,
        _next_steps(rec, a, needed),
        notes,
    )


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


# -------------------------------------------------------------------------------------------- from a project


def answers_from_project(project: str | Path, overrides: list[str] | None = None) -> Answers:
    """Answers from a project: its task type, the data doctor's counts (run without a tokenizer, so no model is
    loaded) and the latest evaluation of the base (and the gate of the last `tunesmith run`)."""
    from tunesmith import runs
    from tunesmith.config import load_config
    from tunesmith.cost import model_shape
    from tunesmith.data.audit import check_files
    from tunesmith.data.findings import Code
    from tunesmith.data.project import data_files, load_schema, stratify_field
    from tunesmith.data.records import Record
    from tunesmith.data.split import ReplyLabel
    from tunesmith.errors import TunesmithError

    cfg, root = load_config(project, overrides)
    files = data_files(cfg, root)
    with_tools = [0]

    def seen(item, errors) -> None:
        if isinstance(item, Record) and item.tools:
            with_tools[0] += 1

    report = check_files(
        files,
        cfg.data.format,
        root,
        workers=1,
        keep=False,
        on_verdict=seen,
        near_dup_threshold=cfg.data.near_dup_threshold,
        system_prompt=cfg.task.system_prompt,
        json_task=cfg.task.type == "json",
        schema=load_schema(cfg, root),
        task_type=cfg.task.type,
        label_of=ReplyLabel(stratify_field(cfg)),
    )
    a = Answers(recipe=Recipe.from_config(cfg))
    a.task = {"json": "structured", "classification": "classification", "chat": "style"}[cfg.task.type]
    a.needs = [{"json": "format", "classification": "classification", "chat": "style"}[cfg.task.type]]
    if with_tools[0]:
        a.needs.append("tools")
    behaviors = report.stats.get("behaviors") or {}
    if behaviors.get("escalate") or behaviors.get("refuse"):
        a.needs.append("behavior")
    stale = {f.where for f in report.findings if f.code == Code.STALE_FACT}
    a.examples = report.n_kept
    a.stale_fact_share = len(stale) / report.records if report.records else None
    a.stale_fact_records = len(stale)
    a.evidence.append(
        f"data doctor: {report.n_kept} usable of {report.records} records, {len(stale)} with "
        f"replies stating changeable facts, {with_tools[0]} with tool calls, "
        f"{behaviors.get('escalate', 0)} escalations, {behaviors.get('refuse', 0)} refusals"
    )
    summary = runs.load_summary(root)
    base = None
    if summary:
        base = (summary.get("base_metrics") or {}).get("heldout")
        a.tuned_gate_passed = bool((summary.get("gate") or {}).get("passed"))
    else:
        done = [r for r in runs.list_runs(root) if r["stage"] == "eval-base" and r["status"] == "completed"]
        if done:
            base = ((done[-1]["result"] or {}).get("metrics") or {}).get("heldout")
    if base:
        a.base_accuracy, a.base_format_validity = base.get("task_accuracy"), base.get("format_validity")
        a.evidence.append(
            "eval: base task accuracy "
            + (f"{a.base_accuracy:.0%}" if a.base_accuracy is not None else "n/a")
            + (
                ""
                if a.tuned_gate_passed is None
                else f", gate {'passed' if a.tuned_gate_passed else 'failed'} after tuning"
            )
        )
    try:
        a.model_shape = model_shape(cfg.model.base, cfg.model.trust_remote_code)
    except TunesmithError as err:  # e.g. a hub id while offline: advise without the fit check
        a.evidence.append(f"model {cfg.model.base}: not sized ({err.title})")
    return a


def questionnaire(a: Answers, prompt, confirm) -> Answers:
    """A short interview that fills (or overrides) the answers; `prompt`/`confirm` are typer.prompt/typer.confirm
    (or stand-ins in tests)."""
    needs = prompt(
        f"What must the model get right? ({', '.join(NEEDS)}; comma-separated)", default=",".join(a.needs) or "style"
    )
    a.needs = [n.strip() for n in str(needs).split(",") if n.strip()]
    a.facts_change = confirm(
        "Does it need facts that change (prices, policies, documents)?", default=bool(a.facts_change)
    )
    a.citations = confirm("Must answers cite current, auditable sources?", default=bool(a.citations))
    a.volume = prompt(f"Volume ({', '.join(VOLUMES)})", default=a.volume or "high")
    a.experimenting = confirm("Still experimenting with what the task is?", default=bool(a.experimenting))
    a.examples = int(prompt("How many good examples do you have?", default=a.examples if a.examples is not None else 0))
    gpu = prompt(
        "Your GPU (a name like 'RTX 4090', or its memory in GiB; empty for none)",
        default=a.gpu or "",
        show_default=False,
    )
    gpu = str(gpu).strip()
    if gpu:
        try:
            a.gpu_memory_gib, a.gpu = float(gpu), None
        except ValueError:
            a.gpu = gpu
    return a


def local_gpu(a: Answers) -> None:
    """Fill in this machine's GPU, when it has one (the card the user will most likely train on)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        a.gpu, a.gpu_memory_gib = f"{props.name} (this machine)", props.total_memory / 1024**3
