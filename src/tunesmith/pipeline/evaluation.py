"""Stages 4-6, evaluation: the plan every evaluation of a project runs (`EvalPlan`), the base and tuned models on
the test split, the cheapest alternatives (baselines) on the same cases, the comparison with its gates and verdict,
and `evaluate_model` (`tunesmith eval run`: one model on the project's suites).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape

from tunesmith.config import Config, load_config
from tunesmith.data.io import read_jsonl
from tunesmith.data.project import read_records, validation_records
from tunesmith.errors import Problem, TunesmithError
from tunesmith.eval.plan import LIMIT_MAX
from tunesmith.eval.result import EvalResult
from tunesmith.files import file_sha256
from tunesmith.pipeline.machinery import Pipeline, Stage, console, sections
from tunesmith.pipeline.preparation import prepare


@dataclass
class EvalPlan:
    """What every evaluation of a project runs: its suites, their generation limits and decodings, what keys
    their cache."""

    suites: dict[str, list]
    limits: dict[str, int]
    inputs: dict[str, Any]
    cache: Any
    decodings: dict[str, Any] = field(default_factory=dict)  # suite -> tunesmith.eval.plan.Decoding
    split_dir: Path | None = None  # the split run: its training and validation records, for recorded replies


def suite_hashes(cfg: Config, project: Path) -> dict[str, str]:
    """Content hashes of every suite file a project evaluates on (the built-in probe included)."""
    from tunesmith.eval.suite import PROBE

    paths = [project / (e if isinstance(e, str) else e.path) for e in cfg.eval.suites]
    out = {str(p.relative_to(project)): file_sha256(p) for p in paths if p.is_file()}
    if cfg.eval.general_probe:
        out["builtin:general"] = file_sha256(PROBE)
    return out


def eval_plan(
    cfg: Config, project: Path, st_split: Stage, model_ref, schema: dict | None, extra: tuple[dict, dict]
) -> EvalPlan:
    """The held-out (test) split plus the project's extra suites (`project_suites`); unreadable suite cases are
    warned about here and recorded in the results. The held-out cases are decoded as the task wants
    (`tunesmith.eval.plan.task_decoding`); a constrained decoding also runs them free, as `heldout_free`. This
    reads the test split: call it only for the final evaluations."""
    from tunesmith.eval.plan import task_decoding
    from tunesmith.eval.suite import cases_from_records
    from tunesmith.generate.cache import GenerationCache
    from tunesmith.models import load_tokenizer

    extra, limits = extra
    warn_unreadable_cases(extra)
    heldout = cases_from_records(read_records(st_split.run_dir / "heldout.jsonl"), cfg.task)
    if cfg.eval.limit:
        heldout = heldout[: cfg.eval.limit]
    replies = [r.reply or "" for r in read_records(st_split.run_dir / "train.jsonl")]
    decoding = task_decoding(cfg, replies, load_tokenizer(model_ref), schema)
    suites, decodings = {"heldout": heldout}, {"heldout": decoding}
    if decoding.constraint is not None:  # what the weights learned, without the constraint's help
        suites["heldout_free"], decodings["heldout_free"] = heldout, decoding.free()
    inputs = {
        "split": st_split.key,
        "model": model_ref.identity,
        "schema": schema,
        "suites": suite_hashes(cfg, project),
    }
    return EvalPlan(
        {**suites, **extra},
        limits,
        inputs,
        GenerationCache.of_project(project),
        decodings,
        st_split.run_dir,
    )


def warn_unreadable_cases(suites: dict[str, list]) -> None:
    """Warn about the first ten suite cases that cannot be read (each is recorded in the results, not scored)."""
    broken = [c.error for cases in suites.values() for c in cases if c.error]
    for err in broken[:10]:
        console.print(f"[yellow]warning:[/yellow] {escape(err)} (recorded in the results, not scored)")
    if len(broken) > 10:
        console.print(f"[yellow]warning:[/yellow] … and {len(broken) - 10} more unreadable suite case(s)")


# What only the baselines and the comparison read: changing them (adding a baseline, moving a gate) leaves the
# evaluations of base and tuned, and `eval run`'s, as they are.
COMPARISON_ONLY = (
    "baselines",
    "few_shot_k",
    "few_shot_stop",
    "gate",
    "gates",
    "bootstrap_samples",
    "confidence",
    "judge",
)


def eval_section(cfg: Config) -> dict[str, Any]:
    """The config an evaluation stage's key covers: `eval` (less `COMPARISON_ONLY`), `task` and `budget`."""
    out = sections(cfg, "eval", "task", "budget")
    out["eval"] = {k: v for k, v in out["eval"].items() if k not in COMPARISON_ONLY}
    return out


def eval_base_stage(cfg: Config, pipe: Pipeline, plan: EvalPlan, model_ref, schema: dict | None) -> Stage[EvalResult]:
    """The base model on the plan's suites (`eval-base`)."""

    def eval_base(run_dir: Path) -> EvalResult:
        from tunesmith.eval.evaluate import evaluate
        from tunesmith.generate.backends import TransformersBackend

        backend = TransformersBackend(model_ref, precision=cfg.train.precision)
        return EvalResult(
            model=cfg.model.base,
            metrics=evaluate(
                backend, plan.suites, cfg, run_dir, schema, "base", plan.cache, plan.limits, plan.decodings
            ),
        )

    return pipe.stage("eval-base", eval_section(cfg), plan.inputs, eval_base, typed=EvalResult)


def eval_tuned_stage(
    cfg: Config, pipe: Pipeline, plan: EvalPlan, st_train: Stage, tuned_ref, adapter, schema: dict | None
) -> Stage[EvalResult]:
    """The trained model (`trained_model` of the train stage) on the same cases with the same decoding
    (`eval-tuned`)."""

    def eval_tuned(run_dir: Path) -> EvalResult:
        from tunesmith.eval.evaluate import evaluate
        from tunesmith.generate.backends import TransformersBackend

        backend = TransformersBackend(tuned_ref, adapter=adapter, precision=cfg.train.precision)
        return EvalResult(
            model=tuned_ref.ref,
            adapter=str(adapter) if adapter else None,
            metrics=evaluate(
                backend, plan.suites, cfg, run_dir, schema, "tuned", plan.cache, plan.limits, plan.decodings
            ),
        )

    return pipe.stage(
        "eval-tuned", eval_section(cfg), {**plan.inputs, "train": st_train.key}, eval_tuned, typed=EvalResult
    )


def baseline_stages(
    cfg: Config, pipe: Pipeline, plan: EvalPlan, st_split: Stage, model_ref, schema: dict | None
) -> dict[str, Stage]:
    """One eval stage per applicable baseline (`eval.baselines`), each on the held-out cases with the task's
    decoding: `classifier` (TF-IDF + logistic regression on the training split, C chosen on validation) and
    `few_shot` (the base model shown the nearest training examples)."""
    from tunesmith.eval.baselines import applicable

    train = read_records(st_split.run_dir / "train.jsonl")
    names = applicable(cfg, train)
    out: dict[str, Stage] = {}
    for name in names:
        versus = out.get("classifier") if name == "few_shot" and cfg.eval.few_shot_stop else None

        def work(run_dir: Path, name: str = name, versus: Stage | None = versus) -> dict[str, Any]:
            from tunesmith.eval.evaluate import evaluate
            from tunesmith.eval.sequential import evaluate_in_rounds, stopped_line

            backend, info = baseline_backend(name, cfg, st_split, train, model_ref)
            cases = plan.suites["heldout"]
            if versus is None:
                metrics = evaluate(
                    backend, {"heldout": cases}, cfg, run_dir, schema, name, plan.cache, plan.limits, plan.decodings
                )
                return {"model": name, **info, "metrics": metrics}
            reference = [o for _, o in read_jsonl(versus.run_dir / "results.jsonl")]
            metrics, stopped = evaluate_in_rounds(
                backend,
                cases,
                reference,
                "classifier",
                cfg,
                run_dir,
                schema,
                name,
                plan.cache,
                plan.limits,
                plan.decodings,
            )
            if stopped is not None:
                console.print(f"[dim]· {name}: {escape(stopped_line(stopped))}[/dim]")
            return {"model": name, **info, "metrics": metrics, **({"stopped": stopped} if stopped else {})}

        # a few-shot run that may stop against the classifier depends on it and on the stopping rule's settings
        # (and only such a run: `eval.few_shot_stop` is in its inputs this way, not in every baseline's section)
        stop = {"versus": versus.key, "rule": stop_rule(cfg)} if versus is not None else {}
        inputs = {**plan.inputs, "baseline": name, **stop}
        out[name] = pipe.stage(f"baseline-{name}", baseline_section(cfg), inputs, work)
    return out


def stop_rule(cfg: Config) -> dict[str, Any]:
    """What decides whether few-shot prompting stops early (`eval.few_shot_stop`)."""
    return {k: getattr(cfg.eval, k) for k in ("confidence", "bootstrap_samples")} | {"gate": cfg.eval.gate.metric}


def baseline_section(cfg: Config) -> dict[str, Any]:
    """The config a baseline stage depends on: the decoding settings, the task and the budget."""
    return {
        "eval": {k: getattr(cfg.eval, k) for k in ("decoding", "max_new_tokens", "few_shot_k", "no_repeat_ngram_size")},
        "task": cfg.task.model_dump(mode="json"),
        "budget": cfg.budget.model_dump(mode="json"),
    }


def baseline_backend(name: str, cfg: Config, st_split: Stage, train: list, model_ref):
    """(backend, facts) of a baseline: the classifier trained here (its training time measured), or the base model
    prompted with few-shot examples."""
    from tunesmith.eval.baselines import ClassifierBackend, FewShotBackend

    if name == "classifier":
        clf = ClassifierBackend(train, cfg.task, validation_records(st_split.run_dir) or None, seed=cfg.data.seed)
        return clf, {"train_s": clf.train_s, "C": clf.C}
    from tunesmith.generate.backends import TransformersBackend

    base = TransformersBackend(model_ref, precision=cfg.train.precision)
    return FewShotBackend(base, train, k=cfg.eval.few_shot_k), {"k": cfg.eval.few_shot_k}


def compare_stage(
    cfg: Config, pipe: Pipeline, st_base: Stage, st_tuned: Stage, st_baselines: dict[str, Stage]
) -> Stage:
    """Base vs tuned per metric with intervals, the gates (a `vs:` gate against its baseline), and the verdict (the
    gates, the absolute target and the alternatives: the tuned model against each baseline on the same cases);
    every model's held-out metrics side by side, and each one's cost per successful task."""

    def compare_runs(run_dir: Path) -> dict[str, Any]:
        base_rows = [o for _, o in read_jsonl(st_base.run_dir / "results.jsonl")]
        tuned_rows = [o for _, o in read_jsonl(st_tuned.run_dir / "results.jsonl")]
        return weigh(cfg, base_rows, tuned_rows, st_baselines)

    return pipe.stage(
        "compare",
        sections(cfg, "eval", "budget"),
        {"base": st_base.key, "tuned": st_tuned.key, **{f"baseline-{n}": st.key for n, st in st_baselines.items()}},
        compare_runs,
    )


BASELINE_FACTS = (
    "train_s",
    "label",
    "kind",
    "missing",
    "unmatched",
    "outside",
    "stopped",
)  # what the verdict and summary quote


def weigh(cfg: Config, base_rows: list[dict], tuned_rows: list[dict], st_baselines: dict[str, Stage]) -> dict:
    """The compare stage's result from the results rows of base and tuned and the baseline stages."""
    from tunesmith.cost import cost_per_success
    from tunesmith.eval.compare import compare, compare_to_baselines, side_by_side
    from tunesmith.eval.verdict import ship_verdict

    alternatives = {name: [o for _, o in read_jsonl(st.run_dir / "results.jsonl")] for name, st in st_baselines.items()}
    info = {name: {k: st.result[k] for k in BASELINE_FACTS if k in st.result} for name, st in st_baselines.items()}
    against = compare_to_baselines(tuned_rows, alternatives, cfg, info)
    cmp = compare(base_rows, tuned_rows, cfg, versus={name: a["metrics"] for name, a in against.items()})
    columns = [("base", cmp["metrics"], "base"), ("tuned", cmp["metrics"], "tuned")]
    columns += [(name, a["metrics"], "base") for name, a in against.items()]
    priced = {name: st.result["cost"] for name, st in st_baselines.items() if st.result.get("cost")}
    models = [("base", base_rows), ("tuned", tuned_rows), *alternatives.items()]
    return {
        **cmp,
        "baselines": against,
        "verdict": ship_verdict(cmp, against, cfg),
        "side_by_side": side_by_side(columns, suites=("heldout",)),
        "cost_per_success": cost_per_success(models, cfg.budget.hourly_usd, priced),
    }


def evaluate_model(
    path: str | Path,
    model: str | None = None,
    adapter: str | Path | None = None,
    endpoint=None,
    backend: str = "transformers",
    overrides: list[str] | None = None,
    use_cache: bool = True,
) -> Stage[EvalResult]:
    """`tunesmith eval run`: the project's suites (held-out split included) on one model, in a run directory of
    its own (`results.jsonl`, metrics in `result.json`). `model` defaults to the project's base; `endpoint` (an
    EndpointConfig) evaluates an OpenAI-compatible server instead; `backend="vllm"` uses vLLM in-process,
    `backend="llamacpp"` runs the GGUF file `model` through llama.cpp."""
    from tunesmith.eval.evaluate import evaluate
    from tunesmith.models import dir_identity, resolve_model

    p = prepare(*load_config(path, overrides), with_suites=True)
    cfg, pipe, schema = p.cfg, p.pipe, p.schema
    if backend == "llamacpp":  # the file itself, not converted: llama.cpp reads it as a runtime would
        model_ref = gguf_ref(model)
    else:
        model_ref = resolve_model(model, cfg.model.trust_remote_code) if model else p.model_ref
    plan = eval_plan(cfg, p.project, p.st_split, model_ref, schema, p.suites)
    if endpoint is not None:
        who = {"endpoint": endpoint.base_url, "served_model": endpoint.model}
    else:
        who = {
            "model": model_ref.identity,
            "adapter": dir_identity(Path(adapter)) if adapter else None,
            "backend": backend,
        }
    label = endpoint.model if endpoint is not None else (model or cfg.model.base)

    def work(run_dir: Path) -> EvalResult:
        be = eval_backend(cfg, model_ref, adapter, endpoint, backend)
        return EvalResult.from_json(
            {
                "model": label,
                "adapter": str(adapter) if adapter else None,
                **who,
                "metrics": evaluate(
                    be,
                    plan.suites,
                    cfg,
                    run_dir,
                    schema,
                    label,
                    plan.cache if use_cache else None,
                    plan.limits,
                    plan.decodings,
                ),
            }
        )

    fresh = {} if use_cache else {"fresh": time.time()}  # --no-cache: neither the stage nor any generation reused
    return pipe.stage("eval", eval_section(cfg), {**plan.inputs, **who, **fresh}, work, typed=EvalResult)


def gguf_ref(model: str | None):
    """The ModelRef of a GGUF file that llama.cpp evaluates as it is (identified by its content hash)."""
    from tunesmith.models import ModelRef, cached_sha256

    if not model or not model.endswith(".gguf") or not Path(model).is_file():
        raise TunesmithError(
            "llama.cpp evaluates a GGUF file",
            [Problem("--model", f"{model!r} is not a .gguf file", "e.g. --model <run>/export/gguf/model-q8_0.gguf")],
        )
    return ModelRef(model, Path(model), "gguf:" + cached_sha256(Path(model)))


def eval_backend(cfg: Config, model_ref, adapter, endpoint, backend: str):
    """The backend `evaluate_model` generates with: the endpoint, vLLM, llama.cpp or transformers."""
    from tunesmith.generate import backends

    if endpoint is not None:
        return backends.EndpointBackend.of(endpoint)
    if backend == "vllm":
        return backends.VLLMBackend(model_ref, adapter)
    if backend == "llamacpp":
        return backends.LlamaCppBackend(
            model_ref.path, n_ctx=cfg.data.max_seq_len + (cfg.eval.max_new_tokens or LIMIT_MAX)
        )
    return backends.TransformersBackend(model_ref, adapter=adapter, precision=cfg.train.precision)
