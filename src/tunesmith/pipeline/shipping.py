"""Stages 7-8, shipping: the export stage and the parity stage (does each exported model behave like the
checkpoint?), `export_run` (`tunesmith export RUN [--push-to-hub ORG/NAME]`) and `serve_target` (what
`tunesmith serve TARGET` loads). Every exported folder carries a model card (`tunesmith.pipeline.publishing`).

    manifest = export_run("my-project", "<train-run>", ["merged", "gguf"], push_to_hub="my-org/router")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunesmith import runs
from tunesmith.config import Config, load_config
from tunesmith.data.io import read_jsonl
from tunesmith.data.project import read_records
from tunesmith.errors import Problem, TunesmithError
from tunesmith.eval.plan import LIMIT_MAX
from tunesmith.pipeline.evaluation import EvalPlan
from tunesmith.pipeline.machinery import Pipeline, Stage
from tunesmith.pipeline.publishing import card_facts, hub_login, newest_comparison, newest_parity, push_export
from tunesmith.pipeline.training import train_run, trained_model


def shipping_stages(
    cfg: Config,
    pipe: Pipeline,
    plan: EvalPlan,
    st_split: Stage,
    st_train: Stage,
    st_tuned: Stage,
    tuned_ref,
    adapter,
    schema: dict | None,
    st_cmp: Stage | None = None,
) -> list | None:
    """Export (when `export.formats` names any; its model cards hold the comparison `st_cmp`), then the held-out
    split again on each exported model (`export.parity`): the parity reports, or None when parity did not run (said
    on the console, as is any requested format parity cannot check as it is served)."""
    if not cfg.export.formats:
        return None
    constraint = plan.decodings["heldout"].constraint
    st_export = export_stage(cfg, pipe, st_train, st_split, tuned_ref, adapter, constraint, st_cmp)
    if not cfg.export.parity:
        return None
    if not exported_models(st_export):
        _say_unchecked([{"format": f, "reason": NOTHING_TO_RUN.get(f, "no model to run")} for f in cfg.export.formats])
        return None
    st_parity = parity_stage(cfg, pipe, plan, st_export, st_tuned, tuned_ref, adapter, schema)
    _say_unchecked(st_parity.result.get("unchecked", []))
    return st_parity.result["reports"]


NOTHING_TO_RUN = {"adapter": "the adapter is the checkpoint itself, which parity compares the exports with"}


def _say_unchecked(unchecked: list[dict]) -> None:
    from tunesmith.pipeline.machinery import console

    for u in unchecked:
        console.print(f"[yellow]parity[/yellow] {u['format']}: not checked: {u['reason']}")


def export_stage(
    cfg: Config,
    pipe: Pipeline,
    st_train: Stage,
    st_split: Stage,
    tuned_ref,
    adapter,
    constraint=None,
    st_cmp: Stage | None = None,
) -> Stage:
    """Stage 9: the formats of `export.formats` (cached under the train run, the comparison its model cards show
    and the export settings); with the task's decoding `constraint`, its GBNF grammar and schema ship beside the
    GGUF and Ollama files."""

    def export(run_dir: Path) -> dict[str, Any]:
        from tunesmith.export.merge import export_artifacts

        options = config_export_options(
            cfg,
            system=shipped_system_prompt(cfg, st_split),
            constraint=constraint,
            card=card_facts(cfg, pipe.project, st_train.run_dir, st_cmp.run_dir if st_cmp else None),
        )
        return export_artifacts(tuned_ref, adapter, cfg.export.formats, run_dir, options)

    section = {
        "export": cfg.export.model_dump(mode="json"),
        "max_seq_len": cfg.data.max_seq_len,
        "system_prompt": cfg.task.system_prompt,
    }
    return pipe.stage(
        "export",
        section,
        {
            "train": st_train.key,
            "split": st_split.key,
            "no_repeat_ngram_size": cfg.eval.no_repeat_ngram_size,
            "constraint": constraint.key() if constraint is not None else None,
            "compare": st_cmp.key if st_cmp is not None else None,
        },
        export,
    )


def split_constraint(cfg: Config, st_split: Stage | None, schema: dict | None):
    """The task's decoding constraint from the split's training replies (None without a split or constraint)."""
    from tunesmith.eval.plan import task_constraint_of

    if st_split is None:
        return None
    return task_constraint_of(cfg, [r.reply or "" for r in read_records(st_split.run_dir / "train.jsonl")], schema)


def export_run(
    path: str | Path,
    run: str,
    formats: list[str] | None = None,
    gguf_types: list[str] | None = None,
    overrides: list[str] | None = None,
    push_to_hub: str | None = None,
    private: bool = False,
) -> dict[str, Any]:
    """`tunesmith export RUN`: export a finished train run of the project into `<run>/export/`, a model card in
    every folder; returns the manifest. Formats default to `export.formats`, else everything the run can give.
    With `push_to_hub` (ORG/NAME), the folders are uploaded to that Hub repo (`private` when new), the token checked
    before any work; the manifest returned then has `hub` (the repo, its URL, each format's folder there)."""
    from dataclasses import asdict

    from tunesmith.export.merge import export_artifacts

    cfg, project = load_config(runs.project_of_run(run) or path, overrides)
    run_dir = runs.resolve_run(project, run)
    meta = json.loads((run_dir / "inputs.json").read_text())
    check_exportable(cfg, project, run_dir, meta)
    token = hub_login(push_to_hub, private) if push_to_hub or private else None
    st_train = train_run(run_dir, meta["key"])
    tuned_ref, adapter = trained_model(st_train, same_base(cfg, run_dir, meta))
    formats = (
        formats
        or list(cfg.export.formats)
        or (["adapter"] if adapter is not None else []) + ["merged", "gguf", "ollama"]
    )
    options = run_export_options(cfg, project, run_dir, meta, gguf_types, push_to_hub)
    manifest = export_artifacts(tuned_ref, adapter, formats, run_dir / "export", options)
    if push_to_hub:
        manifest["hub"] = asdict(push_export(manifest, push_to_hub, token, private))
    return manifest


def same_base(cfg: Config, run_dir: Path, meta: dict):
    """The project's base model, which must be the one the run trained."""
    from tunesmith.models import resolve_model

    model_ref = resolve_model(cfg.model.base, cfg.model.trust_remote_code)
    if meta["inputs"].get("model") != model_ref.identity:
        raise TunesmithError(
            "The base model changed since this run",
            [
                Problem(
                    "model.base",
                    f"{cfg.model.base} is not the model {run_dir.name} trained",
                    "set model.base back to the run's base model",
                )
            ],
        )
    return model_ref


def run_export_options(
    cfg: Config, project: Path, run_dir: Path, meta: dict, gguf_types: list[str] | None, repo_id: str | None
):
    """`export_run`'s ExportOptions: the project's export settings, the shipped system prompt and decoding
    constraint of the run's split, and the model card's facts (the newest comparison and parity of the run)."""
    from tunesmith.data.project import load_schema

    split_dir = runs.find_run(project, "split", meta["inputs"]["split"])
    st_split = Stage("split", meta["inputs"]["split"], split_dir, cached=True) if split_dir else None
    compare_dir = newest_comparison(project, run_dir)
    return config_export_options(
        cfg,
        gguf_types=gguf_types or list(cfg.export.gguf_types),
        system=shipped_system_prompt(cfg, st_split) if st_split else cfg.task.system_prompt,
        constraint=split_constraint(cfg, st_split, load_schema(cfg, project)),
        card=card_facts(cfg, project, run_dir, compare_dir, newest_parity(project, compare_dir), repo_id),
    )


def config_export_options(cfg: Config, **run: Any):
    """The ExportOptions a project's config sets (the decoding, the GGUF types and pre-tokenizer, Ollama's type and
    context), with `run`'s own (the shipped system prompt, the constraint, the model card) and any it overrides."""
    from tunesmith.export.merge import ExportOptions

    settings = dict(
        no_repeat_ngram_size=cfg.eval.no_repeat_ngram_size,
        gguf_types=list(cfg.export.gguf_types),
        ollama_type=cfg.export.ollama_type,
        gguf_pre_tokenizer=cfg.export.gguf_pre_tokenizer,
        num_ctx=cfg.data.max_seq_len,
    )
    return ExportOptions(**{**settings, **run})


def check_exportable(cfg: Config, project: Path, run_dir: Path, meta: dict) -> None:
    """A run `tunesmith export` can export: a train run, finished."""
    if meta.get("stage") != "train":
        raise TunesmithError(
            "Not a training run",
            [Problem(run_dir.name, f"a {meta.get('stage')} run", "`tunesmith runs list` shows the train runs")],
        )
    if not runs.is_complete(run_dir):
        raise TunesmithError(
            "The training run is not finished",
            [
                Problem(
                    run_dir.name,
                    "no COMPLETED marker: it was interrupted, or is still running",
                    f"finish it with `tunesmith train {project} --resume`",
                )
            ],
        )


def serve_target(project: str | Path, target: str):
    """(model reference, adapter, name) for `tunesmith serve TARGET`: a finished train run of the project (its base
    with its adapter, or its fully trained model), else `target` as a model reference."""
    from tunesmith.models import resolve_model

    project = runs.project_of_run(target) or Path(project)
    run_dir = None
    try:
        found = runs.resolve_run(project, target) if (project / "tunesmith.yaml").exists() else None
        if found is not None and json.loads((found / "inputs.json").read_text()).get("stage") == "train":
            run_dir = found
    except TunesmithError:
        pass  # not a run: a model reference
    if run_dir is None:
        return resolve_model(target), None, None
    if not runs.is_complete(run_dir):
        raise TunesmithError(
            "The training run is not finished",
            [Problem(run_dir.name, "no COMPLETED marker", f"finish it with `tunesmith train {project} --resume`")],
        )
    cfg = load_config(project)[0]
    st_train = train_run(run_dir)
    ref, adapter = trained_model(st_train, resolve_model(cfg.model.base, cfg.model.trust_remote_code))
    return ref, adapter, f"{project.resolve().name}-{run_dir.name.rsplit('-', 1)[-1]}"


def shipped_system_prompt(cfg: Config, st_split: Stage) -> str | None:
    """The system prompt an exported model ships with (Ollama's SYSTEM): the task's, else the one every training
    record shares, else none."""
    if cfg.task.system_prompt:
        return cfg.task.system_prompt
    prompts = {
        r.messages[0]["content"] if r.messages and r.messages[0].get("role") == "system" else None
        for r in read_records(st_split.run_dir / "train.jsonl")
    }
    return prompts.pop() if len(prompts) == 1 else None


def exported_models(st_export: Stage) -> list[tuple[str, Path]]:
    """(kind, path) of every exported model that generates: `merged`, each GGUF type, and the GGUF the Ollama
    folder serves (once: when it is the very file of a type in `gguf/`, that file's check covers it)."""
    out = []
    seen: set[str] = set()  # sha256 of the GGUF files already listed
    for fmt, info in st_export.result.get("exports", {}).items():
        if fmt == "merged":
            out.append(("merged", Path(info["path"])))
        elif fmt in ("gguf", "ollama"):
            for name, meta in info["files"].items():  # beside them: the grammar, schema, Modelfile, README
                if name.endswith(".gguf") and meta.get("sha256") not in seen:
                    seen.add(meta.get("sha256"))
                    out.append((name[len("model-") : -len(".gguf")], Path(info["path"]) / name))
    return out


def parity_stage(
    cfg: Config,
    pipe: Pipeline,
    plan: EvalPlan,
    st_export: Stage,
    st_tuned: Stage,
    tuned_ref,
    adapter,
    schema: dict | None,
) -> Stage:
    """Stage 8: the held-out split on the checkpoint and on every exported model (the GGUFs loaded back through
    transformers), all in `export.parity_precision` (fp32: precision held fixed, so a difference is the export's
    doing; bf16 evaluation alone changes many greedy replies of a small model), each export compared with the
    checkpoint (`tunesmith.export.parity`)."""
    import importlib.util

    runtimes = ["transformers"] + (["llama.cpp"] if importlib.util.find_spec("llama_cpp") is not None else [])
    return pipe.stage(
        "parity",
        {"eval": cfg.eval.model_dump(mode="json"), "export": cfg.export.model_dump(mode="json")},
        {
            **plan.inputs,
            "export": st_export.key,
            "tuned": st_tuned.key,
            "runtimes": runtimes,
            "checked": [f"{path.parent.name}/{path.name}" for _, path in exported_models(st_export)],
        },
        lambda run_dir: parity_reports(cfg, plan, st_export, tuned_ref, adapter, schema, runtimes, run_dir),
    )


def parity_reports(
    cfg: Config, plan: EvalPlan, st_export: Stage, tuned_ref, adapter, schema: dict | None, runtimes, run_dir: Path
) -> dict[str, Any]:
    """The parity stage's work: the held-out split on the checkpoint, then on each exported model by transformers
    and, for a GGUF when llama.cpp is installed, by llama.cpp too; a parity report for each (its `file`: the
    folder and file checked), and `unchecked`: the requested formats not checked as they are served."""
    from tunesmith.chat import render_prompt
    from tunesmith.export.parity import parity
    from tunesmith.generate.backends import LlamaCppBackend, TransformersBackend
    from tunesmith.models import resolve_model

    precision = cfg.export.parity_precision
    cases = plan.suites["heldout"]
    ours = TransformersBackend(tuned_ref, adapter=adapter, precision=precision)
    checkpoint = _heldout_rows(cfg, plan, schema, run_dir / "checkpoint", ours)
    sample = cases[0].messages if cases else [{"role": "user", "content": "hi"}]
    reports = []
    for kind, path in exported_models(st_export):
        name = kind if not (run_dir / kind).exists() else f"{path.parent.name}-{kind}"
        file = f"{path.parent.name}/{path.name}" if path.suffix == ".gguf" else path.name
        backend = TransformersBackend(resolve_model(str(path), cfg.model.trust_remote_code), precision=precision)
        rows = _heldout_rows(cfg, plan, schema, run_dir / name, backend)
        template_same = render_prompt(backend.tok, sample) == render_prompt(ours.tok, sample)
        eos_same = backend.tok.eos_token == ours.tok.eos_token
        reports.append(
            {"file": file, **parity(kind, checkpoint, rows, cfg, template_same=template_same, eos_same=eos_same)}
        )
        if path.suffix == ".gguf" and "llama.cpp" in runtimes:
            # the file as Ollama / llama-server run it: llama.cpp's tokenizer, the template stored in the file
            llama = LlamaCppBackend(path, n_ctx=cfg.data.max_seq_len + (cfg.eval.max_new_tokens or LIMIT_MAX))
            rows = _heldout_rows(cfg, plan, schema, run_dir / f"{name}-llama.cpp", llama)
            decoding_same = not cfg.eval.no_repeat_ngram_size
            report = parity(kind, checkpoint, rows, cfg, runtime="llama.cpp", decoding_same=decoding_same)
            reports.append({"file": file, **report})
    exports = st_export.result.get("exports", {})
    unchecked = []
    if "llama.cpp" not in runtimes:
        unchecked = [
            {
                "format": f,
                "reason": "its GGUF was run by transformers only, not by llama.cpp as "
                + ("Ollama" if f == "ollama" else "llama.cpp")
                + " runs it (its own tokenizer and the template in the file): install llama-cpp-python",
            }
            for f in exports
            if f in ("gguf", "ollama")
        ]
    return {"precision": precision, "reports": reports, "unchecked": unchecked}


def _heldout_rows(cfg: Config, plan: EvalPlan, schema: dict | None, out: Path, backend) -> list[dict]:
    """The held-out suite evaluated with `backend` into `out` (named for what it ran); its result rows."""
    from tunesmith.eval.evaluate import evaluate

    out.mkdir(exist_ok=True)
    cases = {"heldout": plan.suites["heldout"]}
    evaluate(backend, cases, cfg, out, schema, f"parity {out.name}", plan.cache, plan.limits, plan.decodings)
    return [o for _, o in read_jsonl(out / "results.jsonl")]
